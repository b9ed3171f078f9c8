// Running a helper program (an OCI runtime, a probe) with a timeout and bounded captured output.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace berth::exec {

struct Options {
  std::vector<std::string> env;             // empty: inherit berthd's environment
  std::string stdin_data;                   // written to the child's stdin, then closed
  std::chrono::milliseconds timeout{30000}; // child is SIGKILLed after this
  size_t max_output = 4u << 20;             // per stream; the rest is read and dropped
  std::string cwd;                          // empty: inherit
};

struct Result {
  int exit_code = -1;  // exit status, or 128+signal when killed by a signal
  bool timed_out = false;
  std::string out;
  std::string err;
  bool ok() const { return exit_code == 0 && !timed_out; }
};

// Throws Error when the program cannot be started (naming argv[0] and errno).
Result Run(const std::vector<std::string>& argv, const Options& opts = {});

// Starts argv (argv[0] a path) without waiting for it: each {from, to} of `fds` is dup2'd onto
// `to` in the child; with null_stdio, stdout and stderr go to /dev/null. No signal is blocked in
// the child. Returns its pid (the caller reaps it). Throws Error naming argv[0].
int Spawn(const std::vector<std::string>& argv, const std::vector<std::pair<int, int>>& fds, bool null_stdio);

// A pidfd for a child of this process that has not been reaped yet (its pid cannot have been
// reused); -1 when the kernel has no pidfd_open.
int PidfdOpen(int pid);
// Reaps the child behind `pidfd` (waitid P_PIDFD) if it has exited, or waits for it with
// `wait`; closes the fd and sets it to -1 once the child is reaped (or is not this process's
// child). Returns true then, false while it still runs. -1 is left alone (true).
bool Reap(int& pidfd, bool wait = false, int* status = nullptr);

// Reads `fd` until end of file, `max` bytes or `timeout`, whichever comes first; *timed_out
// tells the last.
std::string ReadToEof(int fd, std::chrono::milliseconds timeout, size_t max, bool* timed_out = nullptr);

// "runc features" -> first line of stderr or stdout, trimmed; for error messages.
std::string Describe(const std::vector<std::string>& argv, const Result& r);

// Path of a program shipped with berth ("berth-monitor", "berth-fetch"...): the environment
// variable BERTH_<NAME>_PATH (BERTH_MONITOR_PATH...) when set, else next to the running
// executable, else in the build tree (<dir>/../<name>/<name>, or cmd/<name>/<name> from a test
// binary in tests/<suite>/), else in PATH. "" when not found.
std::string FindHelper(const std::string& name);

// Absolute path of a program: absolute names are checked, bare names looked up in PATH.
std::optional<std::string> LookPath(const std::string& name);

}  // namespace berth::exec
