// A CRI call that changes the host runs as a list of named steps (docs/pods.md, "Steps and
// recovery"). Each step's name is recorded (in the object's SQLite record) before the step
// runs, so that a restart knows what may exist; each step has an undo, looked up by name, that
// looks at what really exists and removes it (idempotent: it may run after a step that did
// nothing, or twice). When a step fails, the steps begun are undone in reverse order, the failing
// one first. An undo that fails is logged and makes the call keep its record, for a removal or a
// restart to retry; it is never dropped. BERTH_CRASH_AT=<call>:<step> in berthd's environment
// makes it SIGKILL itself once that step is recorded (a crash at that cut point, for tests).
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace berth::lifecycle {

struct Step {
  const char* name;
  std::function<void()> run;
};

struct StepCalls {
  std::string call;  // "RunPodSandbox"
  std::string id;    // the object the steps make
  // Stores the names of the steps begun so far (called before each step runs).
  std::function<void(const std::vector<std::string>&)> record;
  // Undoes one step by name; throws Error when it cannot.
  std::function<void(const std::string&)> undo;
};

// Runs the steps in order and returns the names begun (all of them). When a step throws, undoes
// the begun steps in reverse and rethrows the step's error; when an undo fails as well, the error
// says so and `*undo_failed` is set (the record must be kept).
std::vector<std::string> RunSteps(const StepCalls& c, const std::vector<Step>& steps,
                                  bool* undo_failed);

// Runs steps that have no undo (stops and removals: a killed process cannot be revived), each
// recorded before it runs as with RunSteps. A failure is rethrown and the journal kept: the
// call's retry, or recovery at the next start, finishes the list (every step is idempotent). The
// caller clears the journal with its last step (or deletes the record).
void RunForwardSteps(const StepCalls& c, const std::vector<Step>& steps);

// Undoes recorded steps in reverse (recovery; the removal of a record kept after a failed
// undo). Every failure is logged; returns them ("<step>: <error>"), empty when all went.
std::vector<std::string> UndoSteps(const StepCalls& c, const std::vector<std::string>& begun,
                                   const std::string& why);

}  // namespace berth::lifecycle
