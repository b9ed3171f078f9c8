#include "cri/errors.h"

#include <new>

#include <spdlog/spdlog.h>

namespace berth::cri {

grpc::StatusCode ToGrpcCode(Code code) {
  int n = static_cast<int>(code);
  if (n <= 0 || n > static_cast<int>(grpc::StatusCode::UNAUTHENTICATED)) return grpc::StatusCode::UNKNOWN;
  return static_cast<grpc::StatusCode>(n);
}

grpc::Status ToGrpcStatus(const Error& e) { return grpc::Status(ToGrpcCode(e.code()), e.what()); }

namespace {

grpc::Status Logged(const char* method, grpc::Status st) {
  if (st.error_code() == grpc::StatusCode::NOT_FOUND || st.error_code() == grpc::StatusCode::UNIMPLEMENTED ||
      st.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
    spdlog::debug("CRI {} failed: {}", method, st.error_message());
  } else {
    spdlog::warn("CRI {} failed: {}", method, st.error_message());
  }
  return st;
}

}  // namespace

grpc::Status CurrentExceptionStatus(const char* method) {
  try {
    throw;
  } catch (const Error& e) {
    return Logged(method, ToGrpcStatus(e));
  } catch (const std::bad_alloc&) {
    return Logged(method, grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                       std::string(method) + ": out of memory"));
  } catch (const std::exception& e) {
    return Logged(method, grpc::Status(grpc::StatusCode::INTERNAL, std::string(method) + ": " + e.what()));
  } catch (...) {
    return Logged(method, grpc::Status(grpc::StatusCode::UNKNOWN, std::string(method) + ": unknown error"));
  }
}

grpc::Status Unimplemented(const char* method) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, std::string(method) + " is not implemented yet");
}

}  // namespace berth::cri
