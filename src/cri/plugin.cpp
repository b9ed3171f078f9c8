#include <filesystem>

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "config/cri.h"
#include "cri/cri.h"
#include "cri/metrics.h"
#include "cri/server.h"
#include "cri/streaming.h"
#include "criplugins/criplugins.h"
#include "image/service.h"
#include "lifecycle/service.h"
#include "plugin/registry.h"
#include "plugin/services.h"

#ifndef BERTH_VERSION
#define BERTH_VERSION "0.0.0"
#endif

namespace berth::cri {

const char* BerthVersion() { return BERTH_VERSION; }

namespace {

// The image service of the images plugin when it offers one; otherwise one created from its
// ImageConfig under <root>/io.containerd.cri.v1.images.
std::shared_ptr<image::ImageService> MakeImageService(plugin::InitContext& ic,
                                                      const criplugins::CRIImagesPlugin& images) {
  if (const auto* st = ic.registry().Find(plugin::kCRIServicePlugin, criplugins::kImagesID)) {
    if (auto svc = st->As<image::ImageService>()) return svc;
  }
  image::ImageService::Options o;
  // The images plugin's root_dir is <root>/io.containerd.grpc.v1.cri.
  std::filesystem::path root = std::filesystem::path(images.root_dir).parent_path();
  if (root.empty()) root = std::filesystem::path(ic.root_dir).parent_path();
  o.root = (root / "io.containerd.cri.v1.images").string();
  o.state = images.state_dir;  // <state>/io.containerd.grpc.v1.cri, next to the rro probe caches
  o.snapshotter = images.config.snapshotter;
  o.hosts_config_path = images.config.registry.config_path;
  o.max_concurrent_downloads = images.config.max_concurrent_downloads;
  o.pull_with_sync_fs = images.config.image_pull_with_sync_fs;
  o.pinned_images = images.config.pinned_images;
  std::chrono::nanoseconds timeout{};
  if (config::ParseDuration(images.config.image_pull_progress_timeout, &timeout) && timeout.count() > 0) {
    o.progress_timeout = std::chrono::duration_cast<std::chrono::seconds>(timeout);
    if (o.progress_timeout.count() == 0) o.progress_timeout = std::chrono::seconds(1);
  }
  return std::make_shared<image::ImageService>(std::move(o));
}

}  // namespace

void RegisterCRIServerPlugin(plugin::Registry& registry) {
  plugin::Registration r;
  r.type = plugin::kGRPCPlugin;
  r.id = kCRIPluginID;
  r.requirements = {plugin::kCRIServicePlugin, plugin::kWarningPlugin};
  r.init = [](plugin::InitContext& ic) -> std::any {
    ic.meta.exports["CRIVersion"] = "v1";
    ServerDeps deps;
    deps.runtime = ic.GetAs<criplugins::CRIRuntimePlugin>(plugin::kCRIServicePlugin, criplugins::kRuntimeID);
    deps.images = ic.GetAs<criplugins::CRIImagesPlugin>(plugin::kCRIServicePlugin, criplugins::kImagesID);
    if (auto* sc = std::any_cast<std::shared_ptr<config::ServerConfig>>(&ic.config)) deps.server_config = *sc;
    try {
      deps.warnings = ic.GetSingle<plugin::WarningService>(plugin::kWarningPlugin);
    } catch (const Error&) {
    }
    try {
      deps.image_service = MakeImageService(ic, *deps.images);
    } catch (const std::exception& e) {
      // The runtime side stays usable; image calls answer UNAVAILABLE with this reason.
      deps.image_service_error = e.what();
      spdlog::error("CRI: failed to open the image service: {}", e.what());
      if (deps.warnings) {
        deps.warnings->Emit("io.berth.cri/image-service", "the image service is not available: " + deps.image_service_error);
      }
    }
    deps.handlers = ResolveHandlerFeatures(*deps.runtime);
    try {
      auto o = lifecycle::OptionsFromRuntimePlugin(*deps.runtime);
      o.monitor_path = lifecycle::FindHelper("berth-monitor");
      o.pause_path = lifecycle::FindHelper("berth-pause");
      if (deps.images) o.sandbox_image = deps.images->config.pinned_images.count("sandbox") ? deps.images->config.pinned_images.at("sandbox") : "";
      o.pull_sandbox_image = !o.sandbox_image.empty() && !lifecycle::IsStockPauseImage(o.sandbox_image);
      if (deps.image_service) o.images = lifecycle::NewImageServiceProvider(*deps.image_service);
      deps.pods = std::make_shared<lifecycle::RuntimeService>(std::move(o));
      spdlog::info("CRI: pods and containers recovered: {}", deps.pods->RecoveryReport());
    } catch (const std::exception& e) {
      deps.pods_error = e.what();
      spdlog::error("CRI: pods and containers are not available: {}", e.what());
    }
    try {
      if (ic.config.has_value()) deps.streaming = StartStreamingServer(ic.Config<config::ServerConfig>());
    } catch (const std::exception& e) {
      deps.streaming_error = e.what();
      spdlog::error("CRI: the streaming server is not available: {}", e.what());
    }
    for (const auto& h : deps.handlers) {
      spdlog::info("CRI: runtime handler \"{}\": recursive_read_only_mounts={} user_namespaces={}", h.name,
                   h.recursive_read_only_mounts, h.user_namespaces);
    }
    RegisterStateMetrics(deps.pods, deps.runtime);
    auto server = std::make_shared<CRIServer>(std::move(deps));
    ic.Provide<plugin::GrpcService>(server);
    return server;
  };
  registry.Register(std::move(r));
}

}  // namespace berth::cri
