berth_fuzzer(hosts ${CMAKE_CURRENT_SOURCE_DIR}/hosts_fuzz.cpp berth_image)
