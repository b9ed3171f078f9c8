// Root file systems of user-namespaced containers on chown'ed copies (snapshotter.h): the image's
// layers merged into one tree whose owners are shifted by the pod's mapping, made once per image
// snapshot and mapping and kept beside the snapshot.
#include <dirent.h>
#include <endian.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/fs.h"
#include "snapshot/lowerdir.h"
#include "snapshot/shift_xattrs.h"
#include "snapshot/snapshotter.h"
#include "userns/userns.h"

namespace berth::snapshot {

namespace {

using InodeKey = std::pair<dev_t, ino_t>;

struct Shift {
  const userns::Mapping& m;
  // Ids outside the mapping stay as they are: the pod sees them as the overflow id (nobody).
  uint32_t Uid(uint32_t id) const {
    int64_t h = userns::ToHost(m.uids, id);
    return h < 0 ? id : static_cast<uint32_t>(h);
  }
  uint32_t Gid(uint32_t id) const {
    int64_t h = userns::ToHost(m.gids, id);
    return h < 0 ? id : static_cast<uint32_t>(h);
  }
};

bool OverlayXattr(const std::string& name) {
  return name.rfind("trusted.overlay.", 0) == 0 || name.rfind("user.overlay.", 0) == 0;
}

std::vector<std::string> XattrNames(const std::string& path) {
  std::vector<std::string> out;
  ssize_t n = ::llistxattr(path.c_str(), nullptr, 0);
  if (n < 0 && errno == ENOTSUP) return out;
  if (n < 0) ThrowErrno("list xattrs of " + path);
  std::vector<char> buf(static_cast<size_t>(n) + 1);
  n = ::llistxattr(path.c_str(), buf.data(), buf.size());
  if (n < 0) ThrowErrno("list xattrs of " + path);
  for (ssize_t off = 0; off < n;) {
    out.emplace_back(buf.data() + off);
    off += static_cast<ssize_t>(out.back().size()) + 1;
  }
  return out;
}

std::optional<std::string> Xattr(const std::string& path, const std::string& name) {
  ssize_t n = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
  if (n < 0) {
    if (errno == ENODATA || errno == ENOTSUP) return std::nullopt;
    ThrowErrno("get xattr " + name + " of " + path);
  }
  std::string v(static_cast<size_t>(n), '\0');
  n = ::lgetxattr(path.c_str(), name.c_str(), v.data(), v.size());
  if (n < 0) ThrowErrno("get xattr " + name + " of " + path);
  v.resize(static_cast<size_t>(n));
  return v;
}

uint32_t Le32(const std::string& v, size_t off) {
  uint32_t x;
  std::memcpy(&x, v.data() + off, 4);
  return le32toh(x);
}
void PutLe32(std::string& v, size_t off, uint32_t x) {
  x = htole32(x);
  std::memcpy(v.data() + off, &x, 4);
}

void CopyXattrs(const std::string& src, const std::string& dst, bool symlink, const Shift& s) {
  for (const auto& name : XattrNames(src)) {
    if (OverlayXattr(name)) continue;
    auto v = Xattr(src, name);
    if (!v) continue;
    if (name == "security.capability") *v = ShiftCapsXattr(*v, s.m);
    if (name == "system.posix_acl_access" || name == "system.posix_acl_default")
      *v = ShiftAclXattr(*v, s.m);
    if (::lsetxattr(dst.c_str(), name.c_str(), v->data(), v->size(), 0) != 0) {
      if ((errno == ENOTSUP || errno == EPERM) &&
          (symlink || name.rfind("security.selinux", 0) == 0))
        continue;
      ThrowErrno("set xattr " + name + " on " + dst);
    }
  }
}

// Owner shifted, then the mode (chown clears set-uid and set-gid bits), then the xattrs (chown
// drops file capabilities), then the times.
void SetMeta(const std::string& src, const std::string& dst, const struct stat& st,
             const Shift& s) {
  if (::lchown(dst.c_str(), s.Uid(st.st_uid), s.Gid(st.st_gid)) != 0) ThrowErrno("chown " + dst);
  bool link = S_ISLNK(st.st_mode);
  if (!link && ::chmod(dst.c_str(), st.st_mode & 07777) != 0) ThrowErrno("chmod " + dst);
  CopyXattrs(src, dst, link, s);
  struct timespec ts[2] = {st.st_atim, st.st_mtim};
  if (::utimensat(AT_FDCWD, dst.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0)
    ThrowErrno("set times of " + dst);
}

void CopyData(const std::string& src, const std::string& dst) {
  userns::Fd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (in.get() < 0) ThrowErrno("open " + src);
  userns::Fd out(::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (out.get() < 0) ThrowErrno("create " + dst);
  for (;;) {
    ssize_t n = ::copy_file_range(in.get(), nullptr, out.get(), nullptr, 1 << 30, 0);
    if (n == 0) return;
    if (n > 0) continue;
    if (errno == EINTR) continue;
    if (errno != EXDEV && errno != ENOSYS && errno != EOPNOTSUPP && errno != EINVAL)
      ThrowErrno("copy " + src + " to " + dst);
    break;
  }
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(in.get(), buf, sizeof buf);
    if (n == 0) return;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) ThrowErrno("read " + src);
    for (ssize_t w = 0; w < n;) {
      ssize_t r = ::write(out.get(), buf + w, static_cast<size_t>(n - w));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) ThrowErrno("write " + dst);
      w += r;
    }
  }
}

bool IsWhiteout(const struct stat& st) {
  return S_ISCHR(st.st_mode) && major(st.st_rdev) == 0 && minor(st.st_rdev) == 0;
}

bool IsOpaque(const std::string& dir) {
  for (const char* n : {"trusted.overlay.opaque", "user.overlay.opaque"}) {
    auto v = Xattr(dir, n);
    if (v && *v == "y") return true;
  }
  return false;
}

// One layer applied over what the layers below it left in dst, as overlay merges them: a
// whiteout removes the path, an opaque directory hides what was below it, anything else replaces.
class LayerApplier {
 public:
  explicit LayerApplier(const Shift& s) : s_(s) {}

