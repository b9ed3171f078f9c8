berth_fuzzer(cri_requests ${CMAKE_CURRENT_SOURCE_DIR}/cri_requests_fuzz.cpp berth_cri)
