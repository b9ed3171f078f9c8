#include "common/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "common/error.h"

namespace berth::fs {

std::string ReadFile(const std::string& path, size_t max_size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) ThrowErrno("failed to open " + path);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ThrowErrno("failed to read " + path, err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_size) {
      ::close(fd);
      throw Error(Code::kResourceExhausted,
                  "file " + path + " is larger than " + std::to_string(max_size) + " bytes");
    }
  }
  ::close(fd);
  return out;
}

void WriteFileAtomic(const std::string& path, std::string_view data, unsigned mode, bool durable) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string tmp = path + ".tmp-" + std::to_string(rng() % 1000000000ULL);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) ThrowErrno("failed to create " + tmp);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      ThrowErrno("failed to write " + tmp, err);
    }
    off += static_cast<size_t>(n);
  }
  if (::fchmod(fd, mode) != 0 || (durable && ::fsync(fd) != 0) || ::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    ThrowErrno("failed to write " + tmp, err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    ThrowErrno("failed to rename " + tmp + " to " + path, err);
  }
}

void MkdirAll(const std::string& path, unsigned mode) {
  if (path.empty()) return;
  std::string cur;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    cur = path.substr(0, j);
    i = j + 1;
    if (cur.empty()) continue;
    if (::mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) ThrowErrno("failed to create " + cur);
  }
  if (!IsDir(path)) throw Error(Code::kFailedPrecondition, path + " exists and is not a directory");
}

namespace {
void Note(InodeSpan* span, unsigned long long ino) {
  if (!span) return;
  if (span->count == 0 || ino < span->lo) span->lo = ino;
  if (span->count == 0 || ino > span->hi) span->hi = ino;
  ++span->count;
}

void RemoveAt(int dirfd, const char* name, const std::string& display, dev_t dev,
              InodeSpan* span) {
  struct stat st;
  if (::fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return;
    ThrowErrno("failed to stat " + display);
  }
  Note(span, st.st_ino);
  if (S_ISDIR(st.st_mode)) {
    if (st.st_dev != dev)
      throw Error(Code::kFailedPrecondition, "refusing to remove mount point " + display);
    int fd = ::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) ThrowErrno("failed to open " + display);
    DIR* d = ::fdopendir(fd);
    if (!d) {
      ::close(fd);
      ThrowErrno("failed to read " + display);
    }
    while (struct dirent* e = ::readdir(d)) {
      if (!std::strcmp(e->d_name, ".") || !std::strcmp(e->d_name, "..")) continue;
      try {
        RemoveAt(fd, e->d_name, display + "/" + e->d_name, dev, span);
      } catch (...) {
        ::closedir(d);
        throw;
      }
    }
    ::closedir(d);
    if (::unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
      ThrowErrno("failed to remove " + display);
  } else if (::unlinkat(dirfd, name, 0) != 0 && errno != ENOENT) {
    ThrowErrno("failed to remove " + display);
  }
}
}  // namespace

void RemoveAll(const std::string& path, InodeSpan* removed) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    ThrowErrno("failed to stat " + path);
  }
  RemoveAt(AT_FDCWD, path.c_str(), path, st.st_dev, removed);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

bool IsDir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<std::string> ListDir(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) ThrowErrno("open directory " + dir);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  return names;
}

std::string Join(std::string_view a, std::string_view b) {
  std::string out(a);
  while (!out.empty() && out.back() == '/') out.pop_back();
  while (!b.empty() && b.front() == '/') b.remove_prefix(1);
  out += '/';
  out += b;
  return out;
}

}  // namespace berth::fs
