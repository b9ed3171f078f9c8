#include "daemon/daemon.h"

#include <sys/stat.h>

#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "berth/admin/v1/admin.grpc.pb.h"
#include "common/error.h"
#include "common/fs.h"
#include "criplugins/criplugins.h"
#include "plugin/services.h"
#include "support/support.h"

namespace berth::daemon {
namespace {

using berth::testing::TempDir;
using berth::testing::WriteFile;

// A plugin with a config and a migration hook that moves "old.v1.x".key to its own table.
void RegisterTestPlugins(plugin::Registry& r) {
  plugin::RegisterBuiltinPlugins(r);
  plugin::Registration t;
  t.type = "test.v1";
  t.id = "x";
  t.config = [] { return std::any(std::make_shared<std::string>("default")); };
  t.decode_config = [](const nlohmann::ordered_json& table, std::any& cfg, std::vector<std::string>&) {
    if (table.contains("value")) {
      if (!table["value"].is_string()) throw Error(Code::kInvalidArgument, "value: expected string");
      *std::any_cast<std::shared_ptr<std::string>>(cfg) = table["value"].get<std::string>();
    }
  };
  t.encode_config = [](const std::any& cfg, nlohmann::ordered_json& table) {
    table = {{"value", *std::any_cast<std::shared_ptr<std::string>>(cfg)}};
  };
  t.config_migration = [](int version, nlohmann::ordered_json& plugins, std::vector<std::string>&) {
    if (version < 3 && plugins.contains("old.v1.x")) {
      plugins["test.v1.x"] = plugins["old.v1.x"];
      plugins.erase("old.v1.x");
    }
  };
  t.init = [](plugin::InitContext&) -> std::any { return std::make_shared<int>(1); };
  r.Register(std::move(t));
}

Options TestOptions(const TempDir& dir, const std::string& config) {
  Options o;
  o.config_path = config;
  o.address = dir / "run/berth.sock";
  o.root = dir / "root";
  o.state = dir / "state";
  o.registrars = {&RegisterTestPlugins};
  return o;
}

TEST(Pipeline, MigratesOldFilesAndDecodes) {
  TempDir dir;
  WriteFile(dir / "c.toml", "version = 2\n[plugins.\"old.v1.x\"]\nvalue = \"migrated\"\n"
                            "[plugins.\"io.containerd.unknown.v1.y\"]\na = 1\n");
  plugin::Registry reg;
  RegisterTestPlugins(reg);
  auto p = RunConfigPipeline(TestOptions(dir, dir / "c.toml"), reg);
  EXPECT_TRUE(p.migrated);
  EXPECT_EQ(p.file_version, 2);
  EXPECT_EQ(p.config.version, 3);
  EXPECT_TRUE(p.errors.empty());
  EXPECT_EQ(*std::any_cast<std::shared_ptr<std::string>>(p.configs.at("test.v1.x")), "migrated");
  bool unknown_warned = false;
  for (const auto& w : p.warnings) unknown_warned |= w.find("io.containerd.unknown.v1.y") != std::string::npos;
  EXPECT_TRUE(unknown_warned);
  EXPECT_EQ(p.config.grpc.address, dir / "run/berth.sock");  // flag override

  auto eff = EffectiveConfig(p, reg);
  EXPECT_EQ(eff.plugins["test.v1.x"]["value"], "migrated");
  EXPECT_EQ(eff.plugins["io.containerd.unknown.v1.y"]["a"], 1);  // kept verbatim
}

TEST(Pipeline, DecodeErrorsAreCollected) {
  TempDir dir;
  WriteFile(dir / "c.toml", "version = 3\n[plugins.\"test.v1.x\"]\nvalue = 5\n");
  plugin::Registry reg;
  RegisterTestPlugins(reg);
  auto p = RunConfigPipeline(TestOptions(dir, dir / "c.toml"), reg);
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0], "invalid config for plugin test.v1.x: value: expected string");
  EXPECT_THROW(Daemon::Load(TestOptions(dir, dir / "c.toml")), Error);
}

