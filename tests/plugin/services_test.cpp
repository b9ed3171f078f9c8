#include "plugin/services.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace berth::plugin {
namespace {

TEST(Services, WarningServiceKeepsOnePerID) {
  WarningService w;
  w.Emit("io.containerd.deprecation/b", "second");
  w.Emit("io.containerd.deprecation/a", "first");
  auto t0 = w.List()[0].last_occurrence;
  w.Emit("io.containerd.deprecation/a", "first again");
  auto list = w.List();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].id, "io.containerd.deprecation/a");
  EXPECT_EQ(list[0].message, "first again");
  EXPECT_GE(list[0].last_occurrence, t0);
  EXPECT_EQ(list[1].id, "io.containerd.deprecation/b");
}

TEST(Services, BuiltinsLoadAndIntrospectionListsEverything) {
  Registry reg;
  RegisterBuiltinPlugins(reg);
  Registration user;
  user.type = kCRIServicePlugin;
  user.id = "runtime";
  user.requirements = {kWarningPlugin, kServicePlugin};
  user.init = [](InitContext& ic) -> std::any {
    ic.GetSingle<WarningService>(kWarningPlugin)->Emit("x/y", "deprecated thing");
    ic.meta.exports["CRIVersion"] = "v1";
    ic.meta.platforms = {"linux/amd64"};
    return std::make_shared<int>(3);
  };
  reg.Register(std::move(user));
  Registration bad;
  bad.type = "t.bad";
  bad.id = "bad";
  bad.init = [](InitContext&) -> std::any { throw std::runtime_error("nope"); };
  reg.Register(std::move(bad));
  reg.InitAll({});

  auto intro = reg.Find(kServicePlugin, kIntrospectionID)->As<IntrospectionService>();
  ASSERT_NE(intro, nullptr);
  auto plugins = intro->Plugins();
  ASSERT_EQ(plugins.size(), 4u);
  EXPECT_EQ(plugins[0].id, kWarningID);
  EXPECT_EQ(plugins[2].id, "runtime");
  EXPECT_EQ(plugins[2].status, "ok");
  EXPECT_EQ(plugins[2].exports.at("CRIVersion"), "v1");
  EXPECT_EQ(plugins[3].status, "error");
  EXPECT_EQ(plugins[3].error, "nope");
  auto j = IntrospectionService::ToJSON(plugins);
  EXPECT_EQ(j[2]["requires"][0], kWarningPlugin);
  EXPECT_EQ(j[2]["platforms"][0], "linux/amd64");

  auto warnings = reg.Find(kWarningPlugin, kWarningID)->As<WarningService>()->List();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].message, "deprecated thing");
}

}  // namespace
}  // namespace berth::plugin

namespace berth::plugin {
namespace {

TEST(Services, ValidationErrorsFailAndWarningsAreEmitted) {
  for (bool fail : {false, true}) {
    Registry reg;
    RegisterBuiltinPlugins(reg);
    Registration r;
    r.type = kCRIServicePlugin;
    r.id = "v";
    r.requirements = {kWarningPlugin};
    r.config = [] { return std::any(std::make_shared<int>(1)); };
    r.validate_config = [fail](std::any& cfg, ConfigReport& rep) {
      *std::any_cast<std::shared_ptr<int>>(cfg) = 2;  // completes defaults
      rep.warnings.push_back("w1");
      rep.deprecations.push_back({"io.containerd.deprecation/x", "x is deprecated"});
      if (fail) rep.errors = {"a: bad", "b: bad"};
    };
    int seen = 0;
    r.init = [&seen](InitContext& ic) -> std::any {
      seen = ic.Config<int>();
      return std::make_shared<int>(0);
    };
    reg.Register(std::move(r));
    reg.InitAll({});
    auto* st = reg.Find(kCRIServicePlugin, "v");
    auto ws = reg.Find(kWarningPlugin, kWarningID)->As<WarningService>();
    auto list = ws->List();
    ASSERT_EQ(list.size(), 2u);
    EXPECT_EQ(list[0].id, "io.containerd.cri.v1.v/config-warning-1");
    EXPECT_EQ(list[1].id, "io.containerd.deprecation/x");
    if (fail) {
      EXPECT_EQ(st->status, Status::kFailed);
      EXPECT_EQ(st->error, "invalid plugin config: a: bad; b: bad");
      EXPECT_EQ(seen, 0);
    } else {
      EXPECT_EQ(st->status, Status::kLoaded);
      EXPECT_EQ(seen, 2);
    }
  }
}

}  // namespace
}  // namespace berth::plugin
