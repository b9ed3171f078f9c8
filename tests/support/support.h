// Helpers shared by berth's tests: temporary directories, privilege checks, and a busybox root
// file system built from Debian's busybox-static.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace berth::testing {

// A directory under $TMPDIR (or /tmp) removed with everything below it (mounts are detached first).
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "berth-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

bool IsRoot();
// Empty when the host can run OCI containers with `runtime` (root, binary present); otherwise the
// reason to skip.
std::string ContainerSkipReason(const std::string& runtime = "runc");

// Path of the static busybox binary (Debian's busybox-static), or "" when it is not installed.
std::string BusyboxPath();
// Creates a minimal root file system in `dir`: /bin/busybox plus symlinks for its applets
// (sh, ls, cat, echo, touch, sleep, ...), /etc/passwd, /etc/group, and empty /proc /sys /dev /tmp.
void MakeBusyboxRootfs(const std::string& dir);

// Unmounts (MNT_DETACH) every mount at or below `path`, deepest first.
void UnmountAllBelow(const std::string& path);

// Writes a file, creating parent directories.
void WriteFile(const std::string& path, const std::string& data);

// True when the unix socket at `path` accepts a connection.
bool UnixSocketAccepts(const std::string& path);

// Sends `sig` to `signal_pid` (the child itself when -1), waits up to 30 s for the child `pid`
// to exit, SIGKILLs it if it has not, and reaps it.
void StopChild(pid_t pid, int sig, pid_t signal_pid = -1);

// Polls `done` every 10 ms until it holds or `timeout` passes; returns its last value. For what
// happens after a reply (berthd removes a container's files after RemoveContainer answers).
bool Eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace berth::testing
