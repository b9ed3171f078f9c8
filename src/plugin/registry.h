// berth's plugin registry, modelled on containerd's plugin.Registration: typed plugins with ids,
// requirements, an optional config object with defaults, an optional config migration hook and an
// init function. The daemon registers plugins, the registry orders them by Requires and
// initialises them, recording each result for introspection.
#pragma once

#include <any>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace berth::plugin {

// Plugin types, containerd's names.
inline constexpr const char* kInternalPlugin = "io.containerd.internal.v1";
inline constexpr const char* kWarningPlugin = "io.containerd.warning.v1";
inline constexpr const char* kServicePlugin = "io.containerd.service.v1";
inline constexpr const char* kGRPCPlugin = "io.containerd.grpc.v1";
inline constexpr const char* kCRIServicePlugin = "io.containerd.cri.v1";
inline constexpr const char* kSnapshotPlugin = "io.containerd.snapshotter.v1";

struct Registration;
class Registry;

// Metadata a plugin fills at init; shown by introspection.
struct Meta {
  std::vector<std::string> platforms;         // "linux/amd64"
  std::map<std::string, std::string> exports; // e.g. {"CRIVersion": "v1"}
  std::vector<std::string> capabilities;
};

// What an init function receives.
class InitContext {
 public:
  // Properties of the daemon.
  std::string root_dir;   // <root>/<type>.<id> for this plugin
  std::string state_dir;  // <state>/<type>.<id> for this plugin
  std::map<std::string, std::string> properties;  // "io.containerd.plugin.root", ".state", ".grpc.address"
  Meta meta;

  // The plugin's decoded config object (the registration's config(), then decoded from the file).
  // Empty when the registration has no config.
  std::any config;

  template <typename T>
  const T& Config() const { return *std::any_cast<std::shared_ptr<T>>(config); }

  // Already initialised plugins. Throws Error(NotFound/FailedPrecondition) naming the plugin when
  // it is absent or failed.
  std::any Get(const std::string& type) const;                        // the only/first of a type
  std::any GetByID(const std::string& type, const std::string& id) const;
  std::map<std::string, std::any> GetByType(const std::string& type) const;  // id -> instance

  template <typename T>
  std::shared_ptr<T> GetAs(const std::string& type, const std::string& id) const {
    return std::any_cast<std::shared_ptr<T>>(GetByID(type, id));
  }

 private:
  friend class Registry;
  const Registry* registry_ = nullptr;
};

// A config migration hook: called with the file's config version and the raw plugin tables
// (plugin id "type.id" -> table), before decoding, when the file is older than version 3.
// It moves keys between tables; anything it cannot place it reports through `warnings`.
using MigrationFn = std::function<void(int version, nlohmann::ordered_json& plugins,
                                       std::vector<std::string>& warnings)>;

struct Registration {
  std::string type;
  std::string id;
  std::vector<std::string> requires;  // plugin types ("*" = every other plugin)
  // Returns a std::shared_ptr<T> with defaults in std::any; empty function: no config.
  std::function<std::any()> config;
  // Decodes a raw table over the defaults produced by config(); throws Error naming the key.
  std::function<void(const nlohmann::ordered_json& table, std::any& config)> decode_config;
  MigrationFn config_migration;
  // Returns the instance (a std::shared_ptr<T> in std::any); throws Error on failure.
  std::function<std::any(InitContext&)> init;

  std::string URI() const { return type + "." + id; }
};

enum class Status { kPending, kLoaded, kFailed, kSkipped, kDisabled };
const char* StatusName(Status s);  // "pending", "ok", "error", "skip", "disabled"

struct PluginState {
  const Registration* registration = nullptr;
  Status status = Status::kPending;
  std::string error;  // init failure, or why it was skipped
  Meta meta;
  std::any instance;
};

class Registry {
 public:
  // Registering the same type.id twice throws.
  void Register(Registration r);
  const std::vector<Registration>& Registrations() const { return registrations_; }

  // Orders registrations by Requires. Throws Error(FailedPrecondition) on a cycle or an unknown
  // requirement, naming the plugins involved.
  std::vector<const Registration*> Ordered() const;

  struct InitOptions {
    std::string root;   // daemon root dir
    std::string state;  // daemon state dir
    std::string grpc_address;
    std::vector<std::string> disabled;  // plugin URIs (type.id) or ids
    // Decoded plugin config tables keyed by URI; plugins without an entry get defaults.
    const nlohmann::ordered_json* plugin_configs = nullptr;
  };
  // Initialises every plugin in order. A failing init is recorded; its dependents are skipped
  // with the reason. Never throws for a plugin failure; throws for ordering errors.
  void InitAll(const InitOptions& opts);

  const std::vector<PluginState>& States() const { return states_; }
  const PluginState* Find(const std::string& type, const std::string& id) const;

 private:
  friend class InitContext;
  std::vector<Registration> registrations_;
  std::vector<PluginState> states_;
};

// Each library that provides plugins exposes `void Register<Name>Plugins(Registry&)`; berthd
// calls them explicitly (no static registrars: static libraries would drop them).

}  // namespace berth::plugin
