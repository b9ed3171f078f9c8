// berthd refuses to load the CRI runtime plugin when a handler says treat_ro_mounts_as_rro =
// "Enabled" and neither its runtime (a runc whose features lack `rro`) nor berth's fallback
// (switched off with BERTH_RRO_FALLBACK=off) can honour it. The same config with the fallback
// allowed loads, and PluginInfo-level details are checked by the resolver's own tests.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/exec.h"
#include "support/support.h"

namespace berth {
namespace {

#ifdef BERTHD_PATH
class Berthd : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why = testing::ContainerSkipReason("runc");
    if (!why.empty()) GTEST_SKIP() << why;
    auto runc = *exec::LookPath("runc");
    auto r = exec::Run({runc, "features"});
    auto doc = nlohmann::json::parse(r.out);
    auto& opts = doc["mountOptions"];
    for (auto it = opts.begin(); it != opts.end();) it = (*it == "rro") ? opts.erase(it) : it + 1;
    testing::WriteFile(tmp_ / "features.json", doc.dump());
    fake_ = tmp_ / "fake-runc";
    testing::WriteFile(fake_, "#!/bin/sh\nif [ \"$1\" = features ]; then cat '" + tmp_ / "features.json" +
                                  "'; exit 0; fi\nexec '" + runc + "' \"$@\"\n");
    ::chmod(fake_.c_str(), 0755);
    testing::WriteFile(tmp_ / "config.toml",
                       "version = 3\n"
                       "[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.fake]\n"
                       "  runtime_type = \"io.containerd.runc.v2\"\n"
                       "  treat_ro_mounts_as_rro = \"Enabled\"\n"
                       "  [plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.fake.options]\n"
                       "    BinaryName = \"" + fake_ + "\"\n");
  }

  // The io.containerd.cri.v1.runtime plugin as `berthd plugins -o json` lists it.
  nlohmann::json RuntimePlugin(const std::string& fallback) {
    exec::Options o;
    for (char** e = environ; *e; ++e)
      if (std::string(*e).rfind("BERTH_RRO_FALLBACK=", 0) != 0) o.env.push_back(*e);
    o.env.push_back("BERTH_RRO_FALLBACK=" + fallback);
    o.timeout = std::chrono::seconds(120);
    auto r = exec::Run({BERTHD_PATH, "--config", tmp_ / "config.toml", "--root", tmp_ / "root", "--state",
                        tmp_ / "state", "--address", tmp_ / "berthd.sock", "plugins", "-o", "json"},
                       o);
    auto list = nlohmann::json::parse(r.out, nullptr, false);
    if (!list.is_array()) {
      ADD_FAILURE() << "berthd plugins: " << exec::Describe({"berthd", "plugins"}, r);
      return nullptr;
    }
    for (const auto& p : list)
      if (p["type"] == "io.containerd.cri.v1" && p["id"] == "runtime") return p;
    ADD_FAILURE() << "no io.containerd.cri.v1.runtime in " << r.out;
    return nullptr;
  }

  testing::TempDir tmp_;
  std::string fake_;
};

TEST_F(Berthd, EnabledWithoutRroFailsTheRuntimePlugin) {
  auto p = RuntimePlugin("off");
  ASSERT_TRUE(p.is_object());
  EXPECT_EQ(p["status"], "error");
  EXPECT_NE(p["error"].get<std::string>().find(
                "invalid treat_ro_mounts_as_rro: \"Enabled\": needs a runtime that is compatible with runc v1.1"),
            std::string::npos)
      << p["error"];
  EXPECT_NE(p["error"].get<std::string>().find("runtime handler \"fake\""), std::string::npos) << p["error"];
}

TEST_F(Berthd, EnabledIsHonouredByTheFallback) {
  auto p = RuntimePlugin("on");
  ASSERT_TRUE(p.is_object());
  EXPECT_EQ(p["status"], "ok") << p["error"];
}
#endif

}  // namespace
}  // namespace berth
