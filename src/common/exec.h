// Running a helper program (an OCI runtime, a probe) with a timeout and bounded captured output.
#pragma once

#include <chrono>
#include <optional>
#include <string>
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

// "runc features" -> first line of stderr or stdout, trimmed; for error messages.
std::string Describe(const std::vector<std::string>& argv, const Result& r);

// Absolute path of a program: absolute names are checked, bare names looked up in PATH.
std::optional<std::string> LookPath(const std::string& name);

}  // namespace berth::exec
