berth_fuzzer(crilog ${CMAKE_CURRENT_SOURCE_DIR}/crilog_fuzz.cpp berth_monitor_format)
