// /proc readings for recovery.
#include "lifecycle/procs.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "common/error.h"
#include "common/fs.h"

namespace berth::lifecycle {

namespace {

std::string ReadProc(const std::string& path) {
  try {
    return fs::ReadFile(path, 1 << 16);
  } catch (const Error&) {
    return "";
  }
}

std::vector<std::string> SplitNul(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t z = s.find('\0', pos);
    if (z == std::string::npos) z = s.size();
    out.push_back(s.substr(pos, z - pos));
    pos = z + 1;
  }
  return out;
}

int ParentPid(int pid) {
  std::string stat = ReadProc("/proc/" + std::to_string(pid) + "/stat");
  size_t r = stat.rfind(')');
  int ppid = 0;
  if (r == std::string::npos || std::sscanf(stat.c_str() + r + 1, " %*c %d", &ppid) != 1) return 0;
  return ppid;
}

}  // namespace

uint64_t ProcStartTicks(int pid) {
  if (pid <= 0) return 0;
  std::string stat = ReadProc("/proc/" + std::to_string(pid) + "/stat");
  // pid (comm) state ... : comm may hold anything, so fields are counted after the last ')'.
  size_t r = stat.rfind(')');
  if (r == std::string::npos) return 0;
  char state = 0;
  unsigned long long start = 0;
  // state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime cutime
  // cstime priority nice num_threads itrealvalue starttime(22)
  if (std::sscanf(
          stat.c_str() + r + 1,
          " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
          &state, &start) != 2)
    return 0;
  if (state == 'Z' || state == 'X') return 0;
  return start;
}

int64_t ProcStartEpochNs(uint64_t ticks) {
  static const int64_t btime = [] {
    std::string s = ReadProc("/proc/stat");
    size_t p = s.find("\nbtime ");
    return p == std::string::npos ? int64_t{0} : std::strtoll(s.c_str() + p + 7, nullptr, 10);
  }();
  static const long hz = ::sysconf(_SC_CLK_TCK);
  if (ticks == 0 || btime == 0 || hz <= 0) return 0;
  return btime * 1000000000LL + static_cast<int64_t>(ticks) * (1000000000LL / hz);
}

bool ProcAlive(int pid, uint64_t ticks) {
  uint64_t now = ProcStartTicks(pid);
  return now != 0 && (ticks == 0 || now == ticks);
}

std::map<std::string, HelperProc> ScanHelpers() {
  std::map<std::string, HelperProc> out;
  std::vector<std::pair<std::string, HelperProc>> found;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (auto* e = ::readdir(d)) {
    int pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    auto args = SplitNul(ReadProc("/proc/" + std::string(e->d_name) + "/cmdline"));
    if (args.empty()) continue;
    bool monitor = args[0].find("berth-monitor") != std::string::npos;
    bool pause = args[0].find("berth-pause") != std::string::npos;
    if (!monitor && !pause) continue;
    HelperProc h;
    h.pid = pid;
    h.pause = pause;
    std::string id;
    bool sandbox = false;
    for (size_t i = 1; i < args.size(); ++i) {
      if (args[i] == "--") break;
      if (args[i] == "--sandbox") sandbox = true;
      if (i + 1 < args.size() && args[i] == "--id") id = args[i + 1];
      if (i + 1 < args.size() && args[i] == "--bundle") h.bundle = args[i + 1];
    }
    if (id.empty() || (pause && !sandbox)) continue;
    found.emplace_back(id, h);
  }
  ::closedir(d);
  // A helper forks before it execs the runtime (or the pause): for a moment the child has the
  // same command line. The helper is the one whose parent is not a helper of the same id.
  std::map<int, std::string> ids;
  for (const auto& [id, h] : found) ids[h.pid] = id;
  for (const auto& [id, h] : found) {
    auto parent = ids.find(ParentPid(h.pid));
    if (parent == ids.end() || parent->second != id) out[id] = h;
  }
  return out;
}

int ReadPidFile(const std::string& path) {
  std::string s;
  try {
    s = fs::ReadFile(path, 64);
  } catch (const Error&) {
    return 0;
  }
  int pid = std::atoi(s.c_str());
  return pid > 0 ? pid : 0;
}

}  // namespace berth::lifecycle