  void Dir(const std::string& src, const std::string& dst) {
    for (const auto& n : fs::ListDir(src)) Entry(src + "/" + n, dst + "/" + n);
  }

  void Entry(const std::string& src, const std::string& dst) {
    struct stat st, dt;
    if (::lstat(src.c_str(), &st) != 0) ThrowErrno("stat " + src);
    bool exists = ::lstat(dst.c_str(), &dt) == 0;
    if (IsWhiteout(st)) {
      if (exists) fs::RemoveAll(dst);
      return;
    }
    if (S_ISDIR(st.st_mode)) {
      if (exists && (!S_ISDIR(dt.st_mode) || IsOpaque(src))) {
        fs::RemoveAll(dst);
        exists = false;
      }
      if (!exists && ::mkdir(dst.c_str(), 0700) != 0) ThrowErrno("mkdir " + dst);
      Dir(src, dst);
      SetMeta(src, dst, st, s_);
      return;
    }
    if (exists) fs::RemoveAll(dst);
    if (st.st_nlink > 1) {
      auto [it, first] = links_.emplace(InodeKey{st.st_dev, st.st_ino}, dst);
      if (!first) {
        if (::link(it->second.c_str(), dst.c_str()) != 0)
          ThrowErrno("link " + dst + " to " + it->second);
        return;
      }
    }
    Make(src, dst, st);
    SetMeta(src, dst, st, s_);
  }

 private:
  void Make(const std::string& src, const std::string& dst, const struct stat& st) {
    if (S_ISREG(st.st_mode)) {
      CopyData(src, dst);
    } else if (S_ISLNK(st.st_mode)) {
      std::vector<char> buf(static_cast<size_t>(st.st_size > 0 ? st.st_size : 4096) + 1);
      ssize_t n = ::readlink(src.c_str(), buf.data(), buf.size());
      if (n < 0) ThrowErrno("readlink " + src);
      if (::symlink(std::string(buf.data(), static_cast<size_t>(n)).c_str(), dst.c_str()) != 0)
        ThrowErrno("symlink " + dst);
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode) ||
               S_ISSOCK(st.st_mode)) {
      if (::mknod(dst.c_str(), st.st_mode & ~07777, st.st_rdev) != 0) ThrowErrno("mknod " + dst);
    } else {
      throw Error(Code::kInternal, "copy " + src + ": unsupported file type");
    }
  }

  const Shift& s_;
  std::map<InodeKey, std::string> links_;  // within one layer: hard links do not cross layers
};

// In place, for a tree no one else uses (the native snapshotter's own copy for the container).
void ShiftInPlace(const std::string& path, const Shift& s) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) ThrowErrno("stat " + path);
  if (S_ISDIR(st.st_mode))
    for (const auto& n : fs::ListDir(path)) ShiftInPlace(path + "/" + n, s);
  auto caps = S_ISREG(st.st_mode) ? Xattr(path, "security.capability") : std::nullopt;
  if (::lchown(path.c_str(), s.Uid(st.st_uid), s.Gid(st.st_gid)) != 0) ThrowErrno("chown " + path);
  if (!S_ISLNK(st.st_mode) && ::chmod(path.c_str(), st.st_mode & 07777) != 0)
    ThrowErrno("chmod " + path);
  if (caps) {
    auto v = ShiftCapsXattr(*caps, s.m);
    if (::lsetxattr(path.c_str(), "security.capability", v.data(), v.size(), 0) != 0)
      ThrowErrno("set xattr security.capability on " + path);
  }
}

std::string Dirname(const std::string& p) {
  auto slash = p.find_last_of('/');
  return slash == std::string::npos ? "." : p.substr(0, slash);
}

std::string Lowerdir(const Mount& m) {
  for (const auto& o : m.options)
    if (o.rfind("lowerdir=", 0) == 0) return o.substr(9);
  throw Error(Code::kInternal, "overlay mount without lowerdir");
}

std::mutex& CopyLock(const std::string& dir) {  // one copy at a time per cache entry
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<std::mutex>> locks;
  std::lock_guard<std::mutex> l(mu);
  auto& p = locks[dir];
  if (!p) p = std::make_unique<std::mutex>();
  return *p;
}

