// End to end: a volume directory with a tmpfs submount, mounted read-only into a busybox
// container through the spec generator, with real runc, crun (directly or through the
// hybrid-cgroup launcher, as probed) and runtimes whose features lack `rro` (berth's fallback). The
// container writes into the submount; the audit inspects the container's mountinfo.
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "mount/audit.h"
#include "mount/mountinfo.h"
#include "mount/rro.h"
#include "oci/mounts.h"
#include "runtime/hostcompat.h"
#include "runtime/probe.h"
#include "runtime/rro.h"
#include "support/support.h"

namespace berth {
namespace {

std::string ProbePath() {
#ifdef BERTH_RRO_PROBE_PATH
  return BERTH_RRO_PROBE_PATH;
#else
  return runtime::FindProbeBinary();
#endif
}

struct Case {
  std::string name;
  std::string runtime;      // "runc", "crun", "fake" (runc whose features lack rro), "fake-crun"
  std::string config;       // treat_ro_mounts_as_rro
  bool kep = false;         // Mount.recursive_read_only
  bool fallback = true;     // berth's fallback allowed
  bool expect_erofs = true;
  std::string expect_method;  // HandlerRRO::DeterminedBy()
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class E2E : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    const std::string& rt = GetParam().runtime;
    std::string real = rt == "fake" ? "runc" : rt == "fake-crun" ? "crun" : rt;
    std::string why = testing::ContainerSkipReason(real);
    if (!why.empty()) GTEST_SKIP() << why;
    if (testing::BusyboxPath().empty()) GTEST_SKIP() << "busybox-static is not installed";
    if (ProbePath().empty()) GTEST_SKIP() << "berth-rro-probe not built";
    binary_ = *exec::LookPath(real);
    if (rt.rfind("fake", 0) == 0) binary_ = MakeFakeRuntime(binary_);
    state_ = tmp_ / "state";
    root_ = tmp_ / "runtime-root";
    bundle_ = tmp_ / "bundle";
    vol_ = tmp_ / "vol";
    fs::MkdirAll(vol_ + "/sub");
    fs::MkdirAll(root_);
    testing::MakeBusyboxRootfs(bundle_ + "/rootfs");
    fs::MkdirAll(bundle_ + "/rootfs/vol");
    ASSERT_EQ(::mount("tmpfs", (vol_ + "/sub").c_str(), "tmpfs", 0, "size=1m"), 0);
    id_ = "berth-e2e-rro-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++);
  }

  void TearDown() override {
    if (started_) {
      Runtime({"kill", id_, "KILL"});
      Runtime({"delete", "-f", id_});
    }
    if (!state_.empty()) {
      try {
        mount::CleanupStaged(state_, id_);
      } catch (const Error& e) {
        ADD_FAILURE() << e.what();
      }
    }
  }

  // A runtime that is `real` (runc or crun) for everything but `features`, which prints runc's
  // without "rro". It carries the real runtime's name.
  std::string MakeFakeRuntime(const std::string& real) {
    auto r = exec::Run({*exec::LookPath("runc"), "features"});
    auto doc = nlohmann::json::parse(r.out);
    auto& opts = doc["mountOptions"];
    for (auto it = opts.begin(); it != opts.end();)
      it = (*it == "rro") ? opts.erase(it) : it + 1;
    testing::WriteFile(tmp_ / "fake/features.json", doc.dump(2));
    std::string script = tmp_ / ("fake/" + real.substr(real.rfind('/') + 1));
    testing::WriteFile(script, "#!/bin/sh\nif [ \"$1\" = features ]; then cat '" +
                                   tmp_ / "fake/features.json" + "'; exit 0; fi\nexec '" + real +
                                   "' \"$@\"\n");
    ::chmod(script.c_str(), 0755);
    return script;
  }

  exec::Result Runtime(std::vector<std::string> args) {
    std::vector<std::string> argv{binary_, "--root", root_};
    argv.insert(argv.end(), args.begin(), args.end());
    return exec::Run(runtime::RuntimeArgv(argv));
  }

