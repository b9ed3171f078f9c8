#include "userns/userns.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "common/error.h"
#include "common/fs.h"

namespace berth::userns {

namespace {

constexpr uint64_t kIdLimit = 4294967295ull;  // (uid_t)-1 is not an id

void WaitChild(pid_t pid) {
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

// Before a namespace child blocks on its hold pipe: every descriptor but that one (and stdio) is
// closed. It has a copy of berthd's descriptor table, with the write ends of the hold pipes of
// children made at the same time by other threads; kept, two such children could hold each
// other's pipe open and wait for ever, with berthd's listening socket. Raw system calls only.
void KeepOnly(int fd) {
  auto close_range = [](unsigned first, unsigned last) {
    if (first > last) return;
    if (::syscall(SYS_close_range, first, last, 0) == 0) return;
    for (unsigned i = first; i <= last && i < 65536; ++i) ::close(static_cast<int>(i));
  };
  if (fd > 3) close_range(3, static_cast<unsigned>(fd) - 1);
  close_range(static_cast<unsigned>(fd) + 1, ~0u);
}

// The child of a clone(CLONE_VM | CLONE_NEWUSER): it only waits for end of file on its pipe, so
// that the parent can write its maps and open or pin its namespace.
int HoldChild(void* arg) {
  int* p = static_cast<int*>(arg);
  KeepOnly(p[0]);
  char c;
  while (::read(p[0], &c, 1) < 0 && errno == EINTR) {
  }
  ::_exit(0);
}

void WriteMap(pid_t pid, const char* file, const std::vector<IDMap>& m) {
  std::string path = "/proc/" + std::to_string(pid) + "/" + file;
  std::string text = MapText(m);
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) ThrowErrno("open " + path);
  ssize_t n = ::write(fd, text.data(), text.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size()))
    ThrowErrno("write " + path + " (" + text.substr(0, text.find('\n')) + ")", n < 0 ? err : EIO);
}

// The child of a clone(CLONE_VM | CLONE_NEWUSER | CLONE_NEWNET): brings lo up in its new network
// namespace (it has every capability in its new user namespace, which owns it), reports the errno
// of that on p[2] (0: done), then holds like HoldChild. Raw system calls only: it shares the
// parent's memory.
int NetHoldChild(void* arg) {
  int* p = static_cast<int*>(arg);
  ::close(p[1]);
  int err = 0;
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, "lo", 3);
  if (s < 0 || ::ioctl(s, SIOCGIFFLAGS, &ifr) != 0) {
    err = errno ? errno : EIO;
  } else {
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0) err = errno ? errno : EIO;
  }
  if (::write(p[2], &err, sizeof err) != sizeof err) ::_exit(1);
  KeepOnly(p[0]);
  char c;
  while (::read(p[0], &c, 1) < 0 && errno == EINTR) {
  }
  ::_exit(0);
}

// Clones a child into a new user namespace with mapping `m` (and a network namespace it owns, with
// `net`) and calls `use(pid)` while it lives.
template <typename F>
void WithMappedChild(const Mapping& m, const std::string& what, F use, bool net = false) {
  int p[3], report[2] = {-1, -1};
  if (::pipe2(p, O_CLOEXEC) != 0) ThrowErrno(what + ": pipe");
  if (net && ::pipe2(report, O_CLOEXEC) != 0) {
    ::close(p[0]);
    ::close(p[1]);
    ThrowErrno(what + ": pipe");
  }
  p[2] = report[1];
  std::vector<char> stack(64 * 1024);
  int flags = CLONE_VM | CLONE_NEWUSER | SIGCHLD | (net ? CLONE_NEWNET : 0);
  pid_t pid = ::clone(net ? NetHoldChild : HoldChild, stack.data() + stack.size(), flags, p);
  int err = errno;
  ::close(p[0]);
  if (net) ::close(report[1]);
  if (pid < 0) {
    ::close(p[1]);
    if (net) ::close(report[0]);
    ThrowErrno(what + (net ? ": clone(CLONE_NEWUSER|CLONE_NEWNET)" : ": clone(CLONE_NEWUSER)"),
               err);
  }
  if (net) {
    int lo = EIO;
    ssize_t n = ::read(report[0], &lo, sizeof lo);
    ::close(report[0]);
    if (n != sizeof lo || lo != 0) {
      ::close(p[1]);
      WaitChild(pid);
      ThrowErrno(what + ": SIOCSIFFLAGS lo up in the new network namespace",
                 n == sizeof lo ? lo : EIO);
    }
  }
  try {
    WriteMap(pid, "uid_map", m.uids);
    WriteMap(pid, "gid_map", m.gids);
    use(pid);
  } catch (...) {
    ::close(p[1]);
    WaitChild(pid);
    throw;
  }
  ::close(p[1]);
  WaitChild(pid);
}

