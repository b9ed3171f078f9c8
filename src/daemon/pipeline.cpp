// The config pipeline: load, migrate, override, decode, (validate).
#include <set>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/error.h"
#include "common/fs.h"
#include "daemon/daemon.h"

namespace berth::daemon {

void SetLogLevel(const std::string& level) {
  static const std::map<std::string, spdlog::level::level_enum> kLevels = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},   {"warn", spdlog::level::warn},
      {"warning", spdlog::level::warn}, {"error", spdlog::level::err},
      {"fatal", spdlog::level::critical}, {"panic", spdlog::level::critical}};
  auto it = kLevels.find(level);
  if (it == kLevels.end()) {
    throw Error(Code::kInvalidArgument,
                "invalid log level \"" + level + "\": must be trace, debug, info, warn or error");
  }
  spdlog::set_level(it->second);
}

MetricsConfig MetricsConfigFrom(const config::Config& c) {
  MetricsConfig m;
  auto it = c.extra.find("metrics");
  if (it == c.extra.end()) return m;
  if (!it->is_object()) throw Error(Code::kInvalidArgument, "metrics: expected a table");
  for (const auto& [key, v] : it->items()) {
    if (key == "address") {
      if (!v.is_string())
        throw Error(Code::kInvalidArgument, "metrics.address: expected a string (host:port)");
      m.address = v.get<std::string>();
    } else if (key == "grpc_histogram") {
      if (!v.is_boolean())
        throw Error(Code::kInvalidArgument, "metrics.grpc_histogram: expected a boolean");
      m.grpc_histogram = v.get<bool>();
    } else {
      spdlog::warn("unknown config key metrics.{} (ignored)", key);
    }
  }
  return m;
}

PipelineResult RunConfigPipeline(const Options& opts, const plugin::Registry& registry, bool validate) {
  PipelineResult p;
  std::string path = opts.config_path;
  if (path.empty() && fs::Exists(kDefaultConfigPath)) path = kDefaultConfigPath;
  if (path.empty()) {
    p.config = config::Default();
    p.file_version = config::kCurrentVersion;
  } else {
    config::LoadResult r = config::LoadFile(path);
    p.config = std::move(r.config);
    p.file_version = r.file_version;
    p.file = path;
    p.warnings = std::move(r.warnings);
  }
  if (!p.config.plugins.is_object()) p.config.plugins = nlohmann::ordered_json::object();

  // Migration by each registration's hook, in registration order.
  if (p.file_version < config::kCurrentVersion) {
    for (const auto& reg : registry.Registrations()) {
      if (!reg.config_migration) continue;
      try {
        reg.config_migration(p.file_version, p.config.plugins, p.warnings);
      } catch (const std::exception& e) {
        throw Error(Code::kInvalidArgument, "failed to migrate config of plugin " + reg.URI() +
                                                " from version " + std::to_string(p.file_version) +
                                                ": " + e.what());
      }
    }
    p.config.version = config::kCurrentVersion;
    p.migrated = true;
  }

  if (opts.address) p.config.grpc.address = *opts.address;
  if (opts.root) p.config.root = *opts.root;
  if (opts.state) p.config.state = *opts.state;
  if (opts.log_level) p.config.debug.level = *opts.log_level;

  std::set<std::string> known;
  for (const auto& reg : registry.Registrations()) known.insert(reg.URI());
  for (auto& w : config::UnimplementedPluginWarnings(p.config, known)) p.warnings.push_back(std::move(w));

  for (const auto& reg : registry.Registrations()) {
    if (!reg.config) continue;
    const nlohmann::ordered_json* table = nullptr;
    auto it = p.config.plugins.find(reg.URI());
    if (it != p.config.plugins.end()) table = &*it;
    try {
      std::any cfg = plugin::Registry::DecodeConfig(reg, table, &p.warnings);
      if (validate && reg.validate_config) {
        plugin::ConfigReport report;
        reg.validate_config(cfg, report);
        for (auto& w : report.warnings) p.warnings.push_back(std::move(w));
        for (auto& [id, msg] : report.deprecations) p.warnings.push_back("DEPRECATION: " + id + ": " + msg);
        for (auto& e : report.errors) p.errors.push_back(reg.URI() + ": " + e);
      }
      p.configs.emplace(reg.URI(), std::move(cfg));
    } catch (const std::exception& e) {
      p.errors.push_back(e.what());
    }
  }
  return p;
}

config::Config EffectiveConfig(const PipelineResult& p, const plugin::Registry& registry) {
  config::Config c = p.config;
  for (const auto& reg : registry.Registrations()) {
    auto it = p.configs.find(reg.URI());
    if (it == p.configs.end() || !reg.encode_config) continue;
    nlohmann::ordered_json table;
    reg.encode_config(it->second, table);
    c.plugins[reg.URI()] = std::move(table);
  }
  return c;
}

}  // namespace berth::daemon
