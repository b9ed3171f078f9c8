// How berth launches an OCI runtime: directly, or through the hybrid-cgroup launcher, decided by
// a probe container on hybrid hosts (runtime/hostcompat.h). Real runtimes, real mounts.
#include <sys/mount.h>
#include <sys/stat.h>

#include <filesystem>
#include <sstream>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "runtime/hostcompat.h"
#include "runtime/probe.h"
#include "support/support.h"

namespace berth::runtime {
namespace {

std::string ProbePath() {
#ifdef BERTH_RRO_PROBE_PATH
  return BERTH_RRO_PROBE_PATH;
#else
  return FindProbeBinary();
#endif
}

TEST(HostCompat, WrapsArgvKeepingPropagation) {
  auto w = WrapArgvForHybridCgroup({"/usr/bin/crun", "run", "x"});
  ASSERT_EQ(w.size(), 10u);
  EXPECT_NE(w[0].find("unshare"), std::string::npos);
  EXPECT_EQ(std::vector<std::string>(w.begin() + 1, w.begin() + 4),
            (std::vector<std::string>{"--mount", "--propagation", "unchanged"}));
  EXPECT_NE(w[6].find("' --make-private /sys/fs/cgroup/unified && '"), std::string::npos) << w[6];
  EXPECT_NE(w[6].find("' -l /sys/fs/cgroup/unified && exec \"$0\" \"$@\""), std::string::npos)
      << w[6];
  EXPECT_EQ(w[7], "/usr/bin/crun");
  EXPECT_THROW(WrapArgvForHybridCgroup({}), Error);
}

// The launcher, run for real: the runtime's namespace has no /sys/fs/cgroup/unified and every
// other mount keeps its propagation (a shared mount stays in the host's peer group); the host
// keeps its cgroup2 mount.
TEST(HostCompat, LauncherDetachesOnlyTheCgroup2Mount) {
  if (!testing::IsRoot()) GTEST_SKIP() << "needs root";
  if (!IsHybridCgroupHost()) GTEST_SKIP() << "not a hybrid cgroup host";
  testing::TempDir tmp("berth-launcher");
  std::string shared = tmp / "shared";
  fs::MkdirAll(shared + "/late");
  ASSERT_EQ(::mount(shared.c_str(), shared.c_str(), nullptr, MS_BIND, nullptr), 0);
  ASSERT_EQ(::mount(nullptr, shared.c_str(), nullptr, MS_SHARED, nullptr), 0);
  auto r = exec::Run(WrapArgvForHybridCgroup({"/bin/cat", "/proc/self/mountinfo"}));
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(r.out.find(" /sys/fs/cgroup/unified "), std::string::npos) << r.out;
  bool peer = false;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);)
    if (line.find(" " + shared + " ") != std::string::npos)
      peer = line.find(" shared:") != std::string::npos;
  EXPECT_TRUE(peer) << "the shared mount lost its propagation in the runtime's namespace:\n"
                    << r.out;
  EXPECT_NE(fs::ReadFile("/proc/self/mountinfo").find(" /sys/fs/cgroup/unified "),
            std::string::npos);
  testing::UnmountAllBelow(shared);
}

class Launch : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = testing::ContainerSkipReason("runc"); !why.empty()) GTEST_SKIP() << why;
    if (ProbePath().empty()) GTEST_SKIP() << "berth-rro-probe not built";
    opts_.state_dir = tmp_ / "state";
    opts_.probe_binary = ProbePath();
    ClearLaunchCache();
  }
  void TearDown() override { ClearLaunchCache(); }
  // A runtime named `name` that is runc, but that refuses hybrid hosts the way crun 1.8 does
  // (when it sees cgroup2 at /sys/fs/cgroup/unified), or always fails.
  std::string Fake(const std::string& name, bool always_fail) {
    std::string path = tmp_ / ("fake-" + name + "/" + name);
    std::string body = always_fail
                           ? "echo 'broken runtime' >&2; exit 1\n"
                           : "if grep -q ' /sys/fs/cgroup/unified ' /proc/self/mountinfo; then\n"
                             "  echo 'cgroups in hybrid mode not supported' >&2; exit 1\nfi\n"
                             "exec '" +
                                 *exec::LookPath("runc") + "' \"$@\"\n";
    testing::WriteFile(path, "#!/bin/sh\n" + body);
    ::chmod(path.c_str(), 0755);
    return path;
  }
  testing::TempDir tmp_{"berth-launch"};
  LaunchOptions opts_;
};

TEST_F(Launch, RuncRunsDirectly) {
  auto d = DecideLaunch("runc", opts_);
  EXPECT_FALSE(d.hybrid_launcher) << d.reason;
  EXPECT_EQ(d.binary, *exec::LookPath("runc"));
  EXPECT_EQ(d.determined_by, IsHybridCgroupHost() ? "probe" : "host") << d.reason;
  EXPECT_EQ(LaunchDecisionToJson(d)["mode"], "direct");
}

TEST_F(Launch, ARuntimeThatRefusesHybridHostsGetsTheLauncherAndTheAnswerIsCached) {
  if (!IsHybridCgroupHost())
    GTEST_SKIP() << "not a hybrid cgroup host: every runtime runs directly";
  auto fake = Fake("crun", false);
  auto d = DecideLaunch(fake, opts_);
  EXPECT_TRUE(d.hybrid_launcher) << d.reason;
  EXPECT_EQ(d.determined_by, "probe");
  EXPECT_NE(d.reason.find("cgroups in hybrid mode not supported"), std::string::npos) << d.reason;
  EXPECT_FALSE(d.cached);
  EXPECT_TRUE(DecideLaunch(fake, opts_).cached);
  ClearLaunchCache();
  auto disk = DecideLaunch(fake, opts_);  // from <state>/probes/launch-*.json
  EXPECT_TRUE(disk.cached);
  EXPECT_TRUE(disk.hybrid_launcher);
  EXPECT_EQ(disk.reason, d.reason);
  // A replaced binary is probed again: this one always fails, either way.
  ClearLaunchCache();
  testing::WriteFile(fake, "#!/bin/sh\necho 'broken runtime' >&2\nexit 1\n# a different size\n");
  auto broken = DecideLaunch(fake, opts_);
  EXPECT_FALSE(broken.cached);
  EXPECT_EQ(broken.determined_by, "unproven");
  EXPECT_TRUE(broken.hybrid_launcher);
  EXPECT_NE(broken.reason.find("broken runtime"), std::string::npos) << broken.reason;
  EXPECT_FALSE(fs::Exists(opts_.state_dir + "/launch-probe") &&
               !std::filesystem::is_empty(opts_.state_dir + "/launch-probe"))
      << "probe bundles are removed";
}

TEST_F(Launch, CrunIsDecidedByProbing) {
  if (std::string why = testing::ContainerSkipReason("crun"); !why.empty()) GTEST_SKIP() << why;
  auto d = DecideLaunch("crun", opts_);
  EXPECT_EQ(d.determined_by, IsHybridCgroupHost() ? "probe" : "host") << d.reason;
  EXPECT_FALSE(d.reason.empty());
  // Runtime command lines follow the decision.
  EXPECT_EQ(RuntimeArgv({"crun", "x"})[0] == *exec::LookPath("unshare"), d.hybrid_launcher);
}

}  // namespace
}  // namespace berth::runtime