void Sync(const std::string& dir) {
  userns::Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0 || ::syncfs(fd.get()) != 0) ThrowErrno("sync " + dir);
}

}  // namespace

// security.capability as version 3 with the pod's root as its owner, so that file capabilities
// take effect inside the pod (a version 2 value only counts for the host's root).
std::string ShiftCapsXattr(std::string v, const userns::Mapping& m) {
  Shift s{m};
  constexpr uint32_t kRevMask = 0xFF000000, kV2 = 0x02000000, kV3 = 0x03000000;
  if (v.size() < 20) return v;
  uint32_t magic = Le32(v, 0);
  if ((magic & kRevMask) == kV2) {
    v.resize(24);
    PutLe32(v, 0, (magic & ~kRevMask) | kV3);
    PutLe32(v, 20, s.Uid(0));
  } else if ((magic & kRevMask) == kV3 && v.size() >= 24) {
    PutLe32(v, 20, s.Uid(Le32(v, 20)));
  }
  return v;
}

// POSIX ACLs name users and groups: their ids are shifted like the owners.
std::string ShiftAclXattr(std::string v, const userns::Mapping& m) {
  Shift s{m};
  constexpr uint16_t kUser = 0x02, kGroup = 0x08;
  for (size_t off = 4; off + 8 <= v.size(); off += 8) {
    uint16_t tag;
    std::memcpy(&tag, v.data() + off, 2);
    tag = le16toh(tag);
    if (tag == kUser) PutLe32(v, off + 4, s.Uid(Le32(v, off + 4)));
    if (tag == kGroup) PutLe32(v, off + 4, s.Gid(Le32(v, off + 4)));
  }
  return v;
}

std::string MappingKey(const userns::Mapping& m) {
  std::string k;
  for (const auto& [tag, maps] : {std::pair{'u', &m.uids}, std::pair{'g', &m.gids}})
    for (const auto& r : *maps)
      k += (k.empty() ? "" : "_") + std::string(1, tag) + std::to_string(r.container_id) + "-" +
           std::to_string(r.host_id) + "-" + std::to_string(r.length);
  return k;
}

std::string ShiftedCopyStage(const std::vector<Mount>& mounts, const std::string& tag) {
  if (mounts.size() != 1 || mounts[0].type != "overlay") return "";
  return Dirname(SplitLowerdir(Lowerdir(mounts[0])).front()) + "/userns-copies/.stage-" + tag;
}

ShiftedCopy EnsureShiftedCopy(const std::vector<std::string>& lowers, const userns::Mapping& m,
                              const std::string& cache_dir, const std::string& stage) {
  ShiftedCopy out;
  out.dir = cache_dir + "/" + MappingKey(m);
  std::lock_guard<std::mutex> l(CopyLock(out.dir));
  if (fs::Exists(out.dir)) return out;
  auto t0 = std::chrono::steady_clock::now();
  fs::MkdirAll(cache_dir, 0711);
  fs::RemoveAll(stage);  // what a crash left
  if (::mkdir(stage.c_str(), 0755) != 0) ThrowErrno("mkdir " + stage);
  Shift s{m};
  for (auto it = lowers.rbegin(); it != lowers.rend(); ++it) {  // bottom layer first
    LayerApplier apply(s);
    apply.Dir(*it, stage);
    struct stat st;
    if (::lstat(it->c_str(), &st) != 0) ThrowErrno("stat " + *it);
    SetMeta(*it, stage, st, s);
  }
  Sync(stage);
  if (::rename(stage.c_str(), out.dir.c_str()) != 0)
    ThrowErrno("rename " + stage + " to " + out.dir);
  out.made = true;
  out.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

ShiftedCopy MountAllShifted(const std::vector<Mount>& mounts, const std::string& target,
                            const userns::Mapping& m, const std::string& tag) {
  if (mounts.size() != 1)
    throw Error(Code::kUnimplemented,
                "root file system on " + target + ": " + std::to_string(mounts.size()) + " mounts");
  Shift s{m};
  const auto& mt = mounts[0];
  if (mt.type != "overlay") {  // the native snapshotter's own copy (or a layerless image)
    ShiftInPlace(mt.source, s);
    MountAll(mounts, target);
    return {};
  }
  auto lowers = SplitLowerdir(Lowerdir(mt));
  auto copy = EnsureShiftedCopy(lowers, m, Dirname(lowers.front()) + "/userns-copies",
                                ShiftedCopyStage(mounts, tag));
  Mount o = mt;
  for (auto& opt : o.options) {
    if (opt.rfind("lowerdir=", 0) == 0) opt = "lowerdir=" + copy.dir;
    if (opt.rfind("upperdir=", 0) == 0 && ::chown(opt.substr(9).c_str(), s.Uid(0), s.Gid(0)) != 0)
      ThrowErrno("chown of the upper directory " + opt.substr(9) + " to the mapped root");
  }
  MountAll({o}, target);
  return copy;
}

}  // namespace berth::snapshot
