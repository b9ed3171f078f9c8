berth_fuzzer(cni ${CMAKE_CURRENT_SOURCE_DIR}/cni_fuzz.cpp berth_network)
