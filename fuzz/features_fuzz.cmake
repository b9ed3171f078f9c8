berth_fuzzer(features ${CMAKE_CURRENT_SOURCE_DIR}/features_fuzz.cpp berth_runtime)
