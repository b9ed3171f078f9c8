#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

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

namespace {

// The real probe: an overlay of two lower directories, an upper and a work directory under root.
// *mount_errno is the errno of a failed mount(2), 0 when it succeeded or when the probe failed
// before it (directories could not be made).
bool ProbeOverlay(const std::string& root, int* mount_errno) {
  *mount_errno = 0;
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
    else *mount_errno = errno;
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

// What the answer depends on: the running kernel (release, boot) and the file system under root.
struct OverlayCacheKey {
  std::string release, boot_id;
  uint64_t dev = 0;
  int64_t fs_type = 0;
  bool ok = false;  // every part was read
};

OverlayCacheKey CurrentOverlayCacheKey(const std::string& root) {
  OverlayCacheKey k;
  struct utsname u;
  if (::uname(&u) != 0) return k;
  k.release = u.release;
  try {
    k.boot_id = fs::ReadFile("/proc/sys/kernel/random/boot_id", 256);
  } catch (const Error&) {
    return k;
  }
  while (!k.boot_id.empty() && (k.boot_id.back() == '\n' || k.boot_id.back() == ' ')) k.boot_id.pop_back();
  struct stat st;
  struct statfs sfs;
  if (::stat(root.c_str(), &st) != 0 || ::statfs(root.c_str(), &sfs) != 0) return k;
  k.dev = static_cast<uint64_t>(st.st_dev);
  k.fs_type = static_cast<int64_t>(sfs.f_type);
  k.ok = !k.release.empty() && !k.boot_id.empty();
  return k;
}

}  // namespace

bool OverlaySupported(const std::string& root) {
  int err = 0;
  return ProbeOverlay(root, &err);
}

bool OverlaySupportedCached(const std::string& root, const std::string& cache_file, bool* cached) {
  if (cached) *cached = false;
  if (cache_file.empty()) return OverlaySupported(root);
  try {
    fs::MkdirAll(root, 0700);
  } catch (const Error&) {
    return false;
  }
  const OverlayCacheKey key = CurrentOverlayCacheKey(root);
  if (key.ok) {
    try {
      auto j = nlohmann::json::parse(fs::ReadFile(cache_file, 1u << 16), nullptr, false);
      if (j.is_object() && j.value("version", 0) == 1 && j.value("release", "") == key.release &&
          j.value("boot_id", "") == key.boot_id && j.value("dev", uint64_t{0}) == key.dev &&
          j.value("fs_type", int64_t{0}) == key.fs_type && j.contains("supported") &&
          j["supported"].is_boolean()) {
        if (cached) *cached = true;
        return j["supported"].get<bool>();
      }
    } catch (const std::exception&) {
      // Missing or unreadable: probe and rewrite.
    }
  }
  int err = 0;
  const bool ok = ProbeOverlay(root, &err);
  // Only answers that the kernel and the file system gave are kept: a mount that worked, or one
  // refused for want of overlayfs (ENODEV) or of an upper file system it supports (EINVAL).
  // Failures for other reasons (no privilege, a directory that could not be made) are not.
  const bool decisive = ok || err == ENODEV || err == EINVAL;
  if (key.ok && decisive) {
    try {
      if (auto slash = cache_file.rfind('/'); slash != std::string::npos && slash > 0)
        fs::MkdirAll(cache_file.substr(0, slash), 0700);
      nlohmann::json j{{"version", 1},        {"release", key.release}, {"boot_id", key.boot_id},
                       {"dev", key.dev},      {"fs_type", key.fs_type}, {"supported", ok},
                       {"errno", err}};
      fs::WriteFileAtomic(cache_file, j.dump() + "\n", 0600);
    } catch (const std::exception&) {
      // A cache that cannot be written costs a probe at the next start, nothing else.
    }
  }
  return ok;
}

}  // namespace berth::snapshot
