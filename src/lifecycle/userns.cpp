// User namespaces of pods (KEP-127): the CRI rules and what RunPodSandbox and CreateContainer do
// for a pod whose userns_options mode is POD (docs/userns.md).
#include "lifecycle/userns.h"

#include <filesystem>
#include <mutex>

#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "runtime/userns.h"

namespace berth::lifecycle {

namespace {

const char* kField = "linux.security_context.namespace_options.userns_options";

std::vector<userns::IDMap> ToMaps(const google::protobuf::RepeatedPtrField<v1::IDMapping>& in) {
  std::vector<userns::IDMap> out;
  for (const auto& m : in) out.push_back({m.container_id(), m.host_id(), m.length()});
  return out;
}

void CheckPodList(const google::protobuf::RepeatedPtrField<v1::IDMapping>& in, const char* which) {
  std::string field = std::string(kField) + "." + which;
  if (in.size() != 1) {
    throw Error(Code::kInvalidArgument, field + ": mode POD needs exactly one " +
                                            (which[0] == 'u' ? "uid" : "gid") + " mapping, got " +
                                            std::to_string(in.size()));
  }
  auto maps = ToMaps(in);
  userns::CheckRanges(maps, field);
  if (userns::ToHost(maps, 0) < 0) {
    throw Error(Code::kInvalidArgument,
                field + "[0]: container id 0 (root) must be mapped: " + userns::Describe(maps[0]));
  }
}

}  // namespace

std::optional<userns::Mapping> PodUserns(const v1::PodSandboxConfig& cfg) {
  const auto& ns = cfg.linux().security_context().namespace_options();
  if (!ns.has_userns_options() || ns.userns_options().mode() != v1::POD) return std::nullopt;
  return userns::Mapping{ToMaps(ns.userns_options().uids()), ToMaps(ns.userns_options().gids())};
}

HandlerUserns UsernsSupportOf(const Handler& h, const Options& opts) {
  if (h.userns) return *h.userns;
  static std::mutex mu;
  static std::map<std::string, HandlerUserns> proven;  // by binary and state dir
  std::string binary = h.binary.empty() ? "runc" : h.binary;
  std::lock_guard<std::mutex> lock(mu);
  auto key = binary + "\n" + opts.state_dir;
  auto it = proven.find(key);
  if (it != proven.end()) return it->second;
  std::string path = binary;
  if (binary.find('/') == std::string::npos) {
    if (auto p = exec::LookPath(binary)) path = *p;
  }
  auto u = runtime::ApplyRootfsMode(runtime::DetectUserns(path, opts.root_dir, opts.state_dir),
                                    opts.userns_rootfs);
  return proven[key] = HandlerUserns{u.supported, u.reason, u.runtime_idmap, u.rootfs};
}

void ValidatePodUserns(const v1::PodSandboxConfig& cfg, const Handler& h, const Options& opts) {
  const auto& ns = cfg.linux().security_context().namespace_options();
  if (!ns.has_userns_options()) return;
  const auto& u = ns.userns_options();
  switch (u.mode()) {
    case v1::NODE:
      if (u.uids_size() || u.gids_size()) {
        throw Error(Code::kInvalidArgument, std::string(kField) +
                                                ": mode NODE takes no mappings, got " +
                                                std::to_string(u.uids_size()) + " uid and " +
                                                std::to_string(u.gids_size()) + " gid mappings");
      }
      return;
    case v1::POD:
      break;
    default:
      throw Error(Code::kInvalidArgument,
                  std::string(kField) + ".mode: " + v1::NamespaceMode_Name(u.mode()) +
                      " is not supported: the user namespace of a pod is its own (POD) or the "
                      "host's (NODE)");
  }
  CheckPodList(u.uids(), "uids");
  CheckPodList(u.gids(), "gids");
  const std::pair<const char*, v1::NamespaceMode> shared[] = {
      {"network", ns.network()}, {"pid", ns.pid()}, {"ipc", ns.ipc()}};
  for (const auto& [name, mode] : shared) {
    if (mode == v1::NODE) {
      throw Error(Code::kInvalidArgument,
                  std::string(kField) + ": mode POD cannot be combined with the host's " + name +
                      " namespace (namespace_options." + name + " NODE)");
    }
  }
  auto support = UsernsSupportOf(h, opts);
  if (!support.supported) {
    throw Error(Code::kFailedPrecondition,
                "runtime handler \"" + h.name +
                    "\" cannot run pods in a user namespace: " + support.reason);
  }
}

std::string UsernsPath(const Options& opts, const std::string& sandbox_id) {
  return fs::Join(opts.state_dir, "userns/" + sandbox_id);
}

void AddUsernsToSpec(nlohmann::json& spec, const userns::Mapping& m, const std::string& path) {
  auto& lx = spec["linux"];
  auto& nss = lx["namespaces"];
  if (!nss.is_array()) nss = nlohmann::json::array();
  for (auto it = nss.begin(); it != nss.end();) {
    it = it->value("type", "") == "user" ? nss.erase(it) : it + 1;
  }
  nss.insert(nss.begin(), nlohmann::json{{"type", "user"}, {"path", path}});
  auto maps = [](const std::vector<userns::IDMap>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& r : v)
      a.push_back({{"containerID", r.container_id}, {"hostID", r.host_id}, {"size", r.length}});
    return a;
  };
  lx["uidMappings"] = maps(m.uids);
  lx["gidMappings"] = maps(m.gids);
}

