// `berthd check`: proves that the host can run pods, one result per check with the reason and,
// for a failure, the fix. Used by `berthd check` and by Admin.Check on a running berthd.
#pragma once

#include <string>
#include <vector>

#include "daemon/daemon.h"

namespace berth::daemon {

struct CheckResult {
  enum class Status { kOk, kWarn, kFail };
  std::string name;  // "kernel.overlayfs", "runtime.runc", "disk.root", ...
  Status status = Status::kOk;
  bool fatal = false;  // a failure that keeps pods from running
  std::string detail;  // what was found
  std::string fix;     // what to do (failures and warnings)
};

const char* StatusName(CheckResult::Status s);  // "ok", "warn", "fail"

struct CheckOptions {
  // The running berthd answers: its socket is expected to be live and its own.
  bool from_daemon = false;
};

// Runs every check against the effective config of the pipeline.
std::vector<CheckResult> RunChecks(const PipelineResult& p, const CheckOptions& opts = {});
// "ok   kernel.overlayfs: ..." (+ "  fix: ..."), one line per result.
std::string FormatCheckLine(const CheckResult& r);
// True when a result is a fatal failure.
bool AnyFatal(const std::vector<CheckResult>& results);

}  // namespace berth::daemon