  // create + start with stdio on files, so that no pipe of ours stays open in the container.
  void StartContainer() {
    std::vector<std::string> base = runtime::RuntimeArgv({binary_, "--root", root_});
    std::string cmd;
    for (const auto& a : base) cmd += "'" + a + "' ";
    std::string log = tmp_ / "runtime.log";
    std::string line = cmd + "create --bundle '" + bundle_ + "' " + id_ + " </dev/null >>'" + log + "' 2>&1";
    auto r = exec::Run({"/bin/sh", "-c", line});
    started_ = true;
    ASSERT_TRUE(r.ok()) << line << ": " << fs::ReadFile(log);
    auto s = Runtime({"start", id_});
    ASSERT_TRUE(s.ok()) << exec::Describe({"start"}, s);
  }

  int InitPid() {
    auto r = Runtime({"state", id_});
    EXPECT_TRUE(r.ok()) << r.err;
    return nlohmann::json::parse(r.out).at("pid").get<int>();
  }

  testing::TempDir tmp_;
  std::string binary_, state_, root_, bundle_, vol_, id_;
  bool started_ = false;
  static inline int counter_ = 0;
};

nlohmann::json Config(const oci::Mount& vol) {
  nlohmann::json mounts = nlohmann::json::array({
      {{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
      {{"destination", "/dev"}, {"type", "tmpfs"}, {"source", "tmpfs"},
       {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}},
  });
  mounts.push_back(oci::MountToJson(vol));
  return {
      {"ociVersion", "1.0.2"},
      {"process",
       {{"terminal", false},
        {"user", {{"uid", 0}, {"gid", 0}}},
        {"args", {"/bin/sh", "-c", "exec sleep 100000 </dev/null >/dev/null 2>&1"}},
        {"env", {"PATH=/bin:/sbin:/usr/bin"}},
        {"cwd", "/"},
        {"capabilities",
         {{"bounding", {"CAP_DAC_OVERRIDE", "CAP_KILL"}},
          {"effective", {"CAP_DAC_OVERRIDE", "CAP_KILL"}},
          {"permitted", {"CAP_DAC_OVERRIDE", "CAP_KILL"}}}}}},
      {"root", {{"path", "rootfs"}, {"readonly", false}}},
      {"hostname", "rro"},
      {"mounts", mounts},
      {"linux", {{"namespaces", {{{"type", "mount"}}, {{"type", "pid"}}, {{"type", "ipc"}}, {{"type", "uts"}}}}}},
  };
}

TEST_P(E2E, VolumeSubmountWritability) {
  const Case& c = GetParam();
  runtime::DetectOptions opts;
  opts.state_dir = state_;
  opts.probe_binary = ProbePath();
  opts.allow_fallback = c.fallback;
  auto h = runtime::DetectHandlerRRO(c.name, binary_, c.config, opts);
  ASSERT_TRUE(h.kernel.supported) << h.kernel.reason;
  ASSERT_TRUE(h.resolution.ok()) << h.resolution.error;
  EXPECT_EQ(h.DeterminedBy(), c.expect_method) << runtime::HandlerRROToJson(h).dump(2);

  oci::HandlerRRO hr{h.resolution.enabled, h.resolution.via_fallback, h.SupportedForKEP(), h.KEPViaFallback()};
  oci::VolumeMount v;
  v.container_path = "/vol";
  v.host_path = vol_;
  v.readonly = true;
  v.recursive_read_only = c.kep;
  auto plan = oci::PlanVolumeMount(v, hr);
  if (plan.stage_read_only) plan.mount.source = mount::StageReadOnly(state_, id_, plan.mount.source);
  fs::WriteFileAtomic(bundle_ + "/config.json", Config(plan.mount).dump(2));
  StartContainer();
  if (HasFatalFailure()) return;

  auto w = Runtime({"exec", id_, "/bin/sh", "-c", "echo x > /vol/sub/file && echo WROTE"});
  auto top = Runtime({"exec", id_, "/bin/sh", "-c", "echo x > /vol/file && echo WROTE"});
  EXPECT_EQ(top.out.find("WROTE"), std::string::npos) << "the top of a read-only volume was written";
  EXPECT_NE(top.err.find("Read-only file system"), std::string::npos) << top.err;
  if (c.expect_erofs) {
    EXPECT_EQ(w.out.find("WROTE"), std::string::npos) << "submount written: " << w.out;
    EXPECT_NE(w.err.find("Read-only file system"), std::string::npos) << w.err;
  } else {
    EXPECT_NE(w.out.find("WROTE"), std::string::npos) << w.err;
  }

  auto findings = mount::AuditReadOnly(mount::ReadMountInfo(InitPid()), {"/vol"});
  if (c.expect_erofs) {
    EXPECT_TRUE(findings.empty()) << findings[0].reason;
  } else {
    ASSERT_EQ(findings.size(), 1u);
    EXPECT_EQ(findings[0].mount_point, "/vol/sub");
    EXPECT_NE(findings[0].reason.find("below read-only /vol"), std::string::npos) << findings[0].reason;
  }
  // The automatic audit (no paths) agrees.
  EXPECT_EQ(mount::AuditReadOnly(mount::ReadMountInfo(InitPid())).empty(), c.expect_erofs);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, E2E,
    ::testing::Values(
        Case{"runc_disabled", "runc", "Disabled", false, true, false, "features"},
        Case{"runc_ifpossible", "runc", "IfPossible", false, true, true, "features"},
        Case{"runc_default", "runc", "", false, true, true, "features"},
        Case{"runc_kep", "runc", "Disabled", true, true, true, "features"},
        Case{"crun_disabled", "crun", "Disabled", false, true, false, "probe"},
        Case{"crun_ifpossible", "crun", "IfPossible", false, true, true, "probe"},
        Case{"crun_kep", "crun", "Disabled", true, true, true, "probe"},
        Case{"fake_ifpossible_fallback", "fake", "IfPossible", false, true, true, "fallback"},
        Case{"fake_enabled_fallback", "fake", "Enabled", false, true, true, "fallback"},
        Case{"fake_kep_fallback", "fake", "Disabled", true, true, true, "fallback"},
        Case{"fake_ifpossible_nofallback", "fake", "IfPossible", false, false, false, "features"},
        Case{"fakecrun_ifpossible_fallback", "fake-crun", "IfPossible", false, true, true,
             "fallback"},
        Case{"fakecrun_kep_fallback", "fake-crun", "Disabled", true, true, true, "fallback"}),
    [](const auto& info) { return info.param.name; });

TEST(E2EResolution, EnabledWithoutRroAndWithoutFallbackFails) {
  std::string why = testing::ContainerSkipReason("runc");
  if (!why.empty()) GTEST_SKIP() << why;
  testing::TempDir tmp;
  auto runc = *exec::LookPath("runc");
  auto r = exec::Run({runc, "features"});
  auto doc = nlohmann::json::parse(r.out);
  auto& opts = doc["mountOptions"];
  for (auto it = opts.begin(); it != opts.end();) it = (*it == "rro") ? opts.erase(it) : it + 1;
  testing::WriteFile(tmp / "features.json", doc.dump());
  std::string script = tmp / "fake-runc";
  testing::WriteFile(script, "#!/bin/sh\nif [ \"$1\" = features ]; then cat '" + tmp / "features.json" +
                                 "'; exit 0; fi\nexec '" + runc + "' \"$@\"\n");
  ::chmod(script.c_str(), 0755);
  runtime::DetectOptions o;
  o.allow_fallback = false;
  o.state_dir = tmp / "state";
  auto h = runtime::DetectHandlerRRO("fake", script, "Enabled", o);
  EXPECT_FALSE(h.resolution.enabled);
  EXPECT_EQ(h.resolution.error,
            "invalid treat_ro_mounts_as_rro: \"Enabled\": needs a runtime that is compatible with runc v1.1");
  EXPECT_EQ(h.runtime.method, "features");
  EXPECT_EQ(h.runtime.support, runtime::Support::kNo);
}

}  // namespace
}  // namespace berth
