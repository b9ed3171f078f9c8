berth_fuzzer(archive ${CMAKE_CURRENT_LIST_DIR}/archive_fuzz.cpp berth_image berth_content berth_common)
