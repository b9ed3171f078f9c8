#include "cri/server.h"

#include <filesystem>

#include <fmt/format.h>
#include <grpcpp/server_builder.h>
#include <spdlog/spdlog.h>

#include "common/error.h"
#include "config/cri.h"
#include "cri/image_service.h"
#include "cri/info_config.h"
#include "cri/runtime_service.h"
#include "criplugins/criplugins.h"
#include "runtime/features.h"

namespace berth::cri {

namespace {

bool FeatureFlag(const nlohmann::ordered_json& features, const char* key, bool* out) {
  if (!features.is_object()) return false;
  auto it = features.find(key);
  if (it == features.end() || !it->is_boolean()) return false;
  *out = it->get<bool>();
  return true;
}

bool RuntimeSupportsUserns(const criplugins::HandlerInfo& h) {
  try {
    std::string binary = runtime::ResolveRuntimeBinary(h.runtime.BinaryName(), h.runtime.runtime_path);
    runtime::FeaturesQuery q = runtime::QueryFeatures(binary);
    if (!q.features) return false;
    return q.features->SupportsUserns() && q.features->idmap_enabled.value_or(false);
  } catch (const std::exception& e) {
    spdlog::debug("runtime handler \"{}\": no user namespace support: {}", h.name, e.what());
    return false;
  }
}

}  // namespace

std::vector<HandlerFeatures> ResolveHandlerFeatures(const criplugins::CRIRuntimePlugin& runtime,
                                                    bool query_runtime_features) {
  std::vector<HandlerFeatures> named;
  for (const auto& [name, h] : runtime.handlers) {
    HandlerFeatures f;
    f.name = name;
    FeatureFlag(h.features, "recursive_read_only_mounts", &f.recursive_read_only_mounts);
    if (!FeatureFlag(h.features, "user_namespaces", &f.user_namespaces) && query_runtime_features) {
      f.user_namespaces = RuntimeSupportsUserns(h);
    }
    if (h.features.is_object() && h.features.contains("userns") && h.features["userns"].is_object())
      f.user_namespaces_reason = h.features["userns"].value("reason", "");
    named.push_back(std::move(f));
  }
  std::vector<HandlerFeatures> out;
  const std::string& def = runtime.config.containerd.default_runtime_name;
  for (const auto& f : named) {
    if (f.name == def) {
      HandlerFeatures d = f;
      d.name = "";
      out.push_back(std::move(d));
    }
  }
  if (out.empty()) out.push_back(HandlerFeatures{});
  out.insert(out.end(), named.begin(), named.end());
  return out;
}

CRIServer::CRIServer(ServerDeps deps)
    : deps_(std::move(deps)),
      runtime_service_(std::make_unique<RuntimeServiceImpl>(*this)),
      image_service_(std::make_unique<ImageServiceImpl>(*this)),
      images_service_(std::make_unique<ImagesServiceImpl>(*this)) {
  if (deps_.handlers.empty()) {
    if (deps_.runtime) {
      deps_.handlers = ResolveHandlerFeatures(*deps_.runtime, false);
    } else {
      deps_.handlers.push_back(HandlerFeatures{});
    }
  }
}

CRIServer::~CRIServer() = default;

void CRIServer::Register(grpc::ServerBuilder& builder) {
  builder.RegisterService(runtime_service_.get());
  builder.RegisterService(image_service_.get());
  builder.RegisterService(images_service_.get());
}

image::ImageService& CRIServer::Images() const {
  if (!deps_.image_service) {
    std::string why = deps_.image_service_error.empty() ? "not configured" : deps_.image_service_error;
    throw Error(Code::kUnavailable, "the image service is not available: " + why);
  }
  return *deps_.image_service;
}

void CRIServer::SetPodCIDRs(std::vector<std::string> cidrs) {
  std::lock_guard<std::mutex> lock(mu_);
  if (cidrs != pod_cidrs_) {
    spdlog::info("CRI: pod CIDR(s) set to [{}]", fmt::join(cidrs, ", "));
  }
  pod_cidrs_ = std::move(cidrs);
}

std::vector<std::string> CRIServer::PodCIDRs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pod_cidrs_;
}

nlohmann::ordered_json CRIServer::ConfigJSON() const {
  InfoConfigInput in;
  if (deps_.runtime) {
    in.runtime = deps_.runtime->config;
    in.runtime.restrict_oom_score_adj = deps_.runtime->restrict_oom_score_adj;  // as resolved at init
    in.root_dir = deps_.runtime->root_dir;
    in.state_dir = deps_.runtime->state_dir;
    in.containerd_root_dir = std::filesystem::path(in.root_dir).parent_path().string();
    in.containerd_endpoint = deps_.runtime->grpc_address;
  }
  if (deps_.images) in.images = deps_.images->config;
  if (deps_.server_config) in.server = *deps_.server_config;
  nlohmann::ordered_json out = ContainerdInfoConfig(in);
  out["berth"] = BerthInfoConfig(in);
  return out;
}

nlohmann::ordered_json CRIServer::BerthInfoConfig(const InfoConfigInput& in) const {
  nlohmann::ordered_json runtimes = nlohmann::ordered_json::object();
  for (const auto& [name, r] : in.runtime.containerd.runtimes) {
    nlohmann::ordered_json h = {{"ioType", r.io_type},
                                {"treatRoMountsAsRro", r.treat_ro_mounts_as_rro}};
    const criplugins::HandlerInfo* info = deps_.runtime ? deps_.runtime->Handler(name) : nullptr;
    if (info) {
      h["recursiveReadOnly"] = {{"enabled", info->rro.enabled},
                                {"viaFallback", info->rro.via_fallback},
                                {"supportedForKEP", info->rro.supported_for_kep},
                                {"kepViaFallback", info->rro.kep_via_fallback}};
      h["features"] = info->features;
    }
    runtimes[name] = h;
  }
  nlohmann::ordered_json b = nlohmann::ordered_json::object();
  b["runtimes"] = runtimes;
  b["cni"] = {{"binDirs", in.runtime.cni.bin_dirs},
              {"useInternalLoopback", in.runtime.cni.use_internal_loopback}};
  b["pinnedImages"] = in.images.pinned_images;
  b["useLocalImagePull"] = in.images.use_local_image_pull;
  b["podCIDRs"] = PodCIDRs();
  return b;
}

}  // namespace berth::cri
