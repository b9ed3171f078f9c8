// berth's error type: a code that maps onto gRPC status codes, and a message that names the
// thing and the cause ("failed to open base OCI spec: /etc/x.json: No such file or directory").
#pragma once

#include <stdexcept>
#include <string>

namespace berth {

// Same numbering as grpc::StatusCode so that the CRI layer can convert without a table.
enum class Code {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
};

const char* CodeName(Code code);

class Error : public std::runtime_error {
 public:
  Error(Code code, const std::string& message) : std::runtime_error(message), code_(code) {}
  explicit Error(const std::string& message) : Error(Code::kInternal, message) {}
  Code code() const { return code_; }

 private:
  Code code_;
};

// "<what>: <strerror(err)>" as an Error with a code derived from errno (ENOENT -> NotFound...).
Error ErrnoError(const std::string& what, int err);
[[noreturn]] void ThrowErrno(const std::string& what, int err);
// Same, with errno read at the call.
[[noreturn]] void ThrowErrno(const std::string& what);

}  // namespace berth
