berth_fuzzer(layer ${CMAKE_CURRENT_LIST_DIR}/layer_fuzz.cpp berth_image berth_common)
