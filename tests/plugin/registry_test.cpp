#include "plugin/registry.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace berth::plugin {
namespace {

struct Counter {
  int value = 0;
};

Registration Plain(const std::string& type, const std::string& id,
                   std::vector<std::string> reqs = {}, std::vector<std::string>* log = nullptr) {
  Registration r;
  r.type = type;
  r.id = id;
  r.requirements = std::move(reqs);
  r.init = [log, uri = r.URI()](InitContext&) -> std::any {
    if (log) log->push_back(uri);
    return std::make_shared<Counter>();
  };
  return r;
}

std::vector<std::string> URIs(const std::vector<const Registration*>& regs) {
  std::vector<std::string> out;
  for (auto* r : regs) out.push_back(r->URI());
  return out;
}

TEST(Registry, OrdersByRequiresStableByRegistration) {
  Registry reg;
  reg.Register(Plain("t.c", "c", {"t.b"}));
  reg.Register(Plain("t.a", "a1"));
  reg.Register(Plain("t.b", "b", {"t.a"}));
  reg.Register(Plain("t.a", "a2"));
  reg.Register(Plain("t.d", "d"));
  EXPECT_EQ(URIs(reg.Ordered()),
            (std::vector<std::string>{"t.a.a1", "t.a.a2", "t.b.b", "t.c.c", "t.d.d"}));
}

TEST(Registry, StarRequiresEverythingElse) {
  Registry reg;
  reg.Register(Plain("t.all", "x", {"*"}));
  reg.Register(Plain("t.a", "a"));
  reg.Register(Plain("t.b", "b", {"t.a"}));
  EXPECT_EQ(URIs(reg.Ordered()), (std::vector<std::string>{"t.a.a", "t.b.b", "t.all.x"}));
  EXPECT_THROW(reg.Register(Plain("t.bad", "y", {"*", "t.a"})), Error);
}

TEST(Registry, CycleIsAnErrorNamingThePlugins) {
  Registry reg;
  reg.Register(Plain("t.a", "a", {"t.c"}));
  reg.Register(Plain("t.b", "b", {"t.a"}));
  reg.Register(Plain("t.c", "c", {"t.b"}));
  try {
    reg.Ordered();
    FAIL() << "expected a cycle error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(e.code(), Code::kFailedPrecondition);
    EXPECT_NE(msg.find("circular plugin dependency"), std::string::npos) << msg;
    EXPECT_NE(msg.find("t.a.a"), std::string::npos) << msg;
    EXPECT_NE(msg.find("t.b.b"), std::string::npos) << msg;
    EXPECT_NE(msg.find("t.c.c"), std::string::npos) << msg;
  }
  EXPECT_THROW(reg.InitAll({}), Error);
}

TEST(Registry, UnknownRequirementIsAnError) {
  Registry reg;
  reg.Register(Plain("t.a", "a", {"t.missing"}));
  try {
    reg.Ordered();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("t.a.a"), std::string::npos) << msg;
    EXPECT_NE(msg.find("t.missing"), std::string::npos) << msg;
  }
}

TEST(Registry, DuplicateAndInvalidRegistrations) {
  Registry reg;
  reg.Register(Plain("t.a", "a"));
  EXPECT_THROW(reg.Register(Plain("t.a", "a")), Error);
  EXPECT_THROW(reg.Register(Plain("", "a")), Error);
  EXPECT_THROW(reg.Register(Plain("t.a", "")), Error);
}

