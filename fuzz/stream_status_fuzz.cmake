berth_fuzzer(stream_status ${CMAKE_CURRENT_SOURCE_DIR}/stream_status_fuzz.cpp berth_streaming
  berth_common)
