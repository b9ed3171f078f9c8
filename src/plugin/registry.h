// berth's plugin registry, modelled on containerd's plugin.Registration: typed plugins with ids,
// requirements, an optional config object with defaults, an optional config migration hook and an
// init function. The daemon registers plugins, the registry orders them by Requires and
// initialises them, recording each result for introspection.
#pragma once

#include <any>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <typeindex>
#include <utility>
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

// Init properties (InitContext::properties keys), containerd's names.
inline constexpr const char* kPropertyRootDir = "io.containerd.plugin.root";
inline constexpr const char* kPropertyStateDir = "io.containerd.plugin.state";
inline constexpr const char* kPropertyGRPCAddress = "io.containerd.plugin.grpc.address";

struct Registration;
class Registry;

// Optional interfaces a plugin instance may offer. A plugin makes one visible with
// InitContext::Provide<I>(ptr); the registry also finds it when the instance itself is a
// std::shared_ptr<I>.

// Answers introspection's PluginInfo(type, id, options) for this plugin; throws Error.
class InfoProvider {
 public:
  virtual ~InfoProvider() = default;
  virtual nlohmann::json PluginInfo(const nlohmann::json& options) = 0;
};

// Called when the daemon shuts down, in reverse init order. Exceptions are logged and ignored.
class Closer {
 public:
  virtual ~Closer() = default;
  virtual void Close() = 0;
};

// Metadata a plugin fills at init; shown by introspection.
struct Meta {
  std::vector<std::string> platforms;          // "linux/amd64"
  std::map<std::string, std::string> exports;  // e.g. {"CRIVersion": "v1"}
  std::vector<std::string> capabilities;
};

// What an init function receives.
class InitContext {
 public:
  // Properties of the daemon.
  std::string root_dir;   // <root>/<type>.<id> for this plugin (not created by the registry)
  std::string state_dir;  // <state>/<type>.<id> for this plugin (not created by the registry)
  std::map<std::string, std::string> properties;  // kPropertyRootDir, kPropertyStateDir, ...
  Meta meta;

  // The plugin's decoded config object (the registration's config(), then decoded from the file).
  // Empty when the registration has no config.
  std::any config;

  template <typename T>
  const T& Config() const { return *std::any_cast<std::shared_ptr<T>>(config); }

  // Already initialised plugins. Throw Error(NotFound) naming the plugin when it is absent, and
  // Error(FailedPrecondition) with its error when it did not load.
  std::any Get(const std::string& type) const;  // the only/first loaded plugin of a type
  std::any GetByID(const std::string& type, const std::string& id) const;
  std::map<std::string, std::any> GetByType(const std::string& type) const;  // loaded: id -> instance

  template <typename T>
  std::shared_ptr<T> GetAs(const std::string& type, const std::string& id) const {
    return std::any_cast<std::shared_ptr<T>>(GetByID(type, id));
  }
  template <typename T>
  std::shared_ptr<T> GetSingle(const std::string& type) const {
    return std::any_cast<std::shared_ptr<T>>(Get(type));
  }

  // Makes an interface of the instance visible to others (PluginState::As<I>).
  template <typename I>
  void Provide(std::shared_ptr<I> impl) { interfaces_[std::type_index(typeid(I))] = std::move(impl); }

  const Registry& registry() const { return *registry_; }

 private:
  friend class Registry;
  const Registry* registry_ = nullptr;
  std::map<std::type_index, std::shared_ptr<void>> interfaces_;
};

// A config migration hook: called with the file's config version and the raw plugin tables
// (plugin id "type.id" -> table), before decoding, when the file is older than version 3.
// It moves keys between tables; anything it cannot place it reports through `warnings`.
using MigrationFn = std::function<void(int version, nlohmann::ordered_json& plugins,
                                       std::vector<std::string>& warnings)>;

// What validating a decoded config found. Errors fail the plugin ("invalid plugin config: ...");
// warnings and deprecations (id, message) go to the warning service and the log.
struct ConfigReport {
  std::vector<std::string> warnings;
  std::vector<std::pair<std::string, std::string>> deprecations;
  std::vector<std::string> errors;
};

struct Registration {
  std::string type;
  std::string id;
  // Plugin types this one needs initialised first ("*" = every other plugin, alone).
  // (`requires` is a C++20 keyword, hence the name.)
  std::vector<std::string> requirements;
  // Returns a std::shared_ptr<T> with defaults in std::any; empty function: no config.
  std::function<std::any()> config;
  // Decodes a raw table over the defaults produced by config(); throws Error naming the key.
  // Unknown keys and similar non-fatal findings go to `warnings`.
  std::function<void(const nlohmann::ordered_json& table, std::any& config,
                     std::vector<std::string>& warnings)>
      decode_config;
  // Validates (and may complete) a decoded config; run by InitAll before init and by
  // `berthd config check`. Optional.
  std::function<void(std::any& config, ConfigReport& report)> validate_config;
  // Encodes a config object back into a table (for `config dump`); optional.
  std::function<void(const std::any& config, nlohmann::ordered_json& table)> encode_config;
  MigrationFn config_migration;
  // Returns the instance (a std::shared_ptr<T> in std::any); throws Error on failure.
  // A registration without init is "config-only": it makes a config section known (defaults,
  // decoding, migration) without being a plugin. Registering a plugin with the same type.id later
  // merges the two: the plugin takes the config functions it does not define itself.
  std::function<std::any(InitContext&)> init;

