// berthd's side of berth-monitor: start a monitor for a container and wait until the runtime
// has created it, find it again after a restart, ask it to reopen the log, read its exit file.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "monitor/exitfile.h"

namespace berth::monitor {

// runtime_argv is typically runtime::Cli::Argv({}, runtime_log) (it ends with the global options).
struct SpawnOptions {
  std::string monitor_path;              // berth-monitor binary
  std::string id;                        // container id
  std::string bundle;                    // bundle dir (config.json, rootfs)
  std::vector<std::string> runtime_argv; // runtime binary + global args (--root, --log, ...)
  std::string runtime_log;               // runtime's --log file, read on failure ("" = none)
  std::string pid_file;                  // default "<bundle>/init.pid"
  std::string log_path;                  // CRI log file
  std::string exit_file;                 // default "<bundle>/exit"
  std::string stdin_fifo;                // "" = stdin is /dev/null
  // Terminal (process.terminal in the spec): the runtime hands the pty master to the monitor
  // over a unix socket ("" = "<bundle>/console.sock", at most 107 bytes); the terminal's output
  // is logged as stdout, and stdin_fifo (if any) is copied to it.
  bool tty = false;
  std::string console_socket;
  // Attach (monitor/attach.h): the socket the monitor serves attached clients on ("" = none),
  // and the container's stdin kept open for them (CRI `stdin`), closed when the first attached
  // client's stdin ends with `stdin_once`.
  std::string attach_socket;
  bool keep_stdin = false, stdin_once = false;
  long max_line = 16 * 1024;             // max_container_log_line_size; <= 0 = no limit
  // `<runtime> run --detach` instead of `create`: the container is created and started by one
  // runtime process (output it prints before the runtime exits is logged as the container's).
  bool start = false;
  std::chrono::milliseconds timeout{60000};
};

struct Spawned {
  int container_pid = 0;
  int monitor_pid = 0;
  // pidfd of the monitor, a child of the caller: exec::Reap() it once it has exited (WaitMonitor).
  int monitor_fd = -1;
};

// Starts berth-monitor (the caller's child, in a session of its own), which runs `<runtime> create` (or `run --detach` with
// opts.start); returns once the container exists (state "created", or "running" with start). Throws Error naming the container, the runtime and its message
// (runtime::RuntimeErrorMessage of its JSON log) when creation fails or times out.
Spawned Spawn(const SpawnOptions& opts);

// The monitor pid is alive and is the berth-monitor of container `id` (guards against pid reuse).
// Also true for the waiter of a pause berthd started itself (berth-pause --sandbox --id <id>).
bool IsMonitorAlive(int monitor_pid, const std::string& id);
// Asks the monitor to reopen the container log (ReopenContainerLog). Throws if it is gone.
void ReopenLog(int monitor_pid, const std::string& id);
// Waits until the monitor exits (pidfd); false on timeout. True at once when it is not running.
bool WaitMonitor(int monitor_pid, const std::string& id, std::chrono::milliseconds timeout);
// The exit file, or nullopt when it does not exist yet. Throws Error when it is malformed.
std::optional<ExitInfo> ReadExitFile(const std::string& path);

}  // namespace berth::monitor
