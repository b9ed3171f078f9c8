// Typed wrapper for an OCI runtime's command line (runc, crun): create, start, state, kill,
// delete, exec, update, ps. Every call has a timeout; every error names the runtime, the command
// and the runtime's own message (the "msg" of error lines with --log-format json).
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace berth::runtime {

struct CliOptions {
  std::string binary = "runc";  // path or name (looked up in PATH)
  std::string root;             // --root; "" = the runtime's default
  bool systemd_cgroup = false;  // --systemd-cgroup
  // Run the runtime through the hybrid-cgroup launcher where DecideLaunch (hostcompat.h) proved
  // it needs it (a runtime that refuses hybrid cgroup hosts); no effect elsewhere.
  bool hybrid_cgroup_workaround = true;
  std::chrono::milliseconds timeout{60000};  // per command
  std::string tmp_dir = "/tmp";              // process/resources files for exec and update
};

// `<runtime> state` (runtime-spec state).
struct State {
  std::string id;
  std::string status;  // creating, created, running, stopped (crun/runc also: paused)
  int pid = 0;
  std::string bundle;
};

struct ExecOptions {
  std::string process_json;  // runtime-spec process object
  std::chrono::milliseconds timeout{60000};  // the exec'd process is killed after this
  size_t max_output = 16u << 20;             // per stream; the rest is dropped
  std::string stdin_data;
};

struct ExecResult {
  int exit_code = -1;  // the process's exit status, or 128+signal
  bool timed_out = false;
  std::string out, err;
};

class Cli {
 public:
  explicit Cli(CliOptions opts);
  const CliOptions& options() const { return opts_; }
  // Short name of the runtime for messages ("runc").
  std::string name() const;

  // The command line prefix: [binary, --root R, --systemd-cgroup, --log-format json], plus
  // "--log <log_file>" when log_file is given; wrapped for the hybrid-cgroup launcher when needed.
  // berth-monitor gets this for `create`.
  std::vector<std::string> Argv(const std::vector<std::string>& args,
                                const std::string& log_file = "") const;

  // Creates without a monitor (stdio /dev/null); berthd normally creates through berth-monitor.
  void Create(const std::string& id, const std::string& bundle, const std::string& pid_file) const;
  void Start(const std::string& id) const;
  // Throws Error(kNotFound) when the runtime does not know the container.
  State GetState(const std::string& id) const;
  void Kill(const std::string& id, int signal, bool all = false) const;
  // A container the runtime does not know counts as deleted.
  void Delete(const std::string& id, bool force = false) const;
  // Deletes a container whose init process has exited. For runc with the cgroupfs driver this
  // does what `runc delete` does for a stopped container without running runc (a runc process
  // costs ~45 ms, most of it its own start-up): kills what is left in the container's cgroups,
  // removes them and runc's state directory, as recorded in runc's state.json. Whenever the
  // state is not exactly that (another runtime, the systemd driver, poststop hooks, Intel RDT,
  // an init still alive, an unknown state format, a cgroup that stays busy), it runs
  // `<runtime> delete --force` instead. Returns true when it did the work itself.
  bool DeleteExited(const std::string& id) const;
  // Runs a process in the container and captures its output (ExecSync). On timeout the process
  // is SIGKILLed and timed_out is set; a failure of the runtime itself throws.
  ExecResult Exec(const std::string& id, const ExecOptions& opts) const;
  // `update --resources <file>` with a runtime-spec linux.resources object.
  void Update(const std::string& id, const std::string& resources_json) const;
  // Pids of the container's processes.
  std::vector<int> Ps(const std::string& id) const;
  void Pause(const std::string& id) const;
  void Resume(const std::string& id) const;

 private:
  struct Output {
    std::string out, err;
  };
  Output Run(const std::vector<std::string>& args, const std::string& what,
             const std::string& stdin_data = "") const;
  CliOptions opts_;
};

// The error text of an OCI runtime's output (JSON log lines: the "msg" of error/fatal lines
// joined with ": "; otherwise the last lines of plain text, a "runc: "/"crun: " prefix removed).
std::string RuntimeErrorMessage(const std::string& output);
// True when a runtime message says that container `id` does not exist (runc: "container does
// not exist"; crun: a missing file under its state directory for the id).
bool IsNotExistMessage(const std::string& message, const std::string& id = "");

}  // namespace berth::runtime
