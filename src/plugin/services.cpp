#include "plugin/services.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace berth::plugin {

void WarningService::Emit(const std::string& id, const std::string& message) {
  bool first = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, inserted] = warnings_.try_emplace(id);
    first = inserted;
    it->second.id = id;
    it->second.message = message;
    it->second.last_occurrence = std::chrono::system_clock::now();
  }
  if (first) spdlog::warn("DEPRECATION: {}: {}", id, message);
}

std::vector<Warning> WarningService::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Warning> out;
  out.reserve(warnings_.size());
  for (const auto& [id, w] : warnings_) out.push_back(w);
  return out;
}

std::vector<PluginRecord> IntrospectionService::Plugins() const {
  std::vector<PluginRecord> out;
  for (const auto& s : registry_.States()) {
    PluginRecord p;
    p.type = s.registration->type;
    p.id = s.registration->id;
    p.requires_types = s.registration->requirements;
    p.status = StatusName(s.status);
    p.error = s.error;
    p.exports = s.meta.exports;
    p.platforms = s.meta.platforms;
    p.capabilities = s.meta.capabilities;
    out.push_back(std::move(p));
  }
  return out;
}

nlohmann::json IntrospectionService::PluginInfo(const std::string& type, const std::string& id,
                                                const nlohmann::json& options) const {
  return registry_.PluginInfo(type, id, options);
}

nlohmann::json IntrospectionService::ToJSON(const std::vector<PluginRecord>& plugins) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& p : plugins) {
    out.push_back({{"type", p.type},
                   {"id", p.id},
                   {"requires", p.requires_types},
                   {"status", p.status},
                   {"error", p.error},
                   {"exports", p.exports},
                   {"platforms", p.platforms},
                   {"capabilities", p.capabilities}});
  }
  return out;
}

void RegisterBuiltinPlugins(Registry& registry) {
  Registration warning;
  warning.type = kWarningPlugin;
  warning.id = kWarningID;
  warning.init = [](InitContext&) -> std::any { return std::make_shared<WarningService>(); };
  registry.Register(std::move(warning));

  Registration introspection;
  introspection.type = kServicePlugin;
  introspection.id = kIntrospectionID;
  introspection.init = [](InitContext& ic) -> std::any {
    return std::make_shared<IntrospectionService>(ic.registry());
  };
  registry.Register(std::move(introspection));
}

}  // namespace berth::plugin
