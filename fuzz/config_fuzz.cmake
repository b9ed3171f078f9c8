berth_fuzzer(config ${CMAKE_CURRENT_SOURCE_DIR}/config_fuzz.cpp berth_config)
