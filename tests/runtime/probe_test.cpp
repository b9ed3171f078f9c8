#include <gtest/gtest.h>

#include "common/exec.h"
#include "runtime/probe.h"
#include "runtime/rro.h"
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

class RuntimeProbe : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string why = testing::ContainerSkipReason(GetParam());
    if (!why.empty()) GTEST_SKIP() << why;
    if (ProbePath().empty()) GTEST_SKIP() << "berth-rro-probe not built";
    binary_ = *exec::LookPath(GetParam());
  }
  std::string binary_;
};

TEST_P(RuntimeProbe, ProvesRroWithAContainer) {
  testing::TempDir state;
  ProbeOptions o;
  o.probe_binary = ProbePath();
  o.state_dir = state.path();
  ClearProbeCache();
  auto r = ProbeRuntimeRRO(binary_, o);
  EXPECT_TRUE(r.ran) << r.detail;
  EXPECT_TRUE(r.supported) << r.detail;
  EXPECT_FALSE(r.cached);
  auto again = ProbeRuntimeRRO(binary_, o);
  EXPECT_TRUE(again.cached);
  EXPECT_EQ(again.supported, r.supported);
  ClearProbeCache();  // the disk cache answers now
  auto disk = ProbeRuntimeRRO(binary_, o);
  EXPECT_TRUE(disk.cached);
  EXPECT_EQ(disk.supported, r.supported);
}

TEST_P(RuntimeProbe, DetectsHandler) {
  testing::TempDir state;
  DetectOptions o;
  o.probe_binary = ProbePath();
  o.state_dir = state.path();
  auto h = DetectHandlerRRO("h", binary_, "Enabled", o);
  EXPECT_TRUE(h.kernel.supported) << h.kernel.reason;
  EXPECT_EQ(h.runtime.support, Support::kYes) << h.runtime.detail;
  EXPECT_EQ(h.runtime.method, GetParam() == "crun" ? "probe" : "features");
  EXPECT_TRUE(h.resolution.enabled);
  EXPECT_FALSE(h.resolution.via_fallback);
  EXPECT_TRUE(h.resolution.ok()) << h.resolution.error;
  EXPECT_EQ(h.features.has_value(), GetParam() == "runc");
}

INSTANTIATE_TEST_SUITE_P(Runtimes, RuntimeProbe, ::testing::Values("runc", "crun"));

}  // namespace
}  // namespace berth::runtime
