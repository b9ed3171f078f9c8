berth_fuzzer(metrics_http ${CMAKE_CURRENT_SOURCE_DIR}/metrics_http_fuzz.cpp berth_metrics)
