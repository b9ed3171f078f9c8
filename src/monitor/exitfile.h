// The exit file berth-monitor writes (atomically: tmp + rename) when a container's init exits,
// and berthd reads, also after a restart. Text, one "key value" per line:
//   exit_code 137
//   exited_at 1764393013123456789      (ns since the epoch)
//   signal 9                           (0 when the process exited normally)
//   oom_killed 1
//   error <text>                       (optional: the monitor could not follow the container)
// Unknown keys are ignored so that the format can grow. libc and the standard library only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace berth::monitor {

struct ExitInfo {
  int exit_code = -1;   // exit status, or 128+signal when killed by a signal
  int64_t exited_at_ns = 0;
  int signal = 0;
  bool oom_killed = false;
  std::string error;
};

std::string FormatExitInfo(const ExitInfo& info);
// Returns "" on success, else what is wrong. Requires exit_code and exited_at.
std::string ParseExitInfo(std::string_view text, ExitInfo* out);
// Writes `data` to "<path>.tmp" and renames it over `path`. Returns 0 or an errno value. No
// fsync: exit files live in the state dir, which does not outlive the node's running containers.
int WriteFileAtomicRaw(const std::string& path, std::string_view data);

}  // namespace berth::monitor