void CreateEmpty(const std::string& path, const std::string& what) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
  if (fd < 0) ThrowErrno("failed to create " + what + " file " + path);
  ::close(fd);
}

// Steps of the network namespace child.
enum NetStep : int { kNetOk = 0, kSetns = 1, kUnshare, kSocket, kLoUp };
const char* NetStepName(int s) {
  switch (s) {
    case kSetns:
      return "setns(CLONE_NEWUSER)";
    case kUnshare:
      return "unshare(CLONE_NEWNET)";
    case kSocket:
      return "socket(AF_INET) in the new namespace";
    default:
      return "SIOCSIFFLAGS lo up";
  }
}

// In a forked child (async-signal-safe calls only): joins the user namespace, makes the network
// namespace, brings lo up, reports {step, errno} and waits for end of file.
[[noreturn]] void NetnsChild(int userns_fd, int report, int hold) {
  int r[2] = {kNetOk, 0};
  auto fail = [&](int step) {
    r[0] = step;
    r[1] = errno;
  };
  if (::setns(userns_fd, CLONE_NEWUSER) != 0) {
    fail(kSetns);
  } else if (::unshare(CLONE_NEWNET) != 0) {
    fail(kUnshare);
  } else {
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (s < 0) {
      fail(kSocket);
    } else if (::ioctl(s, SIOCGIFFLAGS, &ifr) != 0) {
      fail(kLoUp);
    } else {
      ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
      if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0) fail(kLoUp);
    }
  }
  if (::write(report, r, sizeof r) != sizeof r) ::_exit(1);
  KeepOnly(hold);
  char c;
  while (::read(hold, &c, 1) < 0 && errno == EINTR) {
  }
  ::_exit(0);
}

}  // namespace

std::string Describe(const IDMap& m) {
  return "container_id " + std::to_string(m.container_id) + ", host_id " +
         std::to_string(m.host_id) + ", length " + std::to_string(m.length);
}

std::string MapText(const std::vector<IDMap>& m) {
  std::string out;
  for (const auto& r : m)
    out += std::to_string(r.container_id) + " " + std::to_string(r.host_id) + " " +
           std::to_string(r.length) + "\n";
  return out;
}

int64_t ToHost(const std::vector<IDMap>& m, uint32_t id) {
  for (const auto& r : m) {
    if (id >= r.container_id && uint64_t{id} < uint64_t{r.container_id} + r.length)
      return int64_t{r.host_id} + (id - r.container_id);
  }
  return -1;
}

