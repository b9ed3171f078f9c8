// Random bytes parsed as CRI request messages (the first byte picks the message type) and fed
// to the request validation and to the CRI services of a server without a daemon (no image
// backend): nothing may crash, every answer is a status.
// The generated CRI header comes first: its Signal enum values (SIGABRT...) collide with
// <signal.h> macros when that header is included before it.
#include "runtime/v1/api.pb.h"

#include <cstddef>
#include <cstdint>
#include <memory>

#include "berth/images/v1/images.pb.h"
#include "common/error.h"
#include "cri/image_service.h"
#include "cri/runtime_service.h"
#include "cri/server.h"
#include "cri/validate.h"

namespace {

namespace v1 = runtime::v1;

berth::cri::CRIServer& Server() {
  static auto* server = [] {
    berth::cri::ServerDeps deps;
    deps.image_service_error = "fuzzing";
    return new berth::cri::CRIServer(std::move(deps));
  }();
  return *server;
}

template <typename Msg>
bool Parse(Msg& m, const uint8_t* data, size_t size) {
  return m.ParseFromArray(data, static_cast<int>(size));
}

template <typename Fn>
void Checked(Fn&& fn) {
  try {
    fn();
  } catch (const berth::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t kind = data[0] % 9;
  ++data;
  --size;
  auto& server = Server();
  switch (kind) {
    case 0: {
      v1::PullImageRequest req;
      if (!Parse(req, data, size)) break;
      Checked([&] { berth::cri::ValidatePullImage(req); });
      if (req.has_auth()) Checked([&] { berth::cri::ToAuthConfig(req.auth()); });
      v1::PullImageResponse resp;
      server.image_service().PullImage(nullptr, &req, &resp);
      break;
    }
    case 1: {
      v1::ImageStatusRequest req;
      if (!Parse(req, data, size)) break;
      Checked([&] { berth::cri::ValidateImageStatus(req); });
      v1::ImageStatusResponse resp;
      server.image_service().ImageStatus(nullptr, &req, &resp);
      break;
    }
    case 2: {
      v1::RemoveImageRequest req;
      if (!Parse(req, data, size)) break;
      Checked([&] { berth::cri::ValidateRemoveImage(req); });
      v1::RemoveImageResponse resp;
      server.image_service().RemoveImage(nullptr, &req, &resp);
      break;
    }
    case 3: {
      v1::ListImagesRequest req;
      if (!Parse(req, data, size)) break;
      Checked([&] { berth::cri::ValidateListImages(req); });
      v1::ListImagesResponse resp;
      server.image_service().ListImages(nullptr, &req, &resp);
      break;
    }
    case 4: {
      v1::UpdateRuntimeConfigRequest req;
      if (!Parse(req, data, size)) break;
      Checked([&] { berth::cri::ValidateUpdateRuntimeConfig(req); });
      v1::UpdateRuntimeConfigResponse resp;
      server.runtime_service().UpdateRuntimeConfig(nullptr, &req, &resp);
      break;
    }
    case 5: {
      v1::StatusRequest req;
      if (!Parse(req, data, size)) break;
      v1::StatusResponse resp;
      server.runtime_service().Status(nullptr, &req, &resp);
      break;
    }
    case 6: {
      berth::images::v1::ImportRequest req;
      if (!Parse(req, data, size)) break;
      Checked([&] { berth::cri::ValidateImport(req); });
      berth::images::v1::ImportResponse resp;
      server.images_service().Import(nullptr, &req, &resp);
      break;
    }
    case 7: {
      v1::RunPodSandboxRequest req;
      if (!Parse(req, data, size)) break;
      v1::RunPodSandboxResponse resp;
      server.runtime_service().RunPodSandbox(nullptr, &req, &resp);
      break;
    }
    default: {
      v1::VersionRequest req;
      if (!Parse(req, data, size)) break;
      v1::VersionResponse resp;
      server.runtime_service().Version(nullptr, &req, &resp);
      break;
    }
  }
  return 0;
}
