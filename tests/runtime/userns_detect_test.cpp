// User namespace detection for a runtime handler: a root or state directory that the pods' mapped
// users cannot reach is named at once, before any probe container runs.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "common/exec.h"
#include "common/fs.h"
#include "runtime/userns.h"
#include "support/support.h"

namespace {

using berth::testing::TempDir;

TEST(UsernsDetect, UnsearchableParentIsNamedAndNoProbeRuns) {
  if (!berth::testing::IsRoot()) GTEST_SKIP() << "the user namespace probes need root";
  auto runc = berth::exec::LookPath("runc");
  if (!runc) GTEST_SKIP() << "runc is not installed";
  TempDir dir;  // mkdtemp: mode 0700
  ASSERT_EQ(::chmod(dir.path().c_str(), 0700), 0);
  const std::string root = dir / "root/io.containerd.grpc.v1.cri";
  const std::string state = dir / "state/io.containerd.grpc.v1.cri";
  berth::fs::MkdirAll(root, 0711);
  berth::fs::MkdirAll(state, 0711);
  auto u = berth::runtime::DetectUserns(*runc, root, state);
  EXPECT_FALSE(u.supported);
  EXPECT_NE(u.reason.find(dir.path() + " has mode 0700"), std::string::npos) << u.reason;
  EXPECT_NE(u.reason.find("chmod o+x"), std::string::npos) << u.reason;
  struct stat st {};
  EXPECT_NE(::stat((state + "/userns-probe").c_str(), &st), 0) << "a probe container ran";
}

TEST(UsernsDetect, SearchableParentsGoOnToTheProbes) {
  if (!berth::testing::IsRoot()) GTEST_SKIP() << "the user namespace probes need root";
  auto runc = berth::exec::LookPath("runc");
  if (!runc) GTEST_SKIP() << "runc is not installed";
  TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0711), 0);
  const std::string root = dir / "root";
  const std::string state = dir / "state";
  berth::fs::MkdirAll(root, 0711);
  berth::fs::MkdirAll(state, 0711);
  auto u = berth::runtime::DetectUserns(*runc, root, state);
  EXPECT_EQ(u.reason.find("cannot reach"), std::string::npos) << u.reason;
  EXPECT_FALSE(u.kernel.empty()) << "the kernel probe did not run: " << u.reason;
}

}  // namespace
