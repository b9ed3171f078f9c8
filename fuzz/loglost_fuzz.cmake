berth_fuzzer(loglost ${CMAKE_CURRENT_SOURCE_DIR}/loglost_fuzz.cpp berth_monitor_format)
