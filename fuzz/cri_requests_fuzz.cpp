// Random bytes parsed as CRI request messages (the first byte picks the message type) and fed
// to the request validation, the way the CRI services check a request before anything is done:
// nothing may crash, every rejection is a berth::Error that maps to a gRPC status with the
// field named in its message.
// The generated CRI header comes first: its Signal enum values (SIGABRT...) collide with
// <signal.h> macros when that header is included before it.
#include "runtime/v1/api.pb.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <google/protobuf/stubs/logging.h>

#include "berth/images/v1/images.pb.h"
#include "common/error.h"
#include "cri/errors.h"
#include "cri/user.h"
#include "cri/validate.h"

namespace {

namespace v1 = runtime::v1;

template <typename Msg>
bool Parse(Msg& m, const uint8_t* data, size_t size) {
  return m.ParseFromArray(data, static_cast<int>(size));
}

// Runs a validation; a rejection must be an Error with a code and a message, which the CRI
// server turns into the status it answers with.
template <typename Fn>
void Checked(Fn&& fn) {
  grpc::Status st = berth::cri::Guard("Fuzz", fn);
  if (st.ok()) return;
  if (st.error_code() != grpc::StatusCode::INVALID_ARGUMENT || st.error_message().empty()) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Strings with invalid UTF-8 are logged by protobuf's parser; that noise only slows fuzzing.
  static const bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;
  if (size < 1) return 0;
  const uint8_t kind = data[0] % 9;
  ++data;
  --size;
  switch (kind) {
    case 0: {
      v1::PullImageRequest req;
      if (!Parse(req, data, size)) break;
      Checked([&] { berth::cri::ValidatePullImage(req); });
      if (req.has_auth()) Checked([&] { berth::cri::ToAuthConfig(req.auth()); });
      break;
    }
    case 1: {
      v1::ImageStatusRequest req;
      if (!Parse(req, data, size)) break;
      Checked([&] { berth::cri::ValidateImageStatus(req); });
      break;
    }
    case 2: {
      v1::RemoveImageRequest req;
      if (!Parse(req, data, size)) break;
      Checked([&] { berth::cri::ValidateRemoveImage(req); });
      break;
    }
    case 3: {
      v1::ListImagesRequest req;
      if (!Parse(req, data, size)) break;
      Checked([&] { berth::cri::ValidateListImages(req); });
      break;
    }
    case 4: {
      v1::UpdateRuntimeConfigRequest req;
      if (!Parse(req, data, size)) break;
      Checked([&] { berth::cri::ValidateUpdateRuntimeConfig(req); });
      break;
    }
    case 5: {
      // An image config's User as CRI's uid / username.
      berth::cri::ParseImageUser(std::string(reinterpret_cast<const char*>(data), size));
      break;
    }
    case 6: {
      berth::images::v1::ImportRequest req;
      if (!Parse(req, data, size)) break;
      Checked([&] { berth::cri::ValidateImport(req); });
      break;
    }
    case 7: {
      // Any error code (including out-of-range numbers) maps to a valid gRPC status.
      if (size < 4) break;
      int code = static_cast<int>(data[0] | (data[1] << 8) | (data[2] << 16) | (uint32_t{data[3]} << 24));
      berth::Error e(static_cast<berth::Code>(code), std::string(reinterpret_cast<const char*>(data + 4), size - 4));
      auto st = berth::cri::ToGrpcStatus(e);
      if (static_cast<int>(st.error_code()) < 0 || static_cast<int>(st.error_code()) > 16) abort();
      break;
    }
    default: {
      std::string s(reinterpret_cast<const char*>(data), size);
      Checked([&] { berth::cri::CheckImageRefOrID(s, "image.image"); });
      berth::cri::IsValidCIDR(s);
      break;
    }
  }
  return 0;
}
