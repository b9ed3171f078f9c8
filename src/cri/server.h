// The CRI server instance (internal to src/cri and its tests; includes gRPC): the state shared by
// the gRPC services and the GrpcService registration.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "plugin/grpc_service.h"

namespace berth::criplugins {
class CRIRuntimePlugin;
struct CRIImagesPlugin;
}  // namespace berth::criplugins
namespace berth::plugin {
class WarningService;
}
namespace berth::config {
struct ServerConfig;
}
namespace berth::image {
class ImageService;
}
namespace berth::lifecycle {
class RuntimeService;
}
namespace berth::network {
class Cni;
}
namespace berth::streaming {
class Server;
}

namespace berth::cri {

class RuntimeServiceImpl;
struct InfoConfigInput;
class ImageServiceImpl;
class ImagesServiceImpl;

// What Status reports for one runtime handler.
struct HandlerFeatures {
  std::string name;  // "" for the default handler
  bool recursive_read_only_mounts = false;
  bool user_namespaces = false;
  std::string user_namespaces_reason;  // what was proven, or why not (features["userns"])
};

struct ServerDeps {
  std::shared_ptr<criplugins::CRIRuntimePlugin> runtime;  // null: no handlers, default config
  std::shared_ptr<criplugins::CRIImagesPlugin> images;    // null: default image config
  std::shared_ptr<image::ImageService> image_service;     // null: image calls answer UNAVAILABLE
  std::shared_ptr<plugin::WarningService> warnings;       // may be null
  std::shared_ptr<const config::ServerConfig> server_config;  // null: the default server config
  // Per handler, the default handler once more as "" (see ResolveHandlerFeatures).
  std::vector<HandlerFeatures> handlers;
  std::string image_service_error;  // why image_service is null, for messages
  // Pods and containers (src/lifecycle); null: those calls answer UNAVAILABLE with pods_error.
  std::shared_ptr<lifecycle::RuntimeService> pods;
  std::string pods_error;
  // The default CNI networks (NetworkReady, UpdateRuntimeConfig's conf_template); null: none.
  std::shared_ptr<network::Cni> cni;
  // The streaming server for Exec, Attach and PortForward; null: they answer UNAVAILABLE.
  std::shared_ptr<streaming::Server> streaming;
  std::string streaming_error;
};

// The runtime handlers of the runtime plugin as Status reports them: "" (the default handler)
// first, then every configured handler by name. recursive_read_only_mounts and user_namespaces
// come from the handler's resolved `features` (false when absent); user_namespaces, when the
// resolvers did not set it, from the OCI runtime's `features` (user namespace and idmap mounts).
std::vector<HandlerFeatures> ResolveHandlerFeatures(const criplugins::CRIRuntimePlugin& runtime,
                                                    bool query_runtime_features = true);

class CRIServer : public plugin::GrpcService {
 public:
  explicit CRIServer(ServerDeps deps);
  ~CRIServer() override;

  void Register(grpc::ServerBuilder& builder) override;

  const ServerDeps& deps() const { return deps_; }
  // The image service; throws Error(kUnavailable) naming why it is absent.
  image::ImageService& Images() const;

  void SetPodCIDRs(std::vector<std::string> cidrs);
  std::vector<std::string> PodCIDRs() const;

  // Status info["config"]: the effective configuration as containerd's CRI plugin writes it
  // (cri/info_config.h), berth's own additions under "berth" (per handler: the config keys
  // containerd 1.7 lacks and the resolved recursive read-only behaviour; CNI bin_dirs; pinned
  // images; podCIDRs).
  nlohmann::ordered_json ConfigJSON() const;

  RuntimeServiceImpl& runtime_service() { return *runtime_service_; }
  ImageServiceImpl& image_service() { return *image_service_; }
  ImagesServiceImpl& images_service() { return *images_service_; }

 private:
  nlohmann::ordered_json BerthInfoConfig(const InfoConfigInput& in) const;
  ServerDeps deps_;
  mutable std::mutex mu_;
  std::vector<std::string> pod_cidrs_;
  std::unique_ptr<RuntimeServiceImpl> runtime_service_;
  std::unique_ptr<ImageServiceImpl> image_service_;
  std::unique_ptr<ImagesServiceImpl> images_service_;
};

}  // namespace berth::cri