TEST(Pipeline, MissingFileIsAnError) {
  TempDir dir;
  plugin::Registry reg;
  EXPECT_THROW(RunConfigPipeline(TestOptions(dir, dir / "missing.toml"), reg), Error);
}

TEST(Pipeline, ValidationFindsCRIErrors) {
  TempDir dir;
  WriteFile(dir / "c.toml", "version = 3\n[plugins.\"io.containerd.cri.v1.runtime\".containerd]\n"
                            "default_runtime_name = \"nope\"\n");
  plugin::Registry reg;
  criplugins::RegisterCRIPlugins(reg);
  auto p = RunConfigPipeline(TestOptions(dir, dir / "c.toml"), reg, /*validate=*/true);
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_NE(p.errors[0].find("default_runtime_name"), std::string::npos) << p.errors[0];
}

TEST(Daemon, ServesAdminAndStops) {
  TempDir dir;
  WriteFile(dir / "c.toml", "version = 3\n[plugins.\"test.v1.x\"]\nvalue = \"v\"\n");
  auto d = Daemon::Load(TestOptions(dir, dir / "c.toml"));
  d->Start();
  const std::string sock = dir / "run/berth.sock";
  struct stat st {};
  ASSERT_EQ(::stat(sock.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);

  auto stub = berth::admin::v1::Admin::NewStub(grpc::CreateChannel("unix:" + sock, grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext ctx;
    berth::admin::v1::ListPluginsResponse resp;
    ASSERT_TRUE(stub->ListPlugins(&ctx, {}, &resp).ok());
    ASSERT_EQ(resp.plugins_size(), 4);
    EXPECT_EQ(resp.plugins(2).id(), "x");
    EXPECT_EQ(resp.plugins(3).id(), kAdminPluginID);
    EXPECT_EQ(resp.plugins(3).status(), "ok");
  }
  {
    grpc::ClientContext ctx;
    berth::admin::v1::ConfigDumpResponse resp;
    ASSERT_TRUE(stub->ConfigDump(&ctx, {}, &resp).ok());
    EXPECT_NE(resp.toml().find("value = \"v\""), std::string::npos) << resp.toml();
  }
  {
    grpc::ClientContext ctx;
    berth::admin::v1::PluginInfoRequest req;
    req.set_type("test.v1");
    req.set_id("x");
    berth::admin::v1::PluginInfoResponse resp;
    auto s = stub->PluginInfo(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  }
  {
    grpc::ClientContext ctx;
    berth::admin::v1::PluginInfoRequest req;
    req.set_type("test.v1");
    req.set_id("nope");
    berth::admin::v1::PluginInfoResponse resp;
    EXPECT_EQ(stub->PluginInfo(&ctx, req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  }

  // A second daemon on the same live socket is refused.
  Options second = TestOptions(dir, dir / "c.toml");
  second.root = dir / "root2";
  second.state = dir / "state2";
  auto d2 = Daemon::Load(second);
  try {
    d2->Start();
    FAIL() << "expected the live socket to be refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kAlreadyExists);
  }
  d2.reset();
  EXPECT_TRUE(fs::Exists(sock));  // the refused daemon does not remove the other's socket

  d->Stop();
  d->Wait();  // returns at once after Stop
  EXPECT_FALSE(fs::Exists(sock));
}

TEST(Daemon, RequiredPluginsAndDisabled) {
  TempDir dir;
  WriteFile(dir / "c.toml", "version = 3\nrequired_plugins = [\"test.v1.x\"]\ndisabled_plugins = [\"x\"]\n");
  try {
    Daemon::Load(TestOptions(dir, dir / "c.toml"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "required plugin test.v1.x did not load (disabled)");
  }
  WriteFile(dir / "d.toml", "version = 3\nrequired_plugins = [\"test.v1.x\"]\n");
  auto d = Daemon::Load(TestOptions(dir, dir / "d.toml"));
  EXPECT_EQ(d->registry().Find("test.v1", "x")->status, plugin::Status::kLoaded);
}

TEST(Daemon, InvalidLogLevel) {
  EXPECT_THROW(SetLogLevel("loud"), Error);
  SetLogLevel("info");
}

}  // namespace
}  // namespace berth::daemon