void CheckRanges(const std::vector<IDMap>& m, const std::string& field) {
  auto bad = [&](size_t i, const std::string& why) {
    throw Error(Code::kInvalidArgument,
                field + "[" + std::to_string(i) + "]: " + why + ": " + Describe(m[i]));
  };
  for (size_t i = 0; i < m.size(); ++i) {
    const auto& r = m[i];
    if (r.length == 0) bad(i, "empty range");
    if (uint64_t{r.container_id} + r.length > kIdLimit)
      bad(i, "container range overflows past 4294967294");
    if (uint64_t{r.host_id} + r.length > kIdLimit) bad(i, "host range overflows past 4294967294");
    for (size_t j = 0; j < i; ++j) {
      const auto& o = m[j];
      auto overlap = [](uint64_t a, uint64_t al, uint64_t b, uint64_t bl) {
        return a < b + bl && b < a + al;
      };
      if (overlap(r.container_id, r.length, o.container_id, o.length))
        bad(i, "container range overlaps " + field + "[" + std::to_string(j) + "] (" + Describe(o) +
                   ")");
      if (overlap(r.host_id, r.length, o.host_id, o.length))
        bad(i,
            "host range overlaps " + field + "[" + std::to_string(j) + "] (" + Describe(o) + ")");
    }
  }
}

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

void CreatePinned(const std::string& path, const Mapping& m) {
  CreateEmpty(path, "user namespace");
  try {
    WithMappedChild(m, "failed to create user namespace " + path, [&](pid_t pid) {
      std::string ns = "/proc/" + std::to_string(pid) + "/ns/user";
      if (::mount(ns.c_str(), path.c_str(), nullptr, MS_BIND, nullptr) != 0)
        ThrowErrno("failed to pin user namespace at " + path + ": bind mount of " + ns);
    });
  } catch (...) {
    ::unlink(path.c_str());
    throw;
  }
}

void CreatePinnedWithNetns(const std::string& path, const std::string& netns_path,
                           const Mapping& m) {
  CreateEmpty(path, "user namespace");
  try {
    CreateEmpty(netns_path, "network namespace");
  } catch (...) {
    ::unlink(path.c_str());
    throw;
  }
  try {
    WithMappedChild(
        m, "failed to create user namespace " + path + " with network namespace " + netns_path,
        [&](pid_t pid) {
          auto pin = [&](const char* ns, const std::string& at) {
            std::string src = "/proc/" + std::to_string(pid) + "/ns/" + ns;
            if (::mount(src.c_str(), at.c_str(), nullptr, MS_BIND, nullptr) != 0)
              ThrowErrno("failed to pin namespace at " + at + ": bind mount of " + src);
          };
          pin("user", path);
          pin("net", netns_path);
        },
        /*net=*/true);
  } catch (...) {
    ::umount2(netns_path.c_str(), MNT_DETACH);
    ::umount2(path.c_str(), MNT_DETACH);
    ::unlink(netns_path.c_str());
    ::unlink(path.c_str());
    throw;
  }
}

Fd NewUsernsFd(const Mapping& m) {
  Fd out;
  WithMappedChild(m, "failed to create a user namespace", [&](pid_t pid) {
    std::string ns = "/proc/" + std::to_string(pid) + "/ns/user";
    out = Fd(::open(ns.c_str(), O_RDONLY | O_CLOEXEC));
    if (out.get() < 0) ThrowErrno("open " + ns);
  });
  return out;
}

Fd OpenNs(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) ThrowErrno("open namespace " + path);
  return fd;
}

void CreateNetnsIn(const std::string& userns_path, const std::string& netns_path) {
  Fd user = OpenNs(userns_path);
  CreateEmpty(netns_path, "network namespace");
  int report[2], hold[2];
  if (::pipe2(report, O_CLOEXEC) != 0) ThrowErrno("pipe");
  if (::pipe2(hold, O_CLOEXEC) != 0) {
    ::close(report[0]);
    ::close(report[1]);
    ThrowErrno("pipe");
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(hold[1]);
    NetnsChild(user.get(), report[1], hold[0]);
  }
  int fork_err = errno;
  ::close(report[1]);
  ::close(hold[0]);
  std::string err;
  int code = 0;
  if (pid < 0) {
    err = "fork";
    code = fork_err;
  } else {
    int r[2] = {-1, 0};
    if (::read(report[0], r, sizeof r) != sizeof r) {
      err = "the namespace child died";
      code = EIO;
    } else if (r[0] != kNetOk) {
      err = NetStepName(r[0]);
      code = r[1];
    } else {
      std::string ns = "/proc/" + std::to_string(pid) + "/ns/net";
      if (::mount(ns.c_str(), netns_path.c_str(), nullptr, MS_BIND, nullptr) != 0) {
        err = "bind mount of " + ns;
        code = errno;
      }
    }
  }
  ::close(report[0]);
  ::close(hold[1]);
  if (pid > 0) WaitChild(pid);
  if (!err.empty()) {
    ::unlink(netns_path.c_str());
    throw ErrnoError("failed to create network namespace " + netns_path + " in user namespace " +
                         userns_path + ": " + err,
                     code);
  }
}

