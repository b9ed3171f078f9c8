// Built-in plugins: the warning service (io.containerd.warning.v1.deprecations) and the
// introspection service (io.containerd.service.v1.introspection-service).
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "plugin/registry.h"

namespace berth::plugin {

inline constexpr const char* kWarningID = "deprecations";
inline constexpr const char* kIntrospectionID = "introspection-service";

struct Warning {
  std::string id;       // e.g. "io.containerd.deprecation/cri-registry-mirrors"
  std::string message;  // what is deprecated and what to do instead
  std::chrono::system_clock::time_point last_occurrence;
};

// Collects deprecation and configuration warnings. Thread-safe.
class WarningService {
 public:
  // Records a warning; logged (at warn level) the first time an id is emitted. A repeated id
  // updates the message and the time.
  void Emit(const std::string& id, const std::string& message);
  // Sorted by id.
  std::vector<Warning> List() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, Warning> warnings_;
};

// One plugin as introspection shows it.
struct PluginRecord {
  std::string type;
  std::string id;
  std::vector<std::string> requires_types;
  std::string status;  // StatusName()
  std::string error;
  std::map<std::string, std::string> exports;
  std::vector<std::string> platforms;
  std::vector<std::string> capabilities;
};

class IntrospectionService {
 public:
  explicit IntrospectionService(const Registry& registry) : registry_(registry) {}
  // Every plugin the registry knows, in init order.
  std::vector<PluginRecord> Plugins() const;
  // The plugin's InfoProvider answer (see Registry::PluginInfo for the errors).
  nlohmann::json PluginInfo(const std::string& type, const std::string& id,
                            const nlohmann::json& options) const;

  // [{"type", "id", "requires", "status", "error", "exports", "platforms", "capabilities"}...]
  static nlohmann::json ToJSON(const std::vector<PluginRecord>& plugins);

 private:
  const Registry& registry_;
};

// Registers the warning and introspection plugins.
void RegisterBuiltinPlugins(Registry& registry);

}  // namespace berth::plugin
