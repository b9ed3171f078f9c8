#include "criplugins/criplugins.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "common/error.h"
#include "common/fs.h"
#include "plugin/services.h"
#include "support/support.h"

namespace berth::criplugins {
namespace {

using berth::testing::TempDir;
using berth::testing::WriteFile;

TEST(BaseSpecCache, LoadsEachFileOnce) {
  TempDir dir;
  WriteFile(dir / "spec.json", R"({"ociVersion": "1.1.0", "process": {"cwd": "/"}})");
  BaseSpecCache cache;
  auto a = cache.Load(dir / "spec.json");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ((*a)["ociVersion"], "1.1.0");
  fs::RemoveAll(dir / "spec.json");
  auto b = cache.Load(dir / "spec.json");  // cached: the file is not read again
  EXPECT_EQ(a, b);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.Get(dir / "spec.json"), a);
  EXPECT_EQ(cache.Get(dir / "other.json"), nullptr);
}

TEST(BaseSpecCache, MissingAndBrokenFilesNameTheFileAndCause) {
  TempDir dir;
  BaseSpecCache cache;
  try {
    cache.Load(dir / "missing.json");
    FAIL();
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(e.code(), Code::kNotFound);
    EXPECT_NE(msg.find(dir / "missing.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
  }
  WriteFile(dir / "broken.json", R"({"ociVersion": )");
  try {
    cache.Load(dir / "broken.json");
    FAIL();
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    EXPECT_NE(msg.find("failed to parse base OCI spec file " + (dir / "broken.json")), std::string::npos) << msg;
  }
  WriteFile(dir / "array.json", "[1, 2]");
  EXPECT_THROW(cache.Load(dir / "array.json"), Error);
  EXPECT_EQ(cache.size(), 0u);
}

struct Env {
  TempDir dir;
  plugin::Registry reg;
  nlohmann::ordered_json tables = nlohmann::ordered_json::object();

  explicit Env(std::vector<HandlerResolver> resolvers = {}) {
    plugin::RegisterBuiltinPlugins(reg);
    Options opts;
    opts.handler_resolvers = std::move(resolvers);
    RegisterCRIPlugins(reg, opts);
  }
  void Init() {
    plugin::Registry::InitOptions o;
    o.root = dir / "root";
    o.state = dir / "state";
    o.grpc_address = dir / "berth.sock";
    o.plugin_configs = &tables;
    reg.InitAll(o);
  }
  const plugin::PluginState* Runtime() const { return reg.Find(plugin::kCRIServicePlugin, kRuntimeID); }
  nlohmann::ordered_json& Runtimes() {
    return tables["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"];
  }
};

TEST(CRIRuntimePlugin, SharedBaseSpecIsLoadedOnceAndDirsAreDerived) {
  Env env;
  WriteFile(env.dir / "base.json", R"({"ociVersion": "1.1.0"})");
  env.Runtimes()["runc"] = {{"runtime_type", "io.containerd.runc.v2"}, {"base_runtime_spec", env.dir / "base.json"}};
  env.Runtimes()["other"] = {{"runtime_type", "io.containerd.runc.v2"}, {"base_runtime_spec", env.dir / "base.json"}};
  env.Runtimes()["plain"] = {{"runtime_type", "io.containerd.runc.v2"}};
  env.Init();
  auto* st = env.Runtime();
  ASSERT_EQ(st->status, plugin::Status::kLoaded) << st->error;
  auto p = std::any_cast<std::shared_ptr<CRIRuntimePlugin>>(st->instance);
  EXPECT_EQ(p->base_specs.size(), 1u);
  ASSERT_EQ(p->handlers.size(), 3u);
  EXPECT_EQ(p->handlers.at("runc").base_spec, p->handlers.at("other").base_spec);
  EXPECT_EQ(p->handlers.at("plain").base_spec, nullptr);
  EXPECT_EQ(p->LoadOCISpec(env.dir / "base.json"), p->handlers.at("runc").base_spec);
  EXPECT_THROW(p->LoadOCISpec(env.dir / "nope.json"), Error);
  EXPECT_EQ(p->root_dir, env.dir / "root/io.containerd.grpc.v1.cri");
  EXPECT_EQ(p->state_dir, env.dir / "state/io.containerd.grpc.v1.cri");
  struct stat sb {};
  ASSERT_EQ(::stat(p->state_dir.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0711u);  // traversable by the root of user-namespaced pods
  EXPECT_EQ(p->Handler("")->name, "runc");
  EXPECT_EQ(st->meta.exports.at("CRIVersion"), "v1");

  auto info = env.reg.PluginInfo(plugin::kCRIServicePlugin, kRuntimeID, {{"runtime_handler", "other"}});
  EXPECT_EQ(info["name"], "other");
  EXPECT_EQ(info["base_runtime_spec"], env.dir / "base.json");
  try {
    env.reg.PluginInfo(plugin::kCRIServicePlugin, kRuntimeID, {{"runtime_handler", "nope"}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
  }
  EXPECT_EQ(env.reg.Find(plugin::kCRIServicePlugin, kImagesID)->status, plugin::Status::kLoaded);
}

TEST(CRIRuntimePlugin, MissingBaseSpecFailsThePluginNamingTheFile) {
  Env env;
  env.Runtimes()["runc"] = {{"base_runtime_spec", env.dir / "missing.json"}};
  env.Init();
  auto* st = env.Runtime();
  EXPECT_EQ(st->status, plugin::Status::kFailed);
  EXPECT_NE(st->error.find("runc"), std::string::npos) << st->error;
  EXPECT_NE(st->error.find(env.dir / "missing.json"), std::string::npos) << st->error;
  EXPECT_NE(st->error.find("No such file or directory"), std::string::npos) << st->error;
}

TEST(CRIRuntimePlugin, BrokenBaseSpecFailsThePlugin) {
  Env env;
  WriteFile(env.dir / "broken.json", "{");
  env.Runtimes()["runc"] = {{"base_runtime_spec", env.dir / "broken.json"}};
  env.Init();
  auto* st = env.Runtime();
  EXPECT_EQ(st->status, plugin::Status::kFailed);
  EXPECT_NE(st->error.find("failed to parse base OCI spec file " + (env.dir / "broken.json")), std::string::npos)
      << st->error;
}

TEST(CRIRuntimePlugin, ValidationErrorsFailInitAndDeprecationsAreEmitted) {
  Env env;
  env.tables["io.containerd.cri.v1.runtime"]["containerd"]["default_runtime_name"] = "nope";
  env.tables["io.containerd.cri.v1.runtime"]["cni"]["bin_dir"] = "/opt/cni/bin";
  env.Init();
  auto* st = env.Runtime();
  EXPECT_EQ(st->status, plugin::Status::kFailed);
  EXPECT_EQ(st->error.rfind("invalid plugin config: ", 0), 0u) << st->error;
  EXPECT_NE(st->error.find("default_runtime_name"), std::string::npos) << st->error;
  auto ws = env.reg.Find(plugin::kWarningPlugin, plugin::kWarningID)->As<plugin::WarningService>();
  bool found = false;
  for (const auto& w : ws->List()) found |= w.id == config::kDeprecationCNIBinDir;
  EXPECT_TRUE(found);
}

TEST(CRIRuntimePlugin, IgnoredDeprecationsAreNotEmitted) {
  Env env;
  env.tables["io.containerd.cri.v1.runtime"]["cni"]["bin_dir"] = "/opt/cni/bin";
  env.tables["io.containerd.cri.v1.runtime"]["ignore_deprecation_warnings"] = {config::kDeprecationCNIBinDir};
  env.Init();
  ASSERT_EQ(env.Runtime()->status, plugin::Status::kLoaded) << env.Runtime()->error;
  auto ws = env.reg.Find(plugin::kWarningPlugin, plugin::kWarningID)->As<plugin::WarningService>();
  for (const auto& w : ws->List()) EXPECT_NE(w.id, config::kDeprecationCNIBinDir);
}

TEST(CRIRuntimePlugin, HandlerResolversRunPerHandlerAndCanFailInit) {
  std::vector<std::string> seen;
  Env env({{"test", [&seen](const ResolveContext& rc, HandlerInfo& h) {
              seen.push_back(h.name);
              h.features["test_feature"] = true;
              EXPECT_NE(rc.warnings, nullptr);
            }}});
  env.Runtimes()["b"] = {{"runtime_type", "io.containerd.runc.v2"}};
  env.Init();
  ASSERT_EQ(env.Runtime()->status, plugin::Status::kLoaded) << env.Runtime()->error;
  EXPECT_EQ(seen, (std::vector<std::string>{"b", "runc"}));
  auto info = env.reg.PluginInfo(plugin::kCRIServicePlugin, kRuntimeID, {{"runtime_handler", "b"}});
  EXPECT_EQ(info["features"]["test_feature"], true);

  Env failing({{"strict", [](const ResolveContext&, HandlerInfo&) { throw Error(Code::kFailedPrecondition, "not here"); }}});
  failing.Init();
  EXPECT_EQ(failing.Runtime()->status, plugin::Status::kFailed);
  EXPECT_EQ(failing.Runtime()->error, "runtime handler \"runc\": strict: not here");
}

TEST(CRIPlugins, ServerConfigIsConfigOnlyAndKnown) {
  plugin::Registry reg;
  RegisterCRIPlugins(reg);
  auto* r = reg.FindRegistration("io.containerd.grpc.v1.cri");
  ASSERT_NE(r, nullptr);
  EXPECT_TRUE(r->ConfigOnly());
  EXPECT_TRUE(r->config_migration);
  nlohmann::ordered_json t = {{"stream_server_port", "10010"}};
  std::vector<std::string> warnings;
  auto cfg = plugin::Registry::DecodeConfig(*r, &t, &warnings);
  EXPECT_EQ(std::any_cast<std::shared_ptr<config::ServerConfig>>(cfg)->stream_server_port, "10010");
  // Order of the migration hooks: images, runtime, server.
  std::vector<std::string> uris;
  for (const auto& g : reg.Registrations()) uris.push_back(g.URI());
  EXPECT_EQ(uris, (std::vector<std::string>{"io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime",
                                            "io.containerd.grpc.v1.cri"}));
}

}  // namespace
}  // namespace berth::criplugins
