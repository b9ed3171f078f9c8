#include <gtest/gtest.h>

#include "runtime/rro.h"

namespace berth::runtime {
namespace {

const mount::KernelSupport kKernelYes{true, "proven"};
const mount::KernelSupport kKernelNo{false, "mount_setattr(2) is not available: needs Linux kernel v5.12 or later"};
const RuntimeRRO kRuntimeYes{Support::kYes, "features", "listed"};
const RuntimeRRO kRuntimeNo{Support::kNo, "features", "not listed"};
const RuntimeRRO kRuntimeUnknown{Support::kUnknown, "", "no features command"};

constexpr const char* kNeedKernel = "invalid treat_ro_mounts_as_rro: \"Enabled\": needs Linux kernel v5.12 or later";
constexpr const char* kNeedRuntime =
    "invalid treat_ro_mounts_as_rro: \"Enabled\": needs a runtime that is compatible with runc v1.1";

struct Row {
  const char* value;
  bool kernel;
  Support runtime;
  bool fallback;
  bool enabled;
  bool via_fallback;
  const char* error;  // "" none
  bool warning;
};

const RuntimeRRO& RuntimeFor(Support s) {
  return s == Support::kYes ? kRuntimeYes : s == Support::kNo ? kRuntimeNo : kRuntimeUnknown;
}

class ResolveTable : public ::testing::TestWithParam<Row> {};

TEST_P(ResolveTable, Resolves) {
  const Row& row = GetParam();
  auto r = ResolveRRO(row.value, row.kernel ? kKernelYes : kKernelNo, RuntimeFor(row.runtime), row.fallback);
  EXPECT_EQ(r.enabled, row.enabled);
  EXPECT_EQ(r.via_fallback, row.via_fallback);
  EXPECT_EQ(r.error, row.error);
  EXPECT_EQ(!r.warning.empty(), row.warning) << r.warning;
  if (r.via_fallback) {
    EXPECT_NE(r.message.find("fallback"), std::string::npos) << r.message;
  }
}

using S = Support;
const Row kRows[] = {
    // value, kernel, runtime, fallback -> enabled, via_fallback, error, warning
    {"", true, S::kYes, false, true, false, "", false},
    {"", true, S::kNo, false, false, false, "", true},
    {"", true, S::kUnknown, false, false, false, "", true},
    {"", false, S::kYes, false, false, false, "", true},
    {"", false, S::kNo, false, false, false, "", true},
    {"", false, S::kUnknown, true, true, true, "", false},
    {"IfPossible", true, S::kYes, false, true, false, "", false},
    {"IfPossible", true, S::kYes, true, true, false, "", false},
    {"IfPossible", true, S::kNo, false, false, false, "", true},
    {"IfPossible", true, S::kNo, true, true, true, "", false},
    {"IfPossible", true, S::kUnknown, false, false, false, "", true},
    {"IfPossible", true, S::kUnknown, true, true, true, "", false},
    {"IfPossible", false, S::kYes, false, false, false, "", true},
    {"IfPossible", false, S::kYes, true, true, true, "", false},
    {"IfPossible", false, S::kNo, false, false, false, "", true},
    {"IfPossible", false, S::kUnknown, false, false, false, "", true},
    {"Enabled", true, S::kYes, false, true, false, "", false},
    {"Enabled", true, S::kNo, false, false, false, kNeedRuntime, false},
    {"Enabled", true, S::kNo, true, true, true, "", false},
    {"Enabled", true, S::kUnknown, false, false, false, kNeedRuntime, false},
    {"Enabled", true, S::kUnknown, true, true, true, "", false},
    {"Enabled", false, S::kYes, false, false, false, kNeedKernel, false},
    {"Enabled", false, S::kYes, true, true, true, "", false},
    {"Enabled", false, S::kNo, false, false, false, kNeedKernel, false},
    {"Enabled", false, S::kUnknown, false, false, false, kNeedKernel, false},
    {"Disabled", true, S::kYes, true, false, false, "", false},
    {"Disabled", true, S::kNo, false, false, false, "", false},
    {"Disabled", false, S::kUnknown, false, false, false, "", false},
    {"Disabled", false, S::kNo, true, false, false, "", false},
};

INSTANTIATE_TEST_SUITE_P(All, ResolveTable, ::testing::ValuesIn(kRows));

TEST(Resolve, WarningSaysWhyAndWhatToDo) {
  auto r = ResolveRRO("IfPossible", kKernelNo, kRuntimeYes, false);
  EXPECT_NE(r.warning.find("needs Linux kernel v5.12"), std::string::npos) << r.warning;
  EXPECT_NE(r.warning.find("upgrade the kernel to v5.12 or later"), std::string::npos) << r.warning;
  r = ResolveRRO("", kKernelYes, kRuntimeNo, false);
  EXPECT_NE(r.warning.find("does not support the rro mount option"), std::string::npos) << r.warning;
  EXPECT_NE(r.warning.find("compatible with runc v1.1"), std::string::npos) << r.warning;
  r = ResolveRRO("", kKernelYes, kRuntimeUnknown, false);
  EXPECT_NE(r.warning.find("unknown"), std::string::npos) << r.warning;
}

TEST(Resolve, InvalidValueNamesItAndTheAllowedOnes) {
  for (const char* v : {"enabled", "Yes", " IfPossible"}) {
    auto r = ResolveRRO(v, kKernelYes, kRuntimeYes, true);
    EXPECT_FALSE(r.enabled);
    EXPECT_EQ(r.error, std::string("invalid treat_ro_mounts_as_rro: \"") + v +
                           "\": must be one of \"Enabled\", \"IfPossible\" or \"Disabled\" (empty means "
                           "\"IfPossible\")");
  }
}

TEST(Resolve, HandlerDerivedValues) {
  HandlerRRO h;
  h.kernel = kKernelYes;
  h.runtime = kRuntimeNo;
  h.fallback_possible = true;
  h.resolution = ResolveRRO("Disabled", h.kernel, h.runtime, h.fallback_possible);
  EXPECT_TRUE(h.SupportedForKEP());
  EXPECT_TRUE(h.KEPViaFallback());
  EXPECT_EQ(h.DeterminedBy(), "fallback");
  h.runtime = kRuntimeYes;
  EXPECT_FALSE(h.KEPViaFallback());
  EXPECT_EQ(h.DeterminedBy(), "features");
  h.fallback_possible = false;
  h.runtime = kRuntimeUnknown;
  EXPECT_FALSE(h.SupportedForKEP());
  EXPECT_EQ(h.DeterminedBy(), "none");
}

}  // namespace
}  // namespace berth::runtime
