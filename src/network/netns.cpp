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

#include <thread>

#include "common/error.h"

namespace berth::network {

namespace {

// Steps of the namespace helper thread.
enum Step { kOk = 0, kUnshare = 10, kSocket, kGetFlags, kSetFlags, kMount };

const char* StepName(int step) {
  switch (step) {
    case kUnshare:
      return "unshare(CLONE_NEWNET)";
    case kSocket:
      return "socket(AF_INET) in the new namespace";
    case kGetFlags:
      return "SIOCGIFFLAGS lo";
    case kSetFlags:
      return "SIOCSIFFLAGS lo up";
    case kMount:
      return "bind mount of /proc/thread-self/ns/net";
    default:
      return "unknown step";
  }
}

}  // namespace

void CreateNetnsFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
  if (fd < 0) ThrowErrno("failed to create network namespace file " + path);
  ::close(fd);
}

void CreateNetns(const std::string& path) {
  CreateNetnsFile(path);

  // A short-lived thread, not a process: a thread can unshare its network namespace alone, and
  // berthd is spared a fork. The bind mount lands in berthd's mount namespace, which the
  // thread shares.
  int step = kOk, step_errno = 0;
  std::thread helper([&] {
    auto fail = [&](int s) {
      step_errno = errno;
      step = s;
    };
    if (::unshare(CLONE_NEWNET) != 0) return fail(kUnshare);
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return fail(kSocket);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (::ioctl(s, SIOCGIFFLAGS, &ifr) != 0) {
      fail(kGetFlags);
      ::close(s);
      return;
    }
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0) {
      fail(kSetFlags);
      ::close(s);
      return;
    }
    ::close(s);
    if (::mount("/proc/thread-self/ns/net", path.c_str(), nullptr, MS_BIND, nullptr) != 0)
      fail(kMount);
  });
  helper.join();
  if (step != kOk) {
    ::umount2(path.c_str(), MNT_DETACH);
    ::unlink(path.c_str());
    throw ErrnoError(
        std::string("failed to create network namespace ") + path + ": " + StepName(step),
        step_errno ? step_errno : EIO);
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
