berth_fuzzer(exitfile ${CMAKE_CURRENT_SOURCE_DIR}/exitfile_fuzz.cpp berth_monitor_format)
