#include "plugin/registry.h"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/error.h"
#include "plugin/services.h"

namespace berth::plugin {

const char* StatusName(Status s) {
  switch (s) {
    case Status::kPending: return "pending";
    case Status::kLoaded: return "ok";
    case Status::kFailed: return "error";
    case Status::kSkipped: return "skip";
    case Status::kDisabled: return "disabled";
  }
  return "unknown";
}

namespace {

std::string Why(const PluginState& s) {
  switch (s.status) {
    case Status::kFailed: return "failed: " + s.error;
    case Status::kSkipped: return "skipped: " + s.error;
    case Status::kDisabled: return "disabled";
    case Status::kPending: return "not initialised";
    case Status::kLoaded: return "loaded";
  }
  return "unknown";
}

void MergeConfigOnly(Registration& plugin, const Registration& config_only) {
  if (!plugin.config) plugin.config = config_only.config;
  if (!plugin.decode_config) plugin.decode_config = config_only.decode_config;
  if (!plugin.validate_config) plugin.validate_config = config_only.validate_config;
  if (!plugin.encode_config) plugin.encode_config = config_only.encode_config;
  if (!plugin.config_migration) plugin.config_migration = config_only.config_migration;
}

}  // namespace

// ---- InitContext -------------------------------------------------------------------------------

std::any InitContext::Get(const std::string& type) const {
  const PluginState* first_bad = nullptr;
  for (const auto& s : registry_->states_) {
    if (s.registration->type != type) continue;
    if (s.status == Status::kLoaded) return s.instance;
    if (!first_bad) first_bad = &s;
  }
  if (first_bad) {
    throw Error(Code::kFailedPrecondition,
                "plugin " + first_bad->registration->URI() + " " + Why(*first_bad));
  }
  throw Error(Code::kNotFound, "no plugin of type " + type + " is loaded");
}

std::any InitContext::GetByID(const std::string& type, const std::string& id) const {
  for (const auto& s : registry_->states_) {
    if (s.registration->type != type || s.registration->id != id) continue;
    if (s.status == Status::kLoaded) return s.instance;
    throw Error(Code::kFailedPrecondition, "plugin " + s.registration->URI() + " " + Why(s));
  }
  throw Error(Code::kNotFound, "plugin " + type + "." + id + " is not loaded");
}

std::map<std::string, std::any> InitContext::GetByType(const std::string& type) const {
  std::map<std::string, std::any> out;
  for (const auto& s : registry_->states_) {
    if (s.registration->type == type && s.status == Status::kLoaded) {
      out.emplace(s.registration->id, s.instance);
    }
  }
  return out;
}

// ---- Registry ----------------------------------------------------------------------------------

void Registry::Register(Registration r) {
  if (!states_.empty()) {
    throw Error(Code::kFailedPrecondition,
                "cannot register plugin " + r.URI() + ": plugins are already initialised");
  }
  if (r.type.empty()) throw Error(Code::kInvalidArgument, "plugin registration without a type (id \"" + r.id + "\")");
  if (r.id.empty()) throw Error(Code::kInvalidArgument, "plugin registration of type " + r.type + " without an id");
  for (const auto& req : r.requirements) {
    if (req == "*" && r.requirements.size() != 1) {
      throw Error(Code::kInvalidArgument,
                  "plugin " + r.URI() + ": requirement \"*\" must be the only requirement");
    }
    if (req.empty()) throw Error(Code::kInvalidArgument, "plugin " + r.URI() + ": empty requirement");
  }
  for (auto& existing : registrations_) {
    if (existing.type != r.type || existing.id != r.id) continue;
    if (existing.ConfigOnly() != r.ConfigOnly()) {
      if (existing.config && r.config) {
        throw Error(Code::kAlreadyExists, "configuration of plugin " + r.URI() + " is already registered");
      }
      if (existing.ConfigOnly()) {
        MergeConfigOnly(r, existing);
        existing = std::move(r);
      } else {
        MergeConfigOnly(existing, r);
      }
      return;
    }
    throw Error(Code::kAlreadyExists, "plugin " + r.URI() + " is already registered");
  }
  registrations_.push_back(std::move(r));
}

const Registration* Registry::FindRegistration(const std::string& uri) const {
  for (const auto& r : registrations_) {
    if (r.URI() == uri) return &r;
  }
  return nullptr;
}

std::vector<const Registration*> Registry::Ordered() const {
  std::vector<const Registration*> plugins;
  for (const auto& r : registrations_) {
    if (!r.ConfigOnly()) plugins.push_back(&r);
  }
  auto requires_all = [](const Registration* r) {
    return r->requirements.size() == 1 && r->requirements[0] == "*";
  };
  // Unknown requirements first, so that the error names them rather than a partial order.
  for (const auto* r : plugins) {
    for (const auto& t : r->requirements) {
      if (t == "*") continue;
      bool found = std::any_of(plugins.begin(), plugins.end(),
                               [&](const Registration* p) { return p->type == t; });
      if (!found) {
        throw Error(Code::kFailedPrecondition, "plugin " + r->URI() + " requires plugin type " + t +
                                                   ", but no plugin of that type is registered");
      }
    }
  }

  std::vector<const Registration*> ordered;
  ordered.reserve(plugins.size());
  std::set<const Registration*> done;
  std::vector<const Registration*> stack;

  std::function<void(const Registration*)> visit = [&](const Registration* r) {
    if (done.count(r)) return;
    auto on_stack = std::find(stack.begin(), stack.end(), r);
    if (on_stack != stack.end()) {
      std::string chain;
      for (auto it = on_stack; it != stack.end(); ++it) chain += (*it)->URI() + " -> ";
      chain += r->URI();
      throw Error(Code::kFailedPrecondition, "circular plugin dependency: " + chain);
    }
    stack.push_back(r);
    for (const auto& t : r->requirements) {
      for (const auto* dep : plugins) {
        if (dep == r) continue;
        // "*" means every plugin that does not itself require everything.
        bool match = t == "*" ? !requires_all(dep) : dep->type == t;
        if (match) visit(dep);
      }
    }
    stack.pop_back();
    done.insert(r);
    ordered.push_back(r);
  };
  for (const auto* r : plugins) visit(r);
  return ordered;
}

std::any Registry::DecodeConfig(const Registration& r, const nlohmann::ordered_json* table,
                               std::vector<std::string>* warnings) {
  std::vector<std::string> local;
  if (!warnings) warnings = &local;
  if (!r.config) {
    if (table && !table->is_null() && !(table->is_object() && table->empty())) {
      warnings->push_back("plugin " + r.URI() + " has no configuration; its config section is ignored");
    }
    return {};
  }
  std::any cfg = r.config();
  if (table && !table->is_null()) {
    if (!table->is_object()) {
      throw Error(Code::kInvalidArgument,
                  "invalid config for plugin " + r.URI() + ": expected a table, got " + table->type_name());
    }
    if (r.decode_config) {
      try {
        r.decode_config(*table, cfg, *warnings);
      } catch (const std::exception& e) {
        throw Error(Code::kInvalidArgument, "invalid config for plugin " + r.URI() + ": " + e.what());
      }
    }
  }
  return cfg;
}

void Registry::Validate(const Registration& r, std::any& config) const {
  ConfigReport report;
  r.validate_config(config, report);
  std::shared_ptr<WarningService> ws;
  for (const auto& s : states_) {
    if (s.registration->type == kWarningPlugin && (ws = s.As<WarningService>())) break;
  }
  for (size_t i = 0; i < report.warnings.size(); ++i) {
    if (ws) {
      ws->Emit(r.URI() + "/config-warning-" + std::to_string(i + 1), report.warnings[i]);
    } else {
      spdlog::warn("plugin {}: {}", r.URI(), report.warnings[i]);
    }
  }
  for (const auto& [id, message] : report.deprecations) {
    if (ws) {
      ws->Emit(id, message);
    } else {
      spdlog::warn("DEPRECATION: {}: {}", id, message);
    }
  }
  if (!report.errors.empty()) {
    std::string msg = "invalid plugin config:";
    for (size_t i = 0; i < report.errors.size(); ++i) msg += (i ? "; " : " ") + report.errors[i];
    throw Error(Code::kInvalidArgument, msg);
  }
}

void Registry::InitAll(const InitOptions& opts) {
  auto ordered = Ordered();
  states_.clear();
  states_.reserve(ordered.size());

  auto disabled = [&](const Registration* r) {
    return std::any_of(opts.disabled.begin(), opts.disabled.end(),
                       [&](const std::string& d) { return d == r->URI() || d == r->id; });
  };

  for (const auto* r : ordered) {
    PluginState st;
    st.registration = r;
    const std::string uri = r->URI();

    if (disabled(r)) {
      st.status = Status::kDisabled;
      spdlog::info("plugin {} is disabled", uri);
      states_.push_back(std::move(st));
      continue;
    }

    // A requirement is met when at least one plugin of the required type loaded.
    for (const auto& t : r->requirements) {
      if (t == "*") continue;
      const PluginState* first_bad = nullptr;
      bool met = false;
      for (const auto& s : states_) {
        if (s.registration->type != t) continue;
        if (s.status == Status::kLoaded) {
          met = true;
          break;
        }
        if (!first_bad) first_bad = &s;
      }
      if (!met && first_bad) {
        st.status = Status::kSkipped;
        st.error = "dependency " + first_bad->registration->URI() + " " + Why(*first_bad);
        break;
      }
    }
    if (st.status == Status::kSkipped) {
      spdlog::warn("skip loading plugin {}: {}", uri, st.error);
      states_.push_back(std::move(st));
      continue;
    }

    InitContext ic;
    ic.registry_ = this;
    ic.root_dir = opts.root + "/" + uri;
    ic.state_dir = opts.state + "/" + uri;
    ic.properties[kPropertyRootDir] = ic.root_dir;
    ic.properties[kPropertyStateDir] = ic.state_dir;
    ic.properties[kPropertyGRPCAddress] = opts.grpc_address;

    spdlog::debug("loading plugin {}", uri);
    try {
      auto it = opts.configs.find(uri);
      if (it != opts.configs.end()) {
        ic.config = it->second;
      } else {
        const nlohmann::ordered_json* table = nullptr;
        if (opts.plugin_configs && opts.plugin_configs->is_object()) {
          auto t = opts.plugin_configs->find(uri);
          if (t != opts.plugin_configs->end()) table = &*t;
        }
        std::vector<std::string> warnings;
        ic.config = DecodeConfig(*r, table, &warnings);
        for (const auto& w : warnings) spdlog::warn("{}", w);
      }
      if (r->validate_config && ic.config.has_value()) Validate(*r, ic.config);
      st.config = ic.config;
      st.instance = r->init(ic);
      st.status = Status::kLoaded;
      st.meta = std::move(ic.meta);
      st.interfaces = std::move(ic.interfaces_);
      spdlog::debug("loaded plugin {}", uri);
    } catch (const SkipPlugin& e) {
      st.status = Status::kSkipped;
      st.error = e.what();
      spdlog::info("skip loading plugin {}: {}", uri, st.error);
    } catch (const std::exception& e) {
      st.status = Status::kFailed;
      st.error = e.what();
      spdlog::warn("failed to load plugin {}: {}", uri, st.error);
    }
    states_.push_back(std::move(st));
  }
}

void Registry::CloseAll() {
  for (auto it = states_.rbegin(); it != states_.rend(); ++it) {
    if (auto c = it->As<Closer>()) {
      try {
        c->Close();
      } catch (const std::exception& e) {
        spdlog::warn("failed to close plugin {}: {}", it->registration->URI(), e.what());
      }
    }
  }
  for (auto it = states_.rbegin(); it != states_.rend(); ++it) {
    it->interfaces.clear();
    it->instance.reset();
  }
}

const PluginState* Registry::Find(const std::string& type, const std::string& id) const {
  for (const auto& s : states_) {
    if (s.registration->type == type && s.registration->id == id) return &s;
  }
  return nullptr;
}

nlohmann::json Registry::PluginInfo(const std::string& type, const std::string& id,
                                    const nlohmann::json& options) const {
  const PluginState* s = Find(type, id);
  if (!s) throw Error(Code::kNotFound, "plugin " + type + "." + id + " not found");
  if (s->status != Status::kLoaded) {
    throw Error(Code::kFailedPrecondition, "plugin " + type + "." + id + " " + Why(*s));
  }
  auto info = s->As<InfoProvider>();
  if (!info) {
    throw Error(Code::kUnimplemented, "plugin " + type + "." + id + " does not provide plugin info");
  }
  return info->PluginInfo(options);
}

}  // namespace berth::plugin
