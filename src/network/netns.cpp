#include "network/netns.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/error.h"

namespace berth::network {

namespace {

// Steps of the child, reported as its exit status.
enum Step { kOk = 0, kUnshare = 10, kSocket, kGetFlags, kSetFlags, kMount };

const char* StepName(int step) {
  switch (step) {
    case kUnshare: return "unshare(CLONE_NEWNET)";
    case kSocket: return "socket(AF_INET) in the new namespace";
    case kGetFlags: return "SIOCGIFFLAGS lo";
    case kSetFlags: return "SIOCSIFFLAGS lo up";
    case kMount: return "bind mount of /proc/self/ns/net";
    default: return "unknown step";
  }
}

[[noreturn]] void ChildExit(int step) {
  // errno in the high bits would not fit into 8 bits: report the step, errno on a pipe.
  _exit(step);
}

}  // namespace

void CreateNetns(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
  if (fd < 0) ThrowErrno("failed to create network namespace file " + path);
  ::close(fd);

  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) {
    int err = errno;
    ::unlink(path.c_str());
    ThrowErrno("failed to create network namespace " + path + ": pipe", err);
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    ::unlink(path.c_str());
    ThrowErrno("failed to create network namespace " + path + ": fork", err);
  }
  if (pid == 0) {
    ::close(pipefd[0]);
    auto fail = [&](int step) {
      int err = errno;
      (void)!::write(pipefd[1], &err, sizeof err);
      ChildExit(step);
    };
    if (::unshare(CLONE_NEWNET) != 0) fail(kUnshare);
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) fail(kSocket);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (::ioctl(s, SIOCGIFFLAGS, &ifr) != 0) fail(kGetFlags);
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0) fail(kSetFlags);
    ::close(s);
    if (::mount("/proc/self/ns/net", path.c_str(), nullptr, MS_BIND, nullptr) != 0) fail(kMount);
    _exit(kOk);
  }
  ::close(pipefd[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(pipefd[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(pipefd[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  int step = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (step != kOk) {
    ::umount2(path.c_str(), MNT_DETACH);
    ::unlink(path.c_str());
    if (step < 0) throw Error(Code::kInternal, "failed to create network namespace " + path + ": helper process killed");
    throw ErrnoError(std::string("failed to create network namespace ") + path + ": " + StepName(step),
                     n == sizeof child_errno ? child_errno : EIO);
  }
}

void RemoveNetns(const std::string& path) {
  if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    ThrowErrno("failed to unmount network namespace " + path);
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    ThrowErrno("failed to remove network namespace file " + path);
  }
}

bool IsNetns(const std::string& path) {
  struct statfs st;
  if (::statfs(path.c_str(), &st) != 0) return false;
  return st.f_type == NSFS_MAGIC;
}

}  // namespace berth::network