TEST(Registry, FailurePropagatesToDependents) {
  Registry reg;
  std::vector<std::string> log;
  Registration bad = Plain("t.a", "a");
  bad.init = [](InitContext&) -> std::any { throw Error(Code::kInternal, "boom"); };
  reg.Register(std::move(bad));
  reg.Register(Plain("t.b", "b", {"t.a"}, &log));
  reg.Register(Plain("t.c", "c", {"t.b"}, &log));
  reg.Register(Plain("t.d", "d", {}, &log));
  reg.InitAll({});
  EXPECT_EQ(log, (std::vector<std::string>{"t.d.d"}));
  auto* a = reg.Find("t.a", "a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->status, Status::kFailed);
  EXPECT_EQ(a->error, "boom");
  auto* b = reg.Find("t.b", "b");
  EXPECT_EQ(b->status, Status::kSkipped);
  EXPECT_EQ(b->error, "dependency t.a.a failed: boom");
  auto* c = reg.Find("t.c", "c");
  EXPECT_EQ(c->status, Status::kSkipped);
  EXPECT_EQ(c->error, "dependency t.b.b skipped: dependency t.a.a failed: boom");
  EXPECT_EQ(reg.Find("t.d", "d")->status, Status::kLoaded);
  EXPECT_STREQ(StatusName(a->status), "error");
  EXPECT_STREQ(StatusName(b->status), "skip");
}

TEST(Registry, OneLoadedPluginOfATypeSatisfiesTheRequirement) {
  Registry reg;
  Registration bad = Plain("t.snap", "broken");
  bad.init = [](InitContext&) -> std::any { throw SkipPlugin("not supported here"); };
  reg.Register(std::move(bad));
  reg.Register(Plain("t.snap", "good"));
  reg.Register(Plain("t.user", "u", {"t.snap"}));
  reg.InitAll({});
  EXPECT_EQ(reg.Find("t.snap", "broken")->status, Status::kSkipped);
  EXPECT_EQ(reg.Find("t.snap", "broken")->error, "not supported here");
  EXPECT_EQ(reg.Find("t.user", "u")->status, Status::kLoaded);
}

TEST(Registry, DisabledByURIOrID) {
  Registry reg;
  std::vector<std::string> log;
  reg.Register(Plain("t.a", "a", {}, &log));
  reg.Register(Plain("t.b", "b", {}, &log));
  reg.Register(Plain("t.c", "c", {"t.a"}, &log));
  Registry::InitOptions opts;
  opts.disabled = {"t.a.a", "b"};
  reg.InitAll(opts);
  EXPECT_TRUE(log.empty());
  EXPECT_EQ(reg.Find("t.a", "a")->status, Status::kDisabled);
  EXPECT_EQ(reg.Find("t.b", "b")->status, Status::kDisabled);
  EXPECT_EQ(reg.Find("t.c", "c")->status, Status::kSkipped);
  EXPECT_EQ(reg.Find("t.c", "c")->error, "dependency t.a.a disabled");
}

TEST(Registry, InitContextLookupsAndDirs) {
  Registry reg;
  reg.Register(Plain("t.a", "a"));
  Registration user;
  user.type = "t.u";
  user.id = "u";
  user.requirements = {"t.a"};
  std::string root, state, addr;
  bool missing_threw = false;
  user.init = [&](InitContext& ic) -> std::any {
    auto a = ic.GetAs<Counter>("t.a", "a");
    a->value = 7;
    EXPECT_EQ(ic.GetSingle<Counter>("t.a"), a);
    EXPECT_EQ(ic.GetByType("t.a").size(), 1u);
    try {
      ic.GetByID("t.x", "x");
    } catch (const Error& e) {
      missing_threw = e.code() == Code::kNotFound;
    }
    root = ic.root_dir;
    state = ic.state_dir;
    addr = ic.properties.at(kPropertyGRPCAddress);
    return std::make_shared<int>(1);
  };
  reg.Register(std::move(user));
  Registry::InitOptions opts;
  opts.root = "/r";
  opts.state = "/s";
  opts.grpc_address = "/s/sock";
  reg.InitAll(opts);
  EXPECT_TRUE(missing_threw);
  EXPECT_EQ(root, "/r/t.u.u");
  EXPECT_EQ(state, "/s/t.u.u");
  EXPECT_EQ(addr, "/s/sock");
  EXPECT_EQ(std::any_cast<std::shared_ptr<Counter>>(reg.Find("t.a", "a")->instance)->value, 7);
  EXPECT_THROW(reg.Register(Plain("t.late", "l")), Error);
}

struct TestConfig {
  int n = 1;
  std::string s = "default";
};

Registration WithConfig(std::string* seen) {
  Registration r;
  r.type = "t.cfg";
  r.id = "c";
  r.config = [] { return std::any(std::make_shared<TestConfig>()); };
  r.decode_config = [](const nlohmann::ordered_json& t, std::any& cfg, std::vector<std::string>&) {
    auto c = std::any_cast<std::shared_ptr<TestConfig>>(cfg);
    if (t.contains("n")) {
      if (!t["n"].is_number_integer()) throw Error(Code::kInvalidArgument, "n: expected integer");
      c->n = t["n"].get<int>();
    }
  };
  r.init = [seen](InitContext& ic) -> std::any {
    const auto& c = ic.Config<TestConfig>();
    *seen = std::to_string(c.n) + "/" + c.s;
    return std::make_shared<int>(0);
  };
  return r;
}

TEST(Registry, ConfigDefaultsAndDecoding) {
  std::string seen;
  {
    Registry reg;
    reg.Register(WithConfig(&seen));
    reg.InitAll({});
    EXPECT_EQ(seen, "1/default");
  }
  {
    Registry reg;
    reg.Register(WithConfig(&seen));
    nlohmann::ordered_json tables = {{"t.cfg.c", {{"n", 5}}}};
    Registry::InitOptions opts;
    opts.plugin_configs = &tables;
    reg.InitAll(opts);
    EXPECT_EQ(seen, "5/default");
  }
  {
    Registry reg;
    reg.Register(WithConfig(&seen));
    nlohmann::ordered_json tables = {{"t.cfg.c", {{"n", "x"}}}};
    Registry::InitOptions opts;
    opts.plugin_configs = &tables;
    reg.InitAll(opts);
    auto* s = reg.Find("t.cfg", "c");
    EXPECT_EQ(s->status, Status::kFailed);
    EXPECT_EQ(s->error, "invalid config for plugin t.cfg.c: n: expected integer");
  }
}

TEST(Registry, ConfigOnlyRegistrationMergesWithPlugin) {
  for (bool config_first : {true, false}) {
    Registry reg;
    std::string seen;
    Registration full = WithConfig(&seen);
    Registration config_only = full;
    config_only.init = nullptr;
    Registration plugin;
    plugin.type = full.type;
    plugin.id = full.id;
    plugin.init = full.init;
    if (config_first) {
      reg.Register(config_only);
      EXPECT_TRUE(reg.Ordered().empty());
      reg.Register(plugin);
    } else {
      reg.Register(plugin);
      reg.Register(config_only);
    }
    EXPECT_THROW(reg.Register(config_only), Error);
    ASSERT_EQ(reg.Registrations().size(), 1u);
    EXPECT_FALSE(reg.Registrations()[0].ConfigOnly());
    nlohmann::ordered_json tables = {{"t.cfg.c", {{"n", 9}}}};
    Registry::InitOptions opts;
    opts.plugin_configs = &tables;
    reg.InitAll(opts);
    EXPECT_EQ(seen, "9/default");
  }
}

struct Info : InfoProvider, Closer {
  std::vector<std::string>* log;
  std::string name;
  nlohmann::json PluginInfo(const nlohmann::json& options) override {
    return {{"name", name}, {"echo", options}};
  }
  void Close() override { log->push_back(name); }
};

TEST(Registry, InterfacesPluginInfoAndClose) {
  Registry reg;
  std::vector<std::string> closed;
  for (std::string id : {"a", "b"}) {
    Registration r;
    r.type = "t.i";
    r.id = id;
    r.init = [&closed, id](InitContext& ic) -> std::any {
      auto i = std::make_shared<Info>();
      i->log = &closed;
      i->name = id;
      ic.Provide<InfoProvider>(i);
      ic.Provide<Closer>(i);
      return i;
    };
    reg.Register(std::move(r));
  }
  reg.Register(Plain("t.p", "plain"));
  reg.InitAll({});
  auto info = reg.PluginInfo("t.i", "b", {{"x", 1}});
  EXPECT_EQ(info["name"], "b");
  EXPECT_EQ(info["echo"]["x"], 1);
  try {
    reg.PluginInfo("t.p", "plain", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnimplemented);
  }
  try {
    reg.PluginInfo("t.none", "x", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
  }
  reg.CloseAll();
  EXPECT_EQ(closed, (std::vector<std::string>{"b", "a"}));
}

}  // namespace
}  // namespace berth::plugin
