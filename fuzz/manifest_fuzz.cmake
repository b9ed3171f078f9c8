berth_fuzzer(manifest ${CMAKE_CURRENT_SOURCE_DIR}/manifest_fuzz.cpp berth_image)
