#include "mount/rro.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/fs.h"
#include "mount/mountinfo.h"
#include "userns/userns.h"

#ifndef MS_NOSYMFOLLOW
#define MS_NOSYMFOLLOW 256
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

namespace berth::mount {

namespace {

int MountSetattrRdonly(int dfd, const char* path, unsigned flags) {
#ifdef SYS_mount_setattr
  struct mount_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.attr_set = MOUNT_ATTR_RDONLY;
  return static_cast<int>(::syscall(SYS_mount_setattr, dfd, path, flags | AT_RECURSIVE, &attr,
                                    sizeof attr));
#else
  errno = ENOSYS;
  return -1;
#endif
}

// Probe steps reported by the child; the index names the step in the reason.
enum ProbeStep {
  kStepOk = 0,
  kStepUnshare,
  kStepPrivate,
  kStepMountTop,
  kStepMkdirSub,
  kStepMountSub,
  kStepOpen,
  kStepSetattr,
  kStepStillWritable,
  kStepWrite,
};

const char* StepName(int step) {
  switch (step) {
    case kStepUnshare: return "unshare(CLONE_NEWNS)";
    case kStepPrivate: return "making / rprivate";
    case kStepMountTop: return "mounting the scratch tmpfs";
    case kStepMkdirSub: return "creating the submount directory";
    case kStepMountSub: return "mounting the tmpfs submount";
    case kStepOpen: return "opening the scratch mount";
    case kStepSetattr: return "mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY)";
    case kStepWrite: return "writing into the submount";
    default: return "probe";
  }
}

struct ProbeReport {
  int step;
  int err;
};

[[noreturn]] void ChildReport(int fd, int step, int err) {
  ProbeReport r{step, err};
  (void)!::write(fd, &r, sizeof r);
  ::_exit(0);
}

std::string Errno(int err) { return std::strerror(err); }

bool ValidContainerID(const std::string& id) {
  if (id.empty() || id.size() > 256 || id == "." || id == "..") return false;
  for (char c : id)
    if (c == '/' || c == '\0' || c == '\n') return false;
  return true;
}

std::string ContainerDir(const std::string& state_dir, const std::string& container_id) {
  if (!ValidContainerID(container_id))
    throw Error(Code::kInvalidArgument,
                "invalid container id \"" + container_id + "\" for read-only staging");
  return fs::Join(fs::Join(state_dir, "rro"), container_id);
}

nlohmann::json LoadRecord(const std::string& dir) {
  std::string path = fs::Join(dir, "staged.json");
  if (!fs::Exists(path)) return nlohmann::json{{"mounts", nlohmann::json::array()}};
  auto j = nlohmann::json::parse(fs::ReadFile(path, 1u << 20), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("mounts") || !j["mounts"].is_array())
    throw Error(Code::kInternal, path + ": malformed staging record");
  return j;
}

}  // namespace

const char* RoMethodName(RoMethod m) {
  switch (m) {
    case RoMethod::kAuto: return "auto";
    case RoMethod::kMountSetattr: return "mount_setattr";
    case RoMethod::kRemount: return "remount";
  }
  return "?";
}

KernelSupport ProbeKernelUncached(const std::string& scratch_parent) {
  std::string parent = scratch_parent;
  if (parent.empty()) {
    const char* t = std::getenv("TMPDIR");
    parent = (t && *t) ? t : "/tmp";
  }
  std::string tmpl = fs::Join(parent, "berth-rro-probe-XXXXXX");
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data()))
    return {false, "cannot create a scratch directory in " + parent + ": " + Errno(errno)};
  const std::string top = buf.data();
  const std::string sub = top + "/sub";
  const std::string file = sub + "/probe";

  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    int e = errno;
    ::rmdir(top.c_str());
    return {false, "pipe: " + Errno(e)};
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    ::close(p[0]);
    ::close(p[1]);
    ::rmdir(top.c_str());
    return {false, "fork: " + Errno(e)};
  }
  if (pid == 0) {
    ::close(p[0]);
    if (::unshare(CLONE_NEWNS) != 0) ChildReport(p[1], kStepUnshare, errno);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
      ChildReport(p[1], kStepPrivate, errno);
    if (::mount("tmpfs", top.c_str(), "tmpfs", 0, "size=64k") != 0)
      ChildReport(p[1], kStepMountTop, errno);
    if (::mkdir(sub.c_str(), 0755) != 0) ChildReport(p[1], kStepMkdirSub, errno);
    if (::mount("tmpfs", sub.c_str(), "tmpfs", 0, "size=64k") != 0)
      ChildReport(p[1], kStepMountSub, errno);
    int fd = ::open(top.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) ChildReport(p[1], kStepOpen, errno);
    if (MountSetattrRdonly(fd, "", AT_EMPTY_PATH) != 0) ChildReport(p[1], kStepSetattr, errno);
    int w = ::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (w >= 0) ChildReport(p[1], kStepStillWritable, 0);
    if (errno != EROFS) ChildReport(p[1], kStepWrite, errno);
    ChildReport(p[1], kStepOk, 0);
  }
  ::close(p[1]);
  ProbeReport r{-1, 0};
  ssize_t n;
  do n = ::read(p[0], &r, sizeof r);
  while (n < 0 && errno == EINTR);
  ::close(p[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ::rmdir(top.c_str());
  if (n != static_cast<ssize_t>(sizeof r)) return {false, "kernel probe process died without a report"};
  switch (r.step) {
    case kStepOk:
      return {true, "mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY) made a tmpfs submount read-only (EROFS)"};
    case kStepSetattr:
      if (r.err == ENOSYS)
        return {false, "mount_setattr(2) is not available: needs Linux kernel v5.12 or later"};
      return {false, std::string(StepName(r.step)) + " failed: " + Errno(r.err)};
    case kStepStillWritable:
      return {false, "mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY) left a submount writable"};
    default:
      return {false, std::string("cannot probe the kernel: ") + StepName(r.step) + ": " + Errno(r.err)};
  }
}

const KernelSupport& ProbeKernel() {
  static std::once_flag once;
  static KernelSupport result;
  std::call_once(once, [] { result = ProbeKernelUncached(); });
  return result;
}

KernelCacheKey CurrentKernelCacheKey() {
  KernelCacheKey k;
  struct utsname u;
  if (::uname(&u) == 0) k.release = u.release;
  try {
    std::string id = fs::ReadFile("/proc/sys/kernel/random/boot_id", 256);
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    k.boot_id = id;
  } catch (const Error&) {
  }
  return k;
}

KernelSupport ProbeKernelCached(const std::string& cache_file, bool* cached) {
  if (cached) *cached = false;
  if (cache_file.empty()) return ProbeKernel();
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  const KernelCacheKey key = CurrentKernelCacheKey();
  const bool keyed = !key.release.empty() && !key.boot_id.empty();
  if (keyed) {
    try {
      auto j = nlohmann::json::parse(fs::ReadFile(cache_file, 1u << 16), nullptr, false);
      if (j.is_object() && j.value("version", 0) == 1 && j.value("release", "") == key.release &&
          j.value("boot_id", "") == key.boot_id && j.contains("supported") &&
          j["supported"].is_boolean() && j.contains("reason") && j["reason"].is_string()) {
        if (cached) *cached = true;
        return {j["supported"].get<bool>(), j["reason"].get<std::string>()};
      }
    } catch (const std::exception&) {
      // Missing or unreadable: probe and rewrite.
    }
  }
  KernelSupport k = ProbeKernel();
  if (keyed && CanStage()) {
    try {
      if (auto slash = cache_file.rfind('/'); slash != std::string::npos && slash > 0)
        fs::MkdirAll(cache_file.substr(0, slash), 0700);
      nlohmann::json j{{"version", 1},
                       {"release", key.release},
                       {"boot_id", key.boot_id},
                       {"supported", k.supported},
                       {"reason", k.reason}};
      fs::WriteFileAtomic(cache_file, j.dump() + "\n", 0600);
    } catch (const std::exception&) {
      // A cache that cannot be written costs a probe at the next start, nothing else.
    }
  }
  return k;
}

RoMethod MakeRecursiveReadOnly(const std::string& path, RoMethod method) {
  char real[PATH_MAX];
  if (!::realpath(path.c_str(), real)) ThrowErrno("making " + path + " recursively read-only");
  const std::string target = real;
  auto mounts = ReadMountInfo();
  bool is_mount_point = std::any_of(mounts.begin(), mounts.end(),
                                    [&](const MountInfo& m) { return m.mount_point == target; });
  if (!is_mount_point)
    throw Error(Code::kInvalidArgument,
                "making " + path + " recursively read-only: not a mount point");
  if (method == RoMethod::kAuto || method == RoMethod::kMountSetattr) {
    if (MountSetattrRdonly(AT_FDCWD, target.c_str(), 0) == 0) return RoMethod::kMountSetattr;
    int e = errno;
    if (method == RoMethod::kMountSetattr || (e != ENOSYS && e != EINVAL))
      ThrowErrno("mount_setattr(" + target + ", AT_RECURSIVE, MOUNT_ATTR_RDONLY)", e);
  }
  for (const auto& m : mounts) {
    if (!PathAtOrUnder(m.mount_point, target)) continue;
    unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY;
    static const std::pair<const char*, unsigned long> kKeep[] = {
        {"nosuid", MS_NOSUID},       {"nodev", MS_NODEV},           {"noexec", MS_NOEXEC},
        {"noatime", MS_NOATIME},     {"nodiratime", MS_NODIRATIME}, {"relatime", MS_RELATIME},
        {"strictatime", MS_STRICTATIME}, {"nosymfollow", MS_NOSYMFOLLOW}};
    for (const auto& [name, flag] : kKeep)
      if (HasOption(m.options, name)) flags |= flag;
    if (::mount(nullptr, m.mount_point.c_str(), nullptr, flags, nullptr) != 0)
      ThrowErrno("remounting " + m.mount_point + " read-only (below " + target + ")");
  }
  return RoMethod::kRemount;
}

namespace {

// The next staging target of a container (recorded in staged.json before anything is mounted),
// created as a directory or a file like `source`. The staging directories are 0711: the mapped
// root of a user-namespaced pod reaches the staged path through them.
std::string NewStageTarget(const std::string& state_dir, const std::string& container_id,
                           const std::string& source, const char* what) {
  if (source.empty() || source[0] != '/')
    throw Error(Code::kInvalidArgument, std::string("staging ") + what + " mount: source \"" +
                                            source + "\" is not absolute");
  struct stat st;
  if (::stat(source.c_str(), &st) != 0)
    ThrowErrno(std::string("staging ") + what + " mount of " + source);
  const std::string dir = ContainerDir(state_dir, container_id);
  fs::MkdirAll(dir, 0711);
  ::chmod(fs::Join(state_dir, "rro").c_str(), 0711);
  ::chmod(dir.c_str(), 0711);
  auto rec = LoadRecord(dir);
  rec["container_id"] = container_id;
  size_t n = 0;
  for (const auto& m : rec["mounts"])
    if (m.contains("index") && m["index"].is_number_unsigned())
      n = std::max<size_t>(n, m["index"].get<size_t>() + 1);
  const std::string target = fs::Join(dir, std::to_string(n));
  rec["mounts"].push_back({{"index", n}, {"source", source}, {"target", target}});
  fs::WriteFileAtomic(fs::Join(dir, "staged.json"), rec.dump(2) + "\n", 0600);

  if (S_ISDIR(st.st_mode)) {
    if (::mkdir(target.c_str(), 0755) != 0 && errno != EEXIST) ThrowErrno("mkdir " + target);
  } else {
    int fd = ::open(target.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) ThrowErrno("creating " + target);
    ::close(fd);
  }
  return target;
}

}  // namespace

std::string StageReadOnly(const std::string& state_dir, const std::string& container_id,
                          const std::string& source, RoMethod method) {
  const std::string target = NewStageTarget(state_dir, container_id, source, "read-only");
  try {
    if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
      ThrowErrno("bind-mounting " + source + " at " + target);
    if (::mount(nullptr, target.c_str(), nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
      ThrowErrno("making " + target + " rprivate");
    MakeRecursiveReadOnly(target, method);
  } catch (...) {
    ::umount2(target.c_str(), MNT_DETACH);
    throw;
  }
  return target;
}

std::string StageIdmapped(const std::string& state_dir, const std::string& container_id,
                          const std::string& source, int userns_fd, bool read_only) {
  const std::string target = NewStageTarget(state_dir, container_id, source, "idmapped");
  try {
    auto tree = userns::IdmappedTree(source, userns_fd, /*recursive=*/true, read_only);
    userns::Attach(tree, target);
    if (::mount(nullptr, target.c_str(), nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
      ThrowErrno("making " + target + " rprivate");
  } catch (...) {
    ::umount2(target.c_str(), MNT_DETACH);
    throw;
  }
  return target;
}

std::vector<std::string> StagedPaths(const std::string& state_dir, const std::string& container_id) {
  const std::string dir = ContainerDir(state_dir, container_id);
  std::vector<std::string> out;
  if (!fs::IsDir(dir)) return out;
  const auto rec = LoadRecord(dir);
  for (const auto& m : rec["mounts"])
    if (m.contains("target") && m["target"].is_string()) out.push_back(m["target"].get<std::string>());
  return out;
}

void CleanupStaged(const std::string& state_dir, const std::string& container_id) {
  const std::string dir = ContainerDir(state_dir, container_id);
  if (!fs::IsDir(dir)) return;
  char real[PATH_MAX];
  std::string base = ::realpath(dir.c_str(), real) ? std::string(real) : dir;
  // Every mount below the container's staging directory, whether or not the record lists it.
  std::vector<std::string> points;
  for (const auto& m : ReadMountInfo())
    if (PathAtOrUnder(m.mount_point, base) && m.mount_point != base) points.push_back(m.mount_point);
  std::sort(points.begin(), points.end(), [](const std::string& a, const std::string& b) {
    return std::count(a.begin(), a.end(), '/') > std::count(b.begin(), b.end(), '/');
  });
  for (const auto& p : points) {
    if (::umount2(p.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
      ThrowErrno("unmounting staged read-only mount " + p);
  }
  fs::RemoveAll(dir);
}

std::vector<std::string> CleanupOrphans(const std::string& state_dir,
                                        const std::set<std::string>& live_ids) {
  std::vector<std::string> cleaned;
  const std::string root = fs::Join(state_dir, "rro");
  DIR* d = ::opendir(root.c_str());
  if (!d) {
    if (errno == ENOENT) return cleaned;
    ThrowErrno("reading " + root);
  }
  std::vector<std::string> ids;
  while (auto* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (!live_ids.count(name)) ids.push_back(name);
  }
  ::closedir(d);
  std::sort(ids.begin(), ids.end());
  for (const auto& id : ids) {
    CleanupStaged(state_dir, id);
    cleaned.push_back(id);
  }
  return cleaned;
}

bool CanStage() {
  if (::geteuid() != 0) return false;
  std::string status;
  try {
    status = fs::ReadFile("/proc/self/status", 1u << 20);
  } catch (const Error&) {
    return false;
  }
  auto pos = status.find("\nCapEff:");
  if (pos == std::string::npos) return false;
  unsigned long long caps = std::strtoull(status.c_str() + pos + 8, nullptr, 16);
  return (caps >> 21) & 1;  // CAP_SYS_ADMIN
}

}  // namespace berth::mount
