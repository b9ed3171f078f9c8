berth_fuzzer(attach ${CMAKE_CURRENT_SOURCE_DIR}/attach_fuzz.cpp berth_monitor_attach)
