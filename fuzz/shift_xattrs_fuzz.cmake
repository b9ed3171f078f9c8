berth_fuzzer(shift_xattrs ${CMAKE_CURRENT_SOURCE_DIR}/shift_xattrs_fuzz.cpp berth_snapshot)
