#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "common/error.h"
#include "common/fs.h"
#include "snapshot/snapshotter.h"

namespace berth::snapshot {
namespace {

struct Parsed {
  unsigned long flags = 0;
  unsigned long propagation = 0;
  std::string data;
};

Parsed ParseOptions(const std::vector<std::string>& options) {
  static const std::map<std::string, std::pair<bool, unsigned long>> kFlags = {
      {"ro", {true, MS_RDONLY}},
      {"rw", {false, MS_RDONLY}},
      {"bind", {true, MS_BIND}},
      {"rbind", {true, MS_BIND | MS_REC}},
      {"nosuid", {true, MS_NOSUID}},
      {"suid", {false, MS_NOSUID}},
      {"nodev", {true, MS_NODEV}},
      {"dev", {false, MS_NODEV}},
      {"noexec", {true, MS_NOEXEC}},
      {"exec", {false, MS_NOEXEC}},
      {"noatime", {true, MS_NOATIME}},
      {"relatime", {true, MS_RELATIME}},
      {"strictatime", {true, MS_STRICTATIME}},
      {"sync", {true, MS_SYNCHRONOUS}},
      {"async", {false, MS_SYNCHRONOUS}},
      {"remount", {true, MS_REMOUNT}},
  };
  static const std::map<std::string, unsigned long> kPropagation = {
      {"private", MS_PRIVATE}, {"rprivate", MS_PRIVATE | MS_REC},
      {"shared", MS_SHARED},   {"rshared", MS_SHARED | MS_REC},
      {"slave", MS_SLAVE},     {"rslave", MS_SLAVE | MS_REC},
  };
  Parsed p;
  for (const auto& o : options) {
    if (auto it = kFlags.find(o); it != kFlags.end()) {
      if (it->second.first)
        p.flags |= it->second.second;
      else
        p.flags &= ~it->second.second;
    } else if (auto pit = kPropagation.find(o); pit != kPropagation.end()) {
      p.propagation |= pit->second;
    } else {
      if (!p.data.empty()) p.data += ",";
      p.data += o;
    }
  }
  return p;
}

// Mounts an overlay whose option string is longer than a page by running mount(2) in a child
// process whose working directory is the longest common directory of the layer paths, with the
// paths made relative to it (as containerd does).
void MountOverlayLong(const Mount& m, const std::string& target, const Parsed& p) {
  // Common prefix of all absolute paths in lowerdir/upperdir/workdir.
  std::vector<std::string> paths;
  std::vector<std::string> opts = m.options;
  for (auto& o : opts) {
    for (const char* key : {"lowerdir=", "upperdir=", "workdir="}) {
      if (o.rfind(key, 0) == 0) {
        std::string v = o.substr(strlen(key));
        size_t start = 0;
        while (start <= v.size()) {
          size_t end = v.find(':', start);
          if (end == std::string::npos) end = v.size();
          paths.push_back(v.substr(start, end - start));
          start = end + 1;
        }
      }
    }
  }
  if (paths.empty())
    throw Error(Code::kInvalidArgument, "mount overlay on " + target + ": options too long");
  std::string common = paths[0].substr(0, paths[0].rfind('/'));
  for (auto& path : paths) {
    while (!common.empty() && path.rfind(common + "/", 0) != 0)
      common = common.substr(0, common.rfind('/'));
  }
  if (common.empty())
    throw Error(Code::kInvalidArgument, "mount overlay on " + target + ": options too long");
  std::string data;
  for (auto& o : opts) {
    std::string out = o;
    for (const char* key : {"lowerdir=", "upperdir=", "workdir="}) {
      if (o.rfind(key, 0) == 0) {
        out = key;
        std::string v = o.substr(strlen(key));
        size_t start = 0;
        bool first = true;
        while (start <= v.size()) {
          size_t end = v.find(':', start);
          if (end == std::string::npos) end = v.size();
          if (!first) out += ":";
          out += v.substr(start + common.size() + 1, end - start - common.size() - 1);
          first = false;
          start = end + 1;
        }
      }
    }
    if (o == "ro" || o == "rw") continue;
    if (!data.empty()) data += ",";
    data += out;
  }
  if (data.size() >= static_cast<size_t>(::getpagesize()))
    throw Error(Code::kInvalidArgument,
                "mount overlay on " + target + ": too many layers for one mount");
  std::string abs_target = target;
  if (abs_target.empty() || abs_target[0] != '/') {
    char cwd[4096];
    if (!::getcwd(cwd, sizeof cwd)) ThrowErrno("getcwd");
    abs_target = std::string(cwd) + "/" + target;
  }
  pid_t pid = ::fork();
  if (pid < 0) ThrowErrno("fork to mount overlay on " + target);
  if (pid == 0) {
    if (::chdir(common.c_str()) != 0) ::_exit(100 + errno % 100);
    if (::mount("overlay", abs_target.c_str(), "overlay", p.flags, data.c_str()) != 0)
      ::_exit(errno % 100);
    ::_exit(0);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) ThrowErrno("wait for overlay mount helper");
  }
  if (!WIFEXITED(status))
    throw Error(Code::kInternal, "mount overlay on " + target + ": helper died");
  int code = WEXITSTATUS(status);
  if (code >= 100) ThrowErrno("mount overlay on " + target + ": chdir " + common, code - 100);
  if (code != 0) ThrowErrno("mount overlay on " + target, code);
}

void MountOne(const Mount& m, const std::string& target) {
  Parsed p = ParseOptions(m.options);
  bool bind = (p.flags & MS_BIND) != 0 || m.type == "bind";
  if (bind) {
    unsigned long flags = MS_BIND | (p.flags & MS_REC);
    if (::mount(m.source.c_str(), target.c_str(), nullptr, flags, nullptr) != 0)
      ThrowErrno("bind mount " + m.source + " on " + target);
    unsigned long extra = p.flags & ~(MS_BIND | MS_REC | MS_REMOUNT);
    if (extra != 0) {
      if (::mount(nullptr, target.c_str(), nullptr, MS_BIND | MS_REMOUNT | extra, nullptr) != 0) {
        int err = errno;
        ::umount2(target.c_str(), MNT_DETACH);
        ThrowErrno("remount " + target + " with the options of " + m.source, err);
      }
    }
  } else {
    if (m.type == "overlay" && p.data.size() >= static_cast<size_t>(::getpagesize())) {
      MountOverlayLong(m, target, p);
    } else if (::mount(m.source.c_str(), target.c_str(), m.type.c_str(), p.flags, p.data.c_str()) !=
               0) {
      ThrowErrno("mount " + m.type + " " + m.source + " on " + target + " (" +
                 p.data.substr(0, 200) + ")");
    }
  }
  if (p.propagation != 0 && ::mount(nullptr, target.c_str(), nullptr, p.propagation, nullptr) != 0)
    ThrowErrno("set propagation of " + target);
}

}  // namespace

