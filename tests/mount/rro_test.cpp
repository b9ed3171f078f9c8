#include "mount/rro.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <functional>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/fs.h"
#include "mount/audit.h"
#include "mount/mountinfo.h"
#include "support/support.h"

namespace berth::mount {
namespace {

// errno of creating a file at `path` (0 on success; the file is removed again).
int WriteErrno(const std::string& path) {
  int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  ::close(fd);
  ::unlink(path.c_str());
  return 0;
}

// Runs `fn` in a forked child with a private mount namespace; returns its exit code.
int InPrivateNamespace(const std::function<int()>& fn) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::unshare(CLONE_NEWNS) != 0) ::_exit(100);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(101);
    int rc = 102;
    try {
      rc = fn();
    } catch (const std::exception& e) {
      fprintf(stderr, "child: %s\n", e.what());
    }
    ::_exit(rc);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

TEST(KernelProbe, ReportsAnAnswerWithReason) {
  testing::TempDir tmp;
  auto k = ProbeKernelUncached(tmp.path());
  EXPECT_FALSE(k.reason.empty());
  if (!testing::IsRoot()) {
    EXPECT_FALSE(k.supported);
    return;
  }
  EXPECT_TRUE(k.supported) << k.reason;  // the test host runs Linux 6.x
  EXPECT_EQ(ProbeKernel().supported, k.supported);
}

std::string KernelCacheJson(const std::string& release, const std::string& boot_id, bool supported,
                            const std::string& reason) {
  return nlohmann::json{{"version", 1}, {"release", release}, {"boot_id", boot_id},
                        {"supported", supported}, {"reason", reason}}
      .dump();
}

TEST(KernelProbeCache, AnswersFromAFileForThisBootAndKernel) {
  testing::TempDir tmp;
  auto key = CurrentKernelCacheKey();
  ASSERT_FALSE(key.release.empty());
  ASSERT_FALSE(key.boot_id.empty());
  const std::string file = tmp / "probes/kernel.json";
  testing::WriteFile(file, KernelCacheJson(key.release, key.boot_id, false, "from the cache"));
  bool cached = false;
  auto k = ProbeKernelCached(file, &cached);
  EXPECT_TRUE(cached);
  EXPECT_FALSE(k.supported);
  EXPECT_EQ(k.reason, "from the cache");
}

TEST(KernelProbeCache, IgnoresStaleOrDamagedFiles) {
  testing::TempDir tmp;
  auto key = CurrentKernelCacheKey();
  const std::string file = tmp / "probes/kernel.json";
  for (const std::string& text :
       {KernelCacheJson(key.release, "00000000-0000-0000-0000-000000000000", true, "another boot"),
        KernelCacheJson("1.0.0-other", key.boot_id, true, "another kernel"),
        std::string("{\"version\": 1, \"release\": "), std::string("[]"),
        std::string("{\"version\": 1, \"release\": \"") + key.release + "\", \"boot_id\": \"" +
            key.boot_id + "\", \"supported\": \"yes\", \"reason\": \"x\"}"}) {
    testing::WriteFile(file, text);
    bool cached = true;
    auto k = ProbeKernelCached(file, &cached);
    EXPECT_FALSE(cached) << text;
    EXPECT_EQ(k.supported, ProbeKernel().supported) << text;
    EXPECT_EQ(k.reason, ProbeKernel().reason) << text;
    if (CanStage()) {
      // Rewritten with the proven answer for this boot.
      auto j = nlohmann::json::parse(fs::ReadFile(file));
      EXPECT_EQ(j["boot_id"], key.boot_id);
      EXPECT_EQ(j["release"], key.release);
      EXPECT_EQ(j["supported"], ProbeKernel().supported);
      bool again = false;
      ProbeKernelCached(file, &again);
      EXPECT_TRUE(again);
    } else {
      // Without CAP_SYS_ADMIN the answer proves nothing about the kernel: not written.
      EXPECT_EQ(fs::ReadFile(file), text);
    }
  }
}

TEST(KernelProbeCache, WritesOnlyProvenAnswers) {
  testing::TempDir tmp;
  const std::string file = tmp / "probes/kernel.json";
  bool cached = true;
  ProbeKernelCached(file, &cached);
  EXPECT_FALSE(cached);
  EXPECT_EQ(fs::Exists(file), CanStage());
  EXPECT_EQ(ProbeKernelCached("", &cached).supported, ProbeKernel().supported);
  EXPECT_FALSE(cached);
}

TEST(MakeRecursiveReadOnly, RefusesNonMountPoint) {
  testing::TempDir tmp;
  EXPECT_THROW(MakeRecursiveReadOnly(tmp.path()), Error);
}

class RootMountTest : public ::testing::TestWithParam<RoMethod> {
 protected:
  void SetUp() override {
    if (!testing::IsRoot()) GTEST_SKIP() << "needs root (mounts)";
    if (GetParam() == RoMethod::kMountSetattr && !ProbeKernel().supported)
      GTEST_SKIP() << "kernel lacks recursive read-only: " << ProbeKernel().reason;
  }
};

TEST_P(RootMountTest, MakesWholeTreeReadOnly) {
  testing::TempDir tmp;
  std::string top = tmp / "top";
  int rc = InPrivateNamespace([&] {
    fs::MkdirAll(top);
    if (::mount("tmpfs", top.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=64k") != 0) return 1;
    fs::MkdirAll(top + "/sub");
    if (::mount("tmpfs", (top + "/sub").c_str(), "tmpfs", MS_NOEXEC, "size=64k") != 0) return 2;
    if (WriteErrno(top + "/sub/f") != 0) return 3;
    auto used = MakeRecursiveReadOnly(top, GetParam());
    if (GetParam() != RoMethod::kAuto && used != GetParam()) return 4;
    if (WriteErrno(top + "/f") != EROFS) return 5;
    if (WriteErrno(top + "/sub/f") != EROFS) return 6;
    for (const auto& m : ReadMountInfo()) {
      if (m.mount_point == top && !HasOption(m.options, "nosuid")) return 7;
      if (m.mount_point == top + "/sub" && !HasOption(m.options, "noexec")) return 8;
    }
    if (!AuditReadOnly(ReadMountInfo(), {top}).empty()) return 9;
    return 0;
  });
  EXPECT_EQ(rc, 0);
}

INSTANTIATE_TEST_SUITE_P(Methods, RootMountTest,
                         ::testing::Values(RoMethod::kAuto, RoMethod::kMountSetattr, RoMethod::kRemount),
                         [](const auto& info) { return std::string(RoMethodName(info.param)) == "mount_setattr"
                                                           ? std::string("mount_setattr")
                                                           : std::string(RoMethodName(info.param)); });

TEST_P(RootMountTest, StagesAndCleansUp) {
  testing::TempDir tmp;
  std::string vol = tmp / "vol";
  std::string state = tmp / "state";
  int rc = InPrivateNamespace([&] {
    fs::MkdirAll(vol + "/sub");
    if (::mount("tmpfs", (vol + "/sub").c_str(), "tmpfs", 0, "size=64k") != 0) return 1;
    std::string staged = StageReadOnly(state, "c1", vol, GetParam());
    if (staged != state + "/rro/c1/0") return 2;
    if (WriteErrno(staged + "/f") != EROFS) return 3;
    if (WriteErrno(staged + "/sub/f") != EROFS) return 4;
    if (WriteErrno(vol + "/sub/f") != 0) return 5;  // the source stays writable
    std::string staged2 = StageReadOnly(state, "c1", vol, GetParam());
    if (staged2 != state + "/rro/c1/1") return 6;
    StageReadOnly(state, "c2", vol, GetParam());
    if (StagedPaths(state, "c1").size() != 2) return 7;
    CleanupStaged(state, "c1");
    if (fs::Exists(state + "/rro/c1")) return 8;
    for (const auto& m : ReadMountInfo())
      if (PathAtOrUnder(m.mount_point, state + "/rro/c1")) return 9;
    auto cleaned = CleanupOrphans(state, {"c3"});
    if (cleaned != std::vector<std::string>{"c2"}) return 10;
    for (const auto& m : ReadMountInfo())
      if (PathAtOrUnder(m.mount_point, state)) return 11;
    CleanupStaged(state, "never-staged");
    return 0;
  });
  EXPECT_EQ(rc, 0);
}

TEST(Stage, RejectsBadInput) {
  testing::TempDir tmp;
  EXPECT_THROW(StageReadOnly(tmp.path(), "c1", "relative/path"), Error);
  EXPECT_THROW(StageReadOnly(tmp.path(), "../x", "/tmp"), Error);
  EXPECT_THROW(StageReadOnly(tmp.path(), "", "/tmp"), Error);
  EXPECT_THROW(StageReadOnly(tmp.path(), "c1", tmp / "missing"), Error);
  EXPECT_TRUE(CleanupOrphans(tmp / "none", {}).empty());
}

}  // namespace
}  // namespace berth::mount
