// Named steps with undo: the runner shared by the CRI calls that change the host.
#include "lifecycle/steps.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <exception>

#include <spdlog/spdlog.h>

#include "common/error.h"

namespace berth::lifecycle {

namespace {

// BERTH_CRASH_AT=<call>:<step> (the tests of recovery at each cut point): berthd kills itself with
// SIGKILL once that step is recorded, before it runs.
void CrashPoint(const StepCalls& c, const std::string& step) {
  static const char* at = std::getenv("BERTH_CRASH_AT");
  if (at && c.call + ":" + step == at) ::kill(::getpid(), SIGKILL);
}

void Record(const StepCalls& c, const std::vector<std::string>& begun) {
  c.record(begun);
  CrashPoint(c, begun.back());
}

}  // namespace

std::vector<std::string> UndoSteps(const StepCalls& c, const std::vector<std::string>& begun,
                                   const std::string& why) {
  std::vector<std::string> failed;
  for (auto it = begun.rbegin(); it != begun.rend(); ++it) {
    try {
      c.undo(*it);
      spdlog::debug("{} {}: step {} undone ({})", c.call, c.id, *it, why);
    } catch (const std::exception& e) {
      spdlog::error("{} {}: undo of step {} failed ({}): {}; the record is kept for a later retry",
                    c.call, c.id, *it, why, e.what());
      failed.push_back(*it + ": " + e.what());
    }
  }
  return failed;
}

std::vector<std::string> RunSteps(const StepCalls& c, const std::vector<Step>& steps,
                                  bool* undo_failed) {
  std::vector<std::string> begun;
  begun.reserve(steps.size());
  *undo_failed = false;
  for (const auto& s : steps) {
    begun.emplace_back(s.name);
    try {
      Record(c, begun);
      s.run();
    } catch (const std::exception& e) {
      spdlog::info("{} {}: step {} failed: {}; undoing {} step(s)", c.call, c.id, s.name, e.what(),
                   begun.size());
      auto failed = UndoSteps(c, begun, std::string("step ") + s.name + " failed");
      if (failed.empty()) throw;
      *undo_failed = true;
      const auto* be = dynamic_cast<const Error*>(&e);
      std::string msg =
          std::string(e.what()) + " (clean-up left for a retry: " + failed.front() + ")";
      throw Error(be ? be->code() : Code::kInternal, msg);
    }
  }
  return begun;
}

void RunForwardSteps(const StepCalls& c, const std::vector<Step>& steps) {
  std::vector<std::string> begun;
  begun.reserve(steps.size());
  for (const auto& s : steps) {
    begun.emplace_back(s.name);
    Record(c, begun);
    try {
      s.run();
    } catch (const std::exception& e) {
      spdlog::info("{} {}: step {} failed: {}; left for a retry (journal kept)", c.call, c.id,
                   s.name, e.what());
      throw;
    }
  }
}

}  // namespace berth::lifecycle
