#include "common/error.h"

#include <cerrno>
#include <cstring>

namespace berth {

const char* CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "OK";
    case Code::kCancelled: return "Cancelled";
    case Code::kUnknown: return "Unknown";
    case Code::kInvalidArgument: return "InvalidArgument";
    case Code::kDeadlineExceeded: return "DeadlineExceeded";
    case Code::kNotFound: return "NotFound";
    case Code::kAlreadyExists: return "AlreadyExists";
    case Code::kPermissionDenied: return "PermissionDenied";
    case Code::kResourceExhausted: return "ResourceExhausted";
    case Code::kFailedPrecondition: return "FailedPrecondition";
    case Code::kAborted: return "Aborted";
    case Code::kOutOfRange: return "OutOfRange";
    case Code::kUnimplemented: return "Unimplemented";
    case Code::kInternal: return "Internal";
    case Code::kUnavailable: return "Unavailable";
  }
  return "Unknown";
}

Error ErrnoError(const std::string& what, int err) {
  Code code = Code::kInternal;
  switch (err) {
    case ENOENT: code = Code::kNotFound; break;
    case EEXIST: code = Code::kAlreadyExists; break;
    case EACCES:
    case EPERM: code = Code::kPermissionDenied; break;
    case EINVAL:
    case ENOTDIR:
    case EISDIR:
    case ENAMETOOLONG:
    case ELOOP: code = Code::kInvalidArgument; break;
    case ENOSPC:
    case EDQUOT:
    case ENOMEM: code = Code::kResourceExhausted; break;
    default: break;
  }
  return Error(code, what + ": " + std::strerror(err));
}

void ThrowErrno(const std::string& what, int err) { throw ErrnoError(what, err); }
void ThrowErrno(const std::string& what) { ThrowErrno(what, errno); }

}  // namespace berth
