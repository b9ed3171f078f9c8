// berth::Error -> grpc::Status, and the per-call guard every CRI method runs in: whatever a
// request makes the implementation throw becomes a status, never a crash of the daemon.
// Includes gRPC: for src/cri and its tests only.
#pragma once

#include <exception>
#include <string>

#include <grpcpp/support/status.h>

#include "common/error.h"

namespace berth::cri {

// berth::Code numbers are grpc::StatusCode numbers. kOk (an error without a code) becomes
// UNKNOWN; numbers outside gRPC's range become UNKNOWN.
grpc::StatusCode ToGrpcCode(Code code);
grpc::Status ToGrpcStatus(const Error& e);
// The status for the exception currently being handled (call inside a catch block): Error keeps
// its code, std::bad_alloc -> RESOURCE_EXHAUSTED, other std::exception -> INTERNAL, anything
// else -> UNKNOWN. `method` names the call in the message of non-Error exceptions.
grpc::Status CurrentExceptionStatus(const char* method);

// "<Method> is not implemented yet" as UNIMPLEMENTED.
grpc::Status Unimplemented(const char* method);

// Runs fn() and converts exceptions; logs failures at debug (NotFound) or warn level.
template <typename Fn>
grpc::Status Guard(const char* method, Fn&& fn) {
  try {
    fn();
    return grpc::Status::OK;
  } catch (...) {
    return CurrentExceptionStatus(method);
  }
}

}  // namespace berth::cri