  std::string URI() const { return type + "." + id; }
  bool ConfigOnly() const { return !init; }
};

// Thrown by an init function to say the plugin does not apply here (recorded as "skip" with
// the message), as opposed to a failure.
class SkipPlugin : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Status { kPending, kLoaded, kFailed, kSkipped, kDisabled };
const char* StatusName(Status s);  // "pending", "ok", "error", "skip", "disabled"

struct PluginState {
  const Registration* registration = nullptr;
  Status status = Status::kPending;
  std::string error;  // init failure, or why it was skipped
  Meta meta;
  std::any instance;
  std::any config;  // the config the plugin was initialised with (empty: none)
  std::map<std::type_index, std::shared_ptr<void>> interfaces;

  // An interface of the instance: provided at init, or the instance itself when it is exactly a
  // std::shared_ptr<I>. Null when absent or not loaded.
  template <typename I>
  std::shared_ptr<I> As() const {
    if (status != Status::kLoaded) return nullptr;
    auto it = interfaces.find(std::type_index(typeid(I)));
    if (it != interfaces.end()) return std::static_pointer_cast<I>(it->second);
    if (auto* p = std::any_cast<std::shared_ptr<I>>(&instance)) return *p;
    return nullptr;
  }
};

class Registry {
 public:
  // Registering the same type.id twice throws Error(AlreadyExists), except that a config-only
  // registration and a plugin with the same type.id merge (either order). Empty type or id, or
  // "*" together with other requirements, throws Error(InvalidArgument); registering after InitAll
  // throws Error(FailedPrecondition).
  void Register(Registration r);
  // Every registration, config-only ones included, in registration order.
  const std::vector<Registration>& Registrations() const { return registrations_; }
  const Registration* FindRegistration(const std::string& uri) const;

  // Orders the plugins (config-only registrations excluded) by Requires: each plugin after the
  // plugins of the types it requires, otherwise in registration order. Throws
  // Error(FailedPrecondition) on a cycle or an unknown requirement, naming the plugins involved.
  std::vector<const Registration*> Ordered() const;

  // The defaults of a registration's config, decoded over by `table` when given. Throws
  // Error(InvalidArgument) "invalid config for plugin <uri>: ..." on a decoding error.
  static std::any DecodeConfig(const Registration& r, const nlohmann::ordered_json* table,
                               std::vector<std::string>* warnings = nullptr);

  struct InitOptions {
    std::string root;   // daemon root dir
    std::string state;  // daemon state dir
    std::string grpc_address;
    std::vector<std::string> disabled;  // plugin URIs (type.id) or ids
    // Raw plugin config tables keyed by URI, decoded over the defaults at init (a decoding error
    // fails that plugin). Ignored for plugins present in `configs`.
    const nlohmann::ordered_json* plugin_configs = nullptr;
    // Already decoded config objects keyed by URI.
    std::map<std::string, std::any> configs;
  };
  // Initialises every plugin in order: config (given, or decoded from plugin_configs over the
  // defaults), validate_config (errors fail the plugin; warnings and deprecations are emitted
  // through the loaded warning service), then init. A failing init is recorded; a plugin that requires a type
  // of which no plugin loaded is skipped with "dependency <uri> failed: <error>" (or disabled/
  // skipped). Never throws for a plugin failure; throws for ordering errors.
  void InitAll(const InitOptions& opts);

  // Calls Closer::Close of loaded plugins in reverse init order; then drops the instances.
  void CloseAll();

  // Plugin states in init order (after InitAll), otherwise empty.
  const std::vector<PluginState>& States() const { return states_; }
  const PluginState* Find(const std::string& type, const std::string& id) const;
  // Introspection's PluginInfo: the plugin's InfoProvider answer. Throws Error NotFound (no such
  // plugin), FailedPrecondition (not loaded), Unimplemented (no InfoProvider).
  nlohmann::json PluginInfo(const std::string& type, const std::string& id,
                            const nlohmann::json& options) const;

 private:
  friend class InitContext;
  void Validate(const Registration& r, std::any& config) const;
  std::vector<Registration> registrations_;
  std::vector<PluginState> states_;
};

// Each library that provides plugins exposes `void Register<Name>Plugins(Registry&)`; berthd
// calls them explicitly (no static registrars: static libraries would drop them).

}  // namespace berth::plugin
