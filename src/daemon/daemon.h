// berthd's core: the config pipeline, the plugin registry, and the gRPC server on the unix
// socket. The binary (cmd/berthd) parses flags, chooses the plugins and handles signals.
#pragma once

#include <any>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "plugin/registry.h"

namespace grpc {
class Server;
class ServerBuilder;
}  // namespace grpc
namespace berth::metrics {
class HttpServer;
}

namespace berth::daemon {

inline constexpr const char* kDefaultConfigPath = "/etc/berth/config.toml";
inline constexpr const char* kAdminPluginID = "berth-admin";

using Registrar = std::function<void(plugin::Registry&)>;

struct Options {
  // Config file. Empty: kDefaultConfigPath when it exists, else the embedded defaults.
  std::string config_path;
  // Flags that override the config file.
  std::optional<std::string> address, root, state, log_level;
  // Plugin registration functions, called in order (e.g. plugin::RegisterBuiltinPlugins,
  // criplugins::RegisterCRIPlugins). The admin gRPC plugin is always added.
  std::vector<Registrar> registrars;
};

// The config after the pipeline: loaded (file or defaults), migrated to version 3 by the
// registrations' hooks, flags applied, each plugin table decoded over its defaults.
struct PipelineResult {
  config::Config config;       // version 3; plugins: the migrated raw tables
  int file_version = 3;        // version of the file (3 for embedded defaults)
  std::string file;            // the main file, empty for embedded defaults
  bool migrated = false;       // file_version < 3
  std::vector<std::string> warnings;  // loading, migration, unknown sections and keys
  std::vector<std::string> errors;    // decoding (and, with validate, validation) errors
  std::map<std::string, std::any> configs;  // decoded config objects by plugin URI
};

// Runs the pipeline. Throws Error for an unreadable or malformed file (naming file, line and
// key). Decoding errors are collected in `errors`; with `validate`, each registration's
// validate_config runs too and its errors, warnings and deprecations are collected.
PipelineResult RunConfigPipeline(const Options& opts, const plugin::Registry& registry,
                                 bool validate = false);
// The effective config: every registration's decoded config encoded back into its table.
config::Config EffectiveConfig(const PipelineResult& p, const plugin::Registry& registry);

// Applies a log level name (trace, debug, info, warn, error); throws Error(InvalidArgument).
void SetLogLevel(const std::string& level);
// The current log level's name ("info", "warn", ...).
std::string LogLevel();
// [debug] format: "" or "text" (the default lines), "json" (one JSON object per line with
// containerd's keys time, level, msg). Throws Error(InvalidArgument) for another value.
void SetLogFormat(const std::string& format);

// containerd's [metrics] table: address ("host:port"; empty: no metrics) and grpc_histogram.
struct MetricsConfig {
  std::string address;
  bool grpc_histogram = false;
};
// Reads config.extra["metrics"]; throws Error(InvalidArgument) naming the key for a wrong type.
MetricsConfig MetricsConfigFrom(const config::Config& c);

// Sends a state ("READY=1", "STOPPING=1") to systemd when $NOTIFY_SOCKET is set; false otherwise
// or when sending failed.
bool NotifySystemd(const std::string& state);
// Counts and times every gRPC call (metrics::GrpcHandled).
void AddMetricsInterceptor(grpc::ServerBuilder& builder);

class Daemon {
 public:
  // Registers the plugins, runs the config pipeline (logging the migration hint for old files),
  // creates root and state, and initialises the plugins. Throws Error when the config is invalid,
  // plugin ordering fails, or a required plugin did not load (naming it and why).
  static std::unique_ptr<Daemon> Load(Options opts);
  ~Daemon();

  // Serves gRPC on [grpc] address: creates its directory, replaces a stale socket file, refuses
  // a live one (Error AlreadyExists), sets mode 0660 (and uid/gid). Logs
  // "berthd serving on <address>" once the socket accepts connections.
  void Start();
  // The port of the metrics endpoint; 0 when [metrics] address is empty.
  int metrics_port() const;
  // Blocks until Stop() is called.
  void Wait();
  // Stops serving, closes plugins in reverse init order and removes the socket. Idempotent;
  // safe from any thread except gRPC handlers.
  void Stop();

  const plugin::Registry& registry() const { return registry_; }
  const config::Config& config() const { return pipeline_.config; }
  const std::string& address() const { return pipeline_.config.grpc.address; }
  // The effective config as TOML (what `berthd config dump` and Admin.ConfigDump print).
  const std::string& effective_toml() const { return *effective_toml_; }

 private:
  Daemon() = default;
  plugin::Registry registry_;
  PipelineResult pipeline_;
  std::shared_ptr<PipelineResult> check_pipeline_;  // a copy for Admin.Check
  std::shared_ptr<std::string> effective_toml_;
  std::unique_ptr<grpc::Server> server_;
  MetricsConfig metrics_config_;
  std::unique_ptr<metrics::HttpServer> metrics_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
  bool socket_owned_ = false;
};

// Registers the berth.admin.v1.Admin service as the gRPC plugin io.containerd.grpc.v1.berth-admin.
// `pipeline` (optional) is the daemon's config for Admin.Check; filled before the plugins init.
void RegisterAdminPlugin(plugin::Registry& registry,
                         std::shared_ptr<const std::string> effective_toml,
                         std::shared_ptr<const PipelineResult> pipeline = nullptr);

}  // namespace berth::daemon
