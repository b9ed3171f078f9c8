berth_fuzzer(reference ${CMAKE_CURRENT_SOURCE_DIR}/reference_fuzz.cpp berth_image)
