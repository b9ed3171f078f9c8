// What runs on the host, read from /proc: process start times (to tell a pid from a reused one)
// and the helper processes of berth (berth-monitor, berth-pause's waiter) with the object each
// serves. Used by recovery, which trusts what exists over what was recorded.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace berth::lifecycle {

// Start time of `pid` in clock ticks since boot (/proc/<pid>/stat field 22); 0 when it is gone
// (or a zombie).
uint64_t ProcStartTicks(int pid);
// The same start time as nanoseconds since the epoch (btime of /proc/stat).
int64_t ProcStartEpochNs(uint64_t ticks);
// `pid` runs and started at `ticks` (ticks 0: any start time).
bool ProcAlive(int pid, uint64_t ticks);

struct HelperProc {
  int pid = 0;
  std::string bundle;  // berth-monitor's --bundle ("" for berth-pause)
  bool pause = false;  // berth-pause --sandbox (a waiter)
};
// berth-monitor and berth-pause waiter processes by their --id (one /proc scan).
std::map<std::string, HelperProc> ScanHelpers();

// The pid in a pid file (berth-monitor's init.pid), 0 when absent or bad.
int ReadPidFile(const std::string& path);

}  // namespace berth::lifecycle
