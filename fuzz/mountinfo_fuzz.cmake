berth_fuzzer(mountinfo ${CMAKE_CURRENT_SOURCE_DIR}/mountinfo_fuzz.cpp berth_mount)
