#include "runtime/cgroups.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/fs.h"

namespace berth::runtime {

namespace {

std::vector<int> Procs(const std::string& dir) {
  std::vector<int> out;
  std::string text;
  try {
    text = fs::ReadFile(fs::Join(dir, "cgroup.procs"), 1 << 20);
  } catch (const Error&) {
    return out;
  }
  std::istringstream in(text);
  for (int pid; in >> pid;)
    if (pid > 0) out.push_back(pid);
  return out;
}

// rmdir of a cgroup and the cgroups below it, deepest first; false when one stays.
bool RemoveCgroup(const std::string& dir) {
  std::vector<std::string> children;
  try {
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      if (e.is_directory() && !e.is_symlink()) children.push_back(e.path().string());
    }
  } catch (const std::filesystem::filesystem_error& e) {
    return e.code() == std::errc::no_such_file_or_directory;
  }
  for (const auto& c : children)
    if (!RemoveCgroup(c)) return false;
  return ::rmdir(dir.c_str()) == 0 || errno == ENOENT;
}

}  // namespace

std::string KillAndRemoveCgroups(const std::vector<std::string>& dirs, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    bool left = false;
    for (const auto& d : dirs) {
      for (int pid : Procs(d)) {
        left = true;
        ::kill(pid, SIGKILL);
      }
    }
    std::string stays;
    for (const auto& d : dirs)
      if (!RemoveCgroup(d) && stays.empty()) stays = d;
    if (stays.empty() || std::chrono::steady_clock::now() >= deadline) return stays;
    std::this_thread::sleep_for(std::chrono::milliseconds(left ? 5 : 2));
  }
}

}  // namespace berth::runtime
