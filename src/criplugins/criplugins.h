// The CRI plugins of berth, as containerd 2 splits them:
//   io.containerd.cri.v1.runtime  RuntimeConfig, runtime handlers, base OCI specs  (CRIRuntimePlugin)
//   io.containerd.cri.v1.images   ImageConfig                                        (CRIImagesPlugin)
//   io.containerd.grpc.v1.cri     ServerConfig: a config-only registration here; the CRI gRPC plugin
//                                 (src/cri) registers the plugin itself and receives this config.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/cri.h"
#include "oci/mounts.h"
#include "plugin/registry.h"

namespace berth::plugin {
class WarningService;
}

namespace berth::criplugins {

inline constexpr const char* kRuntimeID = "runtime";
inline constexpr const char* kImagesID = "images";
inline constexpr const char* kServerID = "cri";
// The CRI plugins keep their files where containerd's CRI plugin always did.
inline constexpr const char* kCRIDirName = "io.containerd.grpc.v1.cri";
// Warning emitted once when restrict_oom_score_adj is unset and berthd lacks CAP_SYS_RESOURCE.
inline constexpr const char* kRestrictOomWarningID = "io.berth.warning/restrict-oom-score-adj";
// Warning (one per handler: <id>/<handler>) when user-namespaced pods get chown'ed rootfs copies.
inline constexpr const char* kUsernsCopyWarningID = "io.berth.warning/userns-rootfs-copy";

// Base OCI runtime specs (`base_runtime_spec` of runtime handlers), read once per file at init.
class BaseSpecCache {
 public:
  // Reads and parses a file unless it is already cached; throws Error naming the file and the
  // cause (missing, unreadable, not JSON, not a JSON object).
  std::shared_ptr<const nlohmann::json> Load(const std::string& path);
  // The cached spec, or null.
  std::shared_ptr<const nlohmann::json> Get(const std::string& path) const;
  size_t size() const { return specs_.size(); }
  const std::map<std::string, std::shared_ptr<const nlohmann::json>>& specs() const { return specs_; }

 private:
  std::map<std::string, std::shared_ptr<const nlohmann::json>> specs_;
};

// What the runtime plugin knows about one runtime handler after init.
struct HandlerInfo {
  std::string name;
  config::Runtime runtime;                          // its validated configuration
  std::shared_ptr<const nlohmann::json> base_spec;  // parsed base_runtime_spec; null when unset

  // Filled by handler resolvers (see HandlerResolver). `features` is what PluginInfo reports
  // for the handler, e.g. {"recursive_read_only_mounts": true}.
  nlohmann::ordered_json features = nlohmann::ordered_json::object();
  // --- fields added by handler resolvers go below this line ---
  oci::HandlerRRO rro;  // resolved recursive read-only behaviour (rro_resolver.cpp)
};

class CRIRuntimePlugin;

// Everything a resolver may use.
struct ResolveContext {
  const CRIRuntimePlugin& plugin;
  plugin::InitContext& init;
  plugin::WarningService* warnings;  // may be null
};
// A step run for every runtime handler at init, in handler name order, after the base specs are
// loaded (e.g. resolving treat_ro_mounts_as_rro against the kernel and the OCI runtime). Throws
// Error to fail the plugin; the message should name the handler.
struct HandlerResolver {
  std::string name;
  std::function<void(const ResolveContext&, HandlerInfo&)> resolve;
};

// The built-in resolvers, always run first (defined in handler_resolvers.cpp).
std::vector<HandlerResolver> BuiltinHandlerResolvers();

// The instance of io.containerd.cri.v1.runtime. Read-only once init returns.
class CRIRuntimePlugin : public plugin::InfoProvider {
 public:
  config::RuntimeConfig config;  // validated
  std::string root_dir;          // <root>/io.containerd.grpc.v1.cri
  std::string state_dir;         // <state>/io.containerd.grpc.v1.cri (created, mode 0700)
  std::string grpc_address;      // the daemon's socket
  BaseSpecCache base_specs;
  std::map<std::string, HandlerInfo> handlers;  // by handler name
  // The config's restrict_oom_score_adj, or when unset, true iff berthd lacks CAP_SYS_RESOURCE.
  bool restrict_oom_score_adj = false;

  // The handler by name; "" is the default handler. Null when unknown.
  const HandlerInfo* Handler(const std::string& name) const;
  // The cached base spec of a file; throws Error(NotFound) when it was not loaded at init.
  std::shared_ptr<const nlohmann::json> LoadOCISpec(const std::string& path) const;

  // options: {"runtime_handler": "<name>"} ("" or absent: the default handler). Returns
  // {"name", "runtime_type", "runtime_path", "binary_name", "base_runtime_spec",
  //  "treat_ro_mounts_as_rro", "features"}; Error(NotFound) for an unknown handler.
  nlohmann::json PluginInfo(const nlohmann::json& options) override;
};

// The instance of io.containerd.cri.v1.images.
struct CRIImagesPlugin {
  config::ImageConfig config;  // validated
  std::string root_dir;        // <root>/io.containerd.grpc.v1.cri
  std::string state_dir;       // <state>/io.containerd.grpc.v1.cri
};

struct Options {
  // Run after the built-in resolvers.
  std::vector<HandlerResolver> handler_resolvers;
};

// restrict_oom_score_adj as configured; when unset, true iff berthd lacks CAP_SYS_RESOURCE, which
// is then said once through the warning service (kRestrictOomWarningID; logged when ws is null).
bool ResolveRestrictOom(const config::RuntimeConfig& c, plugin::WarningService* ws);

// Registers io.containerd.cri.v1.images, io.containerd.cri.v1.runtime and the config of
// io.containerd.grpc.v1.cri (in containerd's migration order: images, runtime, server).
void RegisterCRIPlugins(plugin::Registry& registry, Options options = {});

// The registrations, for tests and tools.
plugin::Registration RuntimeRegistration(Options options = {});
plugin::Registration ImagesRegistration();
plugin::Registration ServerConfigRegistration();

}  // namespace berth::criplugins