void RemovePinned(const std::string& path) {
  if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
    ThrowErrno("failed to unmount namespace " + path);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    ThrowErrno("failed to remove namespace file " + path);
}

bool IsPinned(const std::string& path) {
  struct statfs st;
  return ::statfs(path.c_str(), &st) == 0 && st.f_type == NSFS_MAGIC;
}

Fd IdmappedTree(const std::string& path, int userns_fd, bool recursive, bool readonly) {
  unsigned rec = recursive ? AT_RECURSIVE : 0;
  Fd tree(::open_tree(AT_FDCWD, path.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | rec));
  if (tree.get() < 0) ThrowErrno("open_tree(OPEN_TREE_CLONE) of " + path);
  struct mount_attr a;
  memset(&a, 0, sizeof a);
  a.attr_set = MOUNT_ATTR_IDMAP | (readonly ? MOUNT_ATTR_RDONLY : 0);
  a.userns_fd = static_cast<uint64_t>(userns_fd);
  if (::mount_setattr(tree.get(), "", AT_EMPTY_PATH | rec, &a, sizeof a) != 0) {
    int e = errno;
    std::string why = e == EINVAL ? " (its file system, or one below it, cannot be idmapped)" : "";
    ThrowErrno("mount_setattr(MOUNT_ATTR_IDMAP" +
                   std::string(readonly ? "|MOUNT_ATTR_RDONLY" : "") + ") of " + path + why,
               e);
  }
  return tree;
}

void Attach(const Fd& tree, const std::string& target) {
  if (::move_mount(tree.get(), "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0)
    ThrowErrno("move_mount of an idmapped tree to " + target);
}

Support ProbeIdmap(const std::string& dir) {
  std::string scratch = fs::Join(dir, "idmap-probe-XXXXXX");
  try {
    fs::MkdirAll(dir, 0711);
    if (!::mkdtemp(scratch.data())) ThrowErrno("mkdtemp below " + dir);
  } catch (const std::exception& e) {
    return {false, std::string("cannot probe idmapped mounts: ") + e.what()};
  }
  Support s;
  try {
    Fd user = NewUsernsFd({{{0, 65534, 1}}, {{0, 65534, 1}}});
    Fd tree = IdmappedTree(scratch, user.get(), false, false);
    struct stat st;
    if (::fstatat(tree.get(), "", &st, AT_EMPTY_PATH) != 0)
      ThrowErrno("fstat of the idmapped clone of " + scratch);
    if (st.st_uid != 65534)
      throw Error("the idmapped clone of " + scratch + " shows owner " + std::to_string(st.st_uid) +
                  ", not 65534");
    s = {true, "an open_tree clone of a scratch directory in " + dir +
                   " was idmapped with mount_setattr(MOUNT_ATTR_IDMAP)"};
  } catch (const std::exception& e) {
    std::string why = e.what();
    if (why.find("Function not implemented") != std::string::npos)
      why += " (idmapped mounts need Linux 5.12 or later)";
    s = {false, why};
  }
  ::rmdir(scratch.c_str());
  return s;
}

}  // namespace berth::userns