std::pair<uint32_t, uint32_t> HostRoot(const userns::Mapping& m) {
  return {static_cast<uint32_t>(userns::ToHost(m.uids, 0)),
          static_cast<uint32_t>(userns::ToHost(m.gids, 0))};
}

void ValidateContainerUserns(const v1::ContainerConfig& cfg,
                             const std::optional<userns::Mapping>&) {
  for (int i = 0; i < cfg.mounts_size(); ++i) {
    const auto& m = cfg.mounts(i);
    if (m.uidmappings_size() == 0 && m.gidmappings_size() == 0) continue;
    std::string field = "mounts[" + std::to_string(i) + "]";
    if (m.uidmappings_size() == 0 || m.gidmappings_size() == 0) {
      throw Error(Code::kInvalidArgument,
                  field + ": an idmapped mount needs both uidMappings and gidMappings");
    }
    userns::CheckRanges(ToMaps(m.uidmappings()), field + ".uidMappings");
    userns::CheckRanges(ToMaps(m.gidmappings()), field + ".gidMappings");
  }
}

void CheckProcessMapped(const nlohmann::json& spec, const userns::Mapping& m) {
  const auto& user = spec["process"]["user"];
  uint32_t uid = user.value("uid", 0u), gid = user.value("gid", 0u);
  if (userns::ToHost(m.uids, uid) < 0) {
    throw Error(Code::kInvalidArgument,
                "uid " + std::to_string(uid) +
                    " of the container is not mapped in the pod's user namespace (" +
                    userns::MapText(m.uids).substr(0, 60) + ")");
  }
  auto check_gid = [&](uint32_t g) {
    if (userns::ToHost(m.gids, g) < 0) {
      throw Error(Code::kInvalidArgument,
                  "gid " + std::to_string(g) +
                      " of the container is not mapped in the pod's user namespace");
    }
  };
  check_gid(gid);
  for (const auto& g : user.value("additionalGids", nlohmann::json::array()))
    check_gid(g.get<uint32_t>());
}

nlohmann::json UsernsInfo(const nlohmann::json& spec, int pid) {
  const auto& lx = spec.value("linux", nlohmann::json::object());
  if (!lx.contains("uidMappings")) return nullptr;
  nlohmann::json out = {{"uidMappings", lx["uidMappings"]},
                        {"gidMappings", lx.value("gidMappings", nlohmann::json::array())}};
  for (const auto& ns : lx.value("namespaces", nlohmann::json::array()))
    if (ns.value("type", "") == "user") out["path"] = ns.value("path", "");
  if (pid > 0) {  // what the kernel applies to the running init
    for (const char* f : {"uid_map", "gid_map"}) {
      try {
        out[f] = fs::ReadFile("/proc/" + std::to_string(pid) + "/" + f, 4096);
      } catch (const Error&) {
      }
    }
  }
  return out;
}

void SweepUsernsOrphans(
    const Options& opts, const std::map<std::string, std::shared_ptr<SandboxRecord>>& live,
    const std::function<void(const std::string&, const std::string&, const std::string&)>& decide) {
  std::error_code ec;
  for (const auto& e :
       std::filesystem::directory_iterator(fs::Join(opts.state_dir, "userns"), ec)) {
    std::string id = e.path().filename().string();
    if (live.count(id)) continue;
    try {
      userns::RemovePinned(e.path().string());
      decide(id, "removed", "no sandbox record names it");
    } catch (const Error& ex) {
      decide(id, "left", ex.what());
    }
  }
}

}  // namespace berth::lifecycle
