#include "criplugins/criplugins.h"

#include <sys/stat.h>
#include <sys/utsname.h>

#include <algorithm>

#include <spdlog/spdlog.h>

#include "common/caps.h"
#include "common/error.h"
#include "common/fs.h"
#include "config/config.h"
#include "plugin/services.h"

namespace berth::criplugins {

namespace {

std::string Dirname(const std::string& path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

std::string Platform() {
  struct utsname u {};
  std::string arch = "amd64";
  if (::uname(&u) == 0) {
    std::string m = u.machine;
    if (m == "x86_64") arch = "amd64";
    else if (m == "aarch64") arch = "arm64";
    else if (m == "armv7l") arch = "arm";
    else if (m == "i686" || m == "i386") arch = "386";
    else arch = m;
  }
  return "linux/" + arch;
}

void UnknownKeysToWarnings(const std::vector<std::string>& unknown, std::vector<std::string>& warnings) {
  for (const auto& key : unknown) warnings.push_back("unknown config key " + key + " (ignored)");
}

void ToReport(config::Validation v, const std::vector<std::string>& ignored_deprecations,
              plugin::ConfigReport& report) {
  report.warnings = std::move(v.warnings);
  report.errors = std::move(v.errors);
  for (auto& d : v.deprecations) {
    if (std::find(ignored_deprecations.begin(), ignored_deprecations.end(), d.first) !=
        ignored_deprecations.end()) {
      continue;
    }
    report.deprecations.push_back(std::move(d));
  }
}

template <typename T>
std::shared_ptr<T>& Cfg(std::any& a) {
  return *std::any_cast<std::shared_ptr<T>>(&a);
}

// <daemon root>/io.containerd.grpc.v1.cri from the plugin's own <root>/<uri>.
std::string CRIDir(const plugin::InitContext& ic, const char* property) {
  auto it = ic.properties.find(property);
  std::string own = it != ic.properties.end() ? it->second : std::string();
  return fs::Join(Dirname(own), kCRIDirName);
}

}  // namespace

// ---- BaseSpecCache -----------------------------------------------------------------------------

std::shared_ptr<const nlohmann::json> BaseSpecCache::Load(const std::string& path) {
  if (auto it = specs_.find(path); it != specs_.end()) return it->second;
  std::string data;
  try {
    data = fs::ReadFile(path, 16u << 20);
  } catch (const Error& e) {
    throw Error(e.code(), std::string("failed to open base OCI spec: ") + e.what());
  }
  nlohmann::json spec;
  try {
    spec = nlohmann::json::parse(data);
  } catch (const nlohmann::json::exception& e) {
    throw Error(Code::kInvalidArgument, "failed to parse base OCI spec file " + path + ": " + e.what());
  }
  if (!spec.is_object()) {
    throw Error(Code::kInvalidArgument, "failed to parse base OCI spec file " + path +
                                            ": expected a JSON object, got " + spec.type_name());
  }
  auto ptr = std::make_shared<const nlohmann::json>(std::move(spec));
  specs_.emplace(path, ptr);
  return ptr;
}

std::shared_ptr<const nlohmann::json> BaseSpecCache::Get(const std::string& path) const {
  auto it = specs_.find(path);
  return it == specs_.end() ? nullptr : it->second;
}

// ---- CRIRuntimePlugin --------------------------------------------------------------------------

const HandlerInfo* CRIRuntimePlugin::Handler(const std::string& name) const {
  const std::string& n = name.empty() ? config.containerd.default_runtime_name : name;
  auto it = handlers.find(n);
  return it == handlers.end() ? nullptr : &it->second;
}

std::shared_ptr<const nlohmann::json> CRIRuntimePlugin::LoadOCISpec(const std::string& path) const {
  auto spec = base_specs.Get(path);
  if (!spec) throw Error(Code::kNotFound, "base OCI spec " + path + " was not loaded at start-up");
  return spec;
}

nlohmann::json CRIRuntimePlugin::PluginInfo(const nlohmann::json& options) {
  std::string name;
  if (options.is_object()) {
    auto it = options.find("runtime_handler");
    if (it != options.end()) {
      if (!it->is_string()) throw Error(Code::kInvalidArgument, "runtime_handler: expected a string");
      name = it->get<std::string>();
    }
  } else if (!options.is_null()) {
    throw Error(Code::kInvalidArgument, "options: expected a JSON object");
  }
  const HandlerInfo* h = Handler(name);
  if (!h) {
    std::string known;
    for (const auto& [n, _] : handlers) known += (known.empty() ? "" : ", ") + n;
    throw Error(Code::kNotFound, "runtime handler \"" + name + "\" not found (configured: " + known + ")");
  }
  nlohmann::json features = h->features;
  return {{"name", h->name},
          {"runtime_type", h->runtime.runtime_type},
          {"runtime_path", h->runtime.runtime_path},
          {"binary_name", h->runtime.BinaryName()},
          {"base_runtime_spec", h->runtime.base_runtime_spec},
          {"treat_ro_mounts_as_rro", h->runtime.TreatRoMountsAsRro()},
          {"features", features}};
}

// restrict_oom_score_adj as set, or when unset, on iff berthd lacks CAP_SYS_RESOURCE: without it
// the kernel refuses any oom_score_adj below berthd's own, so every pod asking for one would fail.
bool ResolveRestrictOom(const config::RuntimeConfig& c, plugin::WarningService* ws) {
  if (c.restrict_oom_score_adj) return *c.restrict_oom_score_adj;
  if (caps::HasEffective(caps::kSysResource)) return false;
  const std::string msg =
      "berthd lacks CAP_SYS_RESOURCE: oom_score_adj of pods and containers is clamped to berthd's "
      "own "
      "(as restrict_oom_score_adj = true); set restrict_oom_score_adj in the config to choose";
  if (ws) {
    ws->Emit(kRestrictOomWarningID, msg);
  } else {
    spdlog::warn("{}", msg);
  }
  return true;
}

// ---- registrations -----------------------------------------------------------------------------

plugin::Registration RuntimeRegistration(Options options) {
  plugin::Registration r;
  r.type = plugin::kCRIServicePlugin;
  r.id = kRuntimeID;
  r.requirements = {plugin::kWarningPlugin, plugin::kServicePlugin};
  r.config = [] { return std::any(std::make_shared<config::RuntimeConfig>(config::DefaultRuntimeConfig())); };
  r.decode_config = [](const nlohmann::ordered_json& table, std::any& cfg, std::vector<std::string>& warnings) {
    std::vector<std::string> unknown;
    *Cfg<config::RuntimeConfig>(cfg) = config::DecodeRuntimeConfig(table, &unknown);
    UnknownKeysToWarnings(unknown, warnings);
  };
  r.encode_config = [](const std::any& cfg, nlohmann::ordered_json& table) {
    table = config::Encode(*std::any_cast<std::shared_ptr<config::RuntimeConfig>>(cfg));
  };
  r.validate_config = [](std::any& cfg, plugin::ConfigReport& report) {
    auto& c = *Cfg<config::RuntimeConfig>(cfg);
    ToReport(config::ValidateRuntimeConfig(c), c.ignore_deprecation_warnings, report);
  };
  r.config_migration = [](int version, nlohmann::ordered_json& plugins, std::vector<std::string>& warnings) {
    config::MigrateCRIRuntime(version, plugins, warnings);
  };
  r.init = [options = std::move(options)](plugin::InitContext& ic) -> std::any {
    ic.meta.platforms = {Platform()};
    ic.meta.exports["CRIVersion"] = "v1";

    auto p = std::make_shared<CRIRuntimePlugin>();
    p->config = ic.Config<config::RuntimeConfig>();  // validated by the registry
    p->root_dir = CRIDir(ic, plugin::kPropertyRootDir);
    p->state_dir = CRIDir(ic, plugin::kPropertyStateDir);
    p->grpc_address = ic.properties[plugin::kPropertyGRPCAddress];
    // 0711: traversable (not listable) by the mapped root of user-namespaced pods, whose runtime
    // reaches bundles, volumes and staged mounts below it as that uid.
    fs::MkdirAll(p->state_dir, 0711);
    if (::chmod(p->state_dir.c_str(), 0711) != 0) ThrowErrno("failed to chmod " + p->state_dir);

    for (const auto& [name, rt] : p->config.containerd.runtimes) {
      HandlerInfo h;
      h.name = name;
      h.runtime = rt;
      if (!rt.base_runtime_spec.empty()) {
        try {
          h.base_spec = p->base_specs.Load(rt.base_runtime_spec);
        } catch (const Error& e) {
          throw Error(e.code(), "failed to load base OCI spec of runtime handler \"" + name + "\": " + e.what());
        }
      }
      p->handlers.emplace(name, std::move(h));
    }

    std::shared_ptr<plugin::WarningService> ws;
    try {
      ws = ic.GetSingle<plugin::WarningService>(plugin::kWarningPlugin);
    } catch (const Error&) {
    }
    p->restrict_oom_score_adj = ResolveRestrictOom(p->config, ws.get());
    ResolveContext rc{*p, ic, ws.get()};
    auto resolvers = BuiltinHandlerResolvers();
    resolvers.insert(resolvers.end(), options.handler_resolvers.begin(), options.handler_resolvers.end());
    for (const auto& res : resolvers) {
      for (auto& [name, h] : p->handlers) {
        try {
          res.resolve(rc, h);
        } catch (const std::exception& e) {
          throw Error(Code::kFailedPrecondition,
                      "runtime handler \"" + name + "\": " + res.name + ": " + e.what());
        }
      }
    }
    spdlog::info("CRI runtime plugin: {} runtime handler(s), default \"{}\", {} base spec(s), root {}, state {}",
                 p->handlers.size(), p->config.containerd.default_runtime_name, p->base_specs.size(),
                 p->root_dir, p->state_dir);
    ic.Provide<plugin::InfoProvider>(p);
    return p;
  };
  return r;
}

plugin::Registration ImagesRegistration() {
  plugin::Registration r;
  r.type = plugin::kCRIServicePlugin;
  r.id = kImagesID;
  r.requirements = {plugin::kWarningPlugin};
  r.config = [] { return std::any(std::make_shared<config::ImageConfig>(config::DefaultImageConfig())); };
  r.decode_config = [](const nlohmann::ordered_json& table, std::any& cfg, std::vector<std::string>& warnings) {
    std::vector<std::string> unknown;
    *Cfg<config::ImageConfig>(cfg) = config::DecodeImageConfig(table, &unknown);
    UnknownKeysToWarnings(unknown, warnings);
  };
  r.encode_config = [](const std::any& cfg, nlohmann::ordered_json& table) {
    table = config::Encode(*std::any_cast<std::shared_ptr<config::ImageConfig>>(cfg));
  };
  r.validate_config = [](std::any& cfg, plugin::ConfigReport& report) {
    ToReport(config::ValidateImageConfig(*Cfg<config::ImageConfig>(cfg)), {}, report);
  };
  r.config_migration = [](int version, nlohmann::ordered_json& plugins, std::vector<std::string>& warnings) {
    config::MigrateCRIImages(version, plugins, warnings);
  };
  r.init = [](plugin::InitContext& ic) -> std::any {
    ic.meta.platforms = {Platform()};
    auto p = std::make_shared<CRIImagesPlugin>();
    p->config = ic.Config<config::ImageConfig>();
    p->root_dir = CRIDir(ic, plugin::kPropertyRootDir);
    p->state_dir = CRIDir(ic, plugin::kPropertyStateDir);
    return p;
  };
  return r;
}

plugin::Registration ServerConfigRegistration() {
  plugin::Registration r;
  r.type = plugin::kGRPCPlugin;
  r.id = kServerID;
  r.config = [] { return std::any(std::make_shared<config::ServerConfig>(config::DefaultServerConfig())); };
  r.decode_config = [](const nlohmann::ordered_json& table, std::any& cfg, std::vector<std::string>& warnings) {
    std::vector<std::string> unknown;
    *Cfg<config::ServerConfig>(cfg) = config::DecodeServerConfig(table, &unknown);
    UnknownKeysToWarnings(unknown, warnings);
  };
  r.encode_config = [](const std::any& cfg, nlohmann::ordered_json& table) {
    table = config::Encode(*std::any_cast<std::shared_ptr<config::ServerConfig>>(cfg));
  };
  r.validate_config = [](std::any& cfg, plugin::ConfigReport& report) {
    ToReport(config::ValidateServerConfig(*Cfg<config::ServerConfig>(cfg)), {}, report);
  };
  r.config_migration = [](int version, nlohmann::ordered_json& plugins, std::vector<std::string>& warnings) {
    config::MigrateCRIServer(version, plugins, warnings);
  };
  return r;  // config-only: the CRI gRPC plugin registers init
}

void RegisterCRIPlugins(plugin::Registry& registry, Options options) {
  registry.Register(ImagesRegistration());
  registry.Register(RuntimeRegistration(std::move(options)));
  registry.Register(ServerConfigRegistration());
}

}  // namespace berth::criplugins
