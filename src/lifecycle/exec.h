// Processes started in a running container through the OCI runtime (`<runtime> exec`): ExecSync
// and the streaming server's exec. Internal to berth_lifecycle.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "runtime/cli.h"
#include "streaming/process.h"

namespace berth::lifecycle {

// Everything `<runtime> exec` needs: the container, its runtime and the process object (the
// container's own process spec with the requested args).
struct ExecTarget {
  std::string container_id;
  std::string dir;  // the container's bundle (temporary files go there)
  runtime::Cli cli;
  std::string process_json;
};

// SIGSTOPs `pid` and every process descended from it (scanning /proc until no new one shows up,
// so that none can fork away), then SIGKILLs them all. Processes gone meanwhile are skipped.
void KillProcessTree(int pid);

struct SyncResult {
  int exit_code = -1;
  bool timed_out = false;      // the timeout passed: the process tree has been killed
  bool drain_expired = false;  // the process exited but others kept its output open
  std::string out, err;
};

// ExecSync: runs the process with stdout and stderr captured (at most `max_output` bytes each,
// the rest dropped). When `timeout` passes, the process and all its children are killed before
// this returns. After the process exited, its output is read until every holder closed it, for
// at most `drain` (0 = until the timeout).
SyncResult RunExecSync(const ExecTarget& t, std::chrono::milliseconds timeout,
                       std::chrono::milliseconds drain, size_t max_output);

// Starts the process for the streaming server: pipes, or a pty received over a console socket
// when opts.tty. Throws Error when the runtime cannot start it.
std::unique_ptr<streaming::Process> StartExec(const ExecTarget& t,
                                              const streaming::CommandOptions& opts);

}  // namespace berth::lifecycle