void MountAll(const std::vector<Mount>& mounts, const std::string& target) {
  size_t done = 0;
  try {
    for (const auto& m : mounts) {
      MountOne(m, target);
      ++done;
    }
  } catch (...) {
    for (size_t i = 0; i < done; ++i) ::umount2(target.c_str(), MNT_DETACH);
    throw;
  }
}

namespace {
// True when path is the root of a mount (statx STATX_ATTR_MOUNT_ROOT); unknown counts as true.
bool IsMountRoot(const std::string& path) {
  struct statx sx;
  if (::statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx) != 0)
    return errno != ENOENT;
  if (!(sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)) return true;
  return (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
}
}  // namespace

void UnmountAll(const std::string& target) {
  for (int i = 0; i < 64; ++i) {
    if (!IsMountRoot(target)) return;
    if (::umount2(target.c_str(), UMOUNT_NOFOLLOW) == 0) continue;
    if (errno == EBUSY) {
      if (::umount2(target.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0) continue;
    }
    if (errno == EINVAL || errno == ENOENT) return;  // not (or no longer) a mount point
    ThrowErrno("unmount " + target);
  }
}

bool OverlaySupported(const std::string& root) {
  std::string dir;
  try {
    fs::MkdirAll(root, 0700);
    dir = root + "/overlay-probe-XXXXXX";
    if (!::mkdtemp(dir.data())) return false;
    for (const char* d : {"lower1", "lower2", "upper", "work", "merged"})
      fs::MkdirAll(dir + "/" + d, 0700);
    std::string data = "lowerdir=" + dir + "/lower2:" + dir + "/lower1,upperdir=" + dir +
                       "/upper,workdir=" + dir + "/work";
    bool ok = ::mount("overlay", (dir + "/merged").c_str(), "overlay", 0, data.c_str()) == 0;
    if (ok) ::umount2((dir + "/merged").c_str(), MNT_DETACH);
    fs::RemoveAll(dir);
    return ok;
  } catch (const Error&) {
    if (!dir.empty()) {
      try {
        fs::RemoveAll(dir);
      } catch (const Error&) {
      }
    }
    return false;
  }
}

}  // namespace berth::snapshot
