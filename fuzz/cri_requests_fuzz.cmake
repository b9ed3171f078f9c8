# CRI request validation on its own (berth_cri links the whole daemon): the validation, the error
# mapping, the image user parsing and the image reference parser they use.
add_library(berth_cri_validate STATIC
  ${BERTH_SRC_DIR}/cri/validate.cpp
  ${BERTH_SRC_DIR}/cri/errors.cpp
  ${BERTH_SRC_DIR}/cri/user.cpp
  ${BERTH_SRC_DIR}/image/reference.cpp)
target_include_directories(berth_cri_validate PUBLIC ${BERTH_SRC_DIR})
target_link_libraries(berth_cri_validate
  PUBLIC berth_cri_proto berth_images_proto berth_common berth_warnings gRPC::grpc++
  PRIVATE spdlog::spdlog fmt::fmt)
berth_fuzzer(cri_requests ${CMAKE_CURRENT_SOURCE_DIR}/cri_requests_fuzz.cpp berth_cri_validate)
