berth_fuzzer(spdy ${CMAKE_CURRENT_SOURCE_DIR}/spdy_fuzz.cpp berth_spdy)
