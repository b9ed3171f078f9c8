#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/fs.h"
#include "snapshot/internal.h"

namespace berth::snapshot::internal {
namespace {

using InodeKey = std::pair<dev_t, ino_t>;

void CopyXattrs(const std::string& src, const std::string& dst) {
  ssize_t n = ::llistxattr(src.c_str(), nullptr, 0);
  if (n < 0) {
    if (errno == ENOTSUP) return;
    ThrowErrno("list xattrs of " + src);
  }
  if (n == 0) return;
  std::vector<char> names(static_cast<size_t>(n));
  n = ::llistxattr(src.c_str(), names.data(), names.size());
  if (n < 0) ThrowErrno("list xattrs of " + src);
  for (ssize_t off = 0; off < n;) {
    std::string name(names.data() + off);
    off += static_cast<ssize_t>(name.size()) + 1;
    ssize_t vn = ::lgetxattr(src.c_str(), name.c_str(), nullptr, 0);
    if (vn < 0) {
      if (errno == ENODATA) continue;
      ThrowErrno("get xattr " + name + " of " + src);
    }
    std::vector<char> value(static_cast<size_t>(vn) + 1);
    vn = ::lgetxattr(src.c_str(), name.c_str(), value.data(), value.size());
    if (vn < 0) ThrowErrno("get xattr " + name + " of " + src);
    if (::lsetxattr(dst.c_str(), name.c_str(), value.data(), static_cast<size_t>(vn), 0) != 0) {
      // Some namespaces (e.g. security.selinux on a host without it) cannot be set: skip those
      // rather than failing the whole copy, but never silently drop capabilities or user data.
      if ((errno == ENOTSUP || errno == EPERM) && name.rfind("security.selinux", 0) == 0) continue;
      ThrowErrno("set xattr " + name + " on " + dst);
    }
  }
}

void CopyFileData(const std::string& src, const std::string& dst, mode_t mode) {
  int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (in < 0) ThrowErrno("open " + src);
  int out = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode & 07777);
  if (out < 0) {
    int err = errno;
    ::close(in);
    ThrowErrno("create " + dst, err);
  }
  bool use_read = false;
  for (;;) {
    ssize_t n;
    if (!use_read) {
      n = ::copy_file_range(in, nullptr, out, nullptr, 1 << 30, 0);
      if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)) {
        use_read = true;
        continue;
      }
    } else {
      char buf[1 << 16];
      n = ::read(in, buf, sizeof buf);
      if (n > 0) {
        for (ssize_t w = 0; w < n;) {
          ssize_t r = ::write(out, buf + w, static_cast<size_t>(n - w));
          if (r < 0) {
            if (errno == EINTR) continue;
            int err = errno;
            ::close(in);
            ::close(out);
            ThrowErrno("write " + dst, err);
          }
          w += r;
        }
      }
    }
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(in);
      ::close(out);
      ThrowErrno("copy " + src + " to " + dst, err);
    }
  }
  ::close(in);
  if (::close(out) != 0) ThrowErrno("close " + dst);
}

void ApplyMeta(const std::string& src, const std::string& dst, const struct stat& st) {
  CopyXattrs(src, dst);
  if (::lchown(dst.c_str(), st.st_uid, st.st_gid) != 0 && !(errno == EPERM && ::geteuid() != 0))
    ThrowErrno("chown " + dst);
  if (!S_ISLNK(st.st_mode) && ::chmod(dst.c_str(), st.st_mode & 07777) != 0)
    ThrowErrno("chmod " + dst);
  // chown drops file capabilities: copy xattrs again after it so security.capability survives.
  if (!S_ISLNK(st.st_mode) && !S_ISDIR(st.st_mode)) CopyXattrs(src, dst);
  struct timespec ts[2] = {st.st_atim, st.st_mtim};
  if (::utimensat(AT_FDCWD, dst.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0)
    ThrowErrno("set times of " + dst);
}

void Copy(const std::string& src, const std::string& dst, std::map<InodeKey, std::string>& links,
          bool top) {
  struct stat st;
  if (::lstat(src.c_str(), &st) != 0) ThrowErrno("stat " + src);
  if (S_ISDIR(st.st_mode)) {
    if (::mkdir(dst.c_str(), 0700) != 0 && !(top && errno == EEXIST)) ThrowErrno("mkdir " + dst);
    for (auto& n : berth::fs::ListDir(src)) Copy(src + "/" + n, dst + "/" + n, links, false);
    ApplyMeta(src, dst, st);
    return;
  }
  if (st.st_nlink > 1) {
    auto it = links.find({st.st_dev, st.st_ino});
    if (it != links.end()) {
      if (::link(it->second.c_str(), dst.c_str()) != 0)
        ThrowErrno("link " + dst + " to " + it->second);
      return;
    }
    links[{st.st_dev, st.st_ino}] = dst;
  }
  if (S_ISREG(st.st_mode)) {
    CopyFileData(src, dst, 0600);
  } else if (S_ISLNK(st.st_mode)) {
    std::vector<char> buf(static_cast<size_t>(st.st_size > 0 ? st.st_size : 4096) + 1);
    ssize_t n = ::readlink(src.c_str(), buf.data(), buf.size());
    if (n < 0) ThrowErrno("readlink " + src);
    if (::symlink(std::string(buf.data(), static_cast<size_t>(n)).c_str(), dst.c_str()) != 0)
      ThrowErrno("symlink " + dst);
  } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode) ||
             S_ISSOCK(st.st_mode)) {
    if (::mknod(dst.c_str(), st.st_mode, st.st_rdev) != 0) ThrowErrno("mknod " + dst);
  } else {
    throw Error(Code::kInternal, "copy " + src + ": unsupported file type");
  }
  ApplyMeta(src, dst, st);
}

}  // namespace

void CopyTree(const std::string& src, const std::string& dst) {
  std::map<InodeKey, std::string> links;
  Copy(src, dst, links, true);
}

Usage DiskUsage(const std::string& dir) {
  Usage u;
  std::map<InodeKey, bool> seen;
  std::vector<std::string> stack{dir};
  while (!stack.empty()) {
    std::string p = std::move(stack.back());
    stack.pop_back();
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) {
      if (errno == ENOENT) continue;
      ThrowErrno("stat " + p);
    }
    if (!seen.emplace(InodeKey{st.st_dev, st.st_ino}, true).second) continue;
    u.inodes++;
    u.bytes += static_cast<int64_t>(st.st_blocks) * 512;
    if (S_ISDIR(st.st_mode)) {
      DIR* d = ::opendir(p.c_str());
      if (!d) ThrowErrno("open directory " + p);
      while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") stack.push_back(p + "/" + n);
      }
      ::closedir(d);
    }
  }
  return u;
}

}  // namespace berth::snapshot::internal
