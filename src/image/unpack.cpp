// Layer extraction as a pipeline: the blob's bytes (from the registry or the content store) ->
// a decompressing thread (isa-l, zstd) -> a thread hashing the DiffID -> a thread reading the tar
// stream with libarchive and writing it below one directory file descriptor with
// openat(O_NOFOLLOW), so that no entry of a hostile layer can reach outside it. Directories are
// opened once and kept open while the layer is written (a bounded cache, forgotten when an entry
// replaces them).
#include "image/unpack.h"
#include "image/entry_path.h"

#include <dirent.h>
#include <fcntl.h>
#define OPENSSL_SUPPRESS_DEPRECATED  // SHA256_Init/Update/Final: see the hasher below
#include <openssl/sha.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <thread>
#include <unordered_set>

#include "common/error.h"
#include "content/store.h"
#include "image/codec.h"
#include "image/dynload.h"
#include "image/pipe.h"
#include "snapshot/snapshotter.h"

namespace berth::image {
namespace {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// SHA-256 through OpenSSL's low-level SHA256_* functions (deprecated in OpenSSL 3, kept for the
// 3.x series) rather than EVP: EVP goes through the provider machinery, which links all of
// libcrypto's algorithms into berthd (4 MB of a static libcrypto; ~0.35 MiB of relocated
// tables at every start) and initialises the default provider at the first digest (~1.5 MiB of
// code touched for good by the first pull or import). The digests are the same.
class Sha256 {
 public:
  Sha256() { SHA256_Init(&ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const void* p, size_t n) { SHA256_Update(&ctx_, p, n); }
  std::string Final() {
    unsigned char md[SHA256_DIGEST_LENGTH];
    unsigned int len = SHA256_DIGEST_LENGTH;
    SHA256_Final(md, &ctx_);
    static const char* hex = "0123456789abcdef";
    std::string s = "sha256:";
    for (unsigned i = 0; i < len; ++i) {
      s.push_back(hex[md[i] >> 4]);
      s.push_back(hex[md[i] & 15]);
    }
    return s;
  }

 private:
  SHA256_CTX ctx_;
};

struct ArchiveReader {
  archive* a = Archive().read_new();
  ~ArchiveReader() { Archive().read_free(a); }
};

std::string JoinPath(const std::vector<std::string>& comps, size_t n) {
  std::string s;
  for (size_t i = 0; i < n && i < comps.size(); ++i) {
    if (i) s += "/";
    s += comps[i];
  }
  return s;
}

constexpr const char* kWhiteoutPrefix = ".wh.";
constexpr const char* kOpaqueMarker = ".wh..wh..opq";

// Removes name below dirfd and everything under it without following symlinks.
void RemoveAt(int dirfd, const std::string& name, const std::string& shown) {
  if (::unlinkat(dirfd, name.c_str(), 0) == 0 || errno == ENOENT) return;
  if (errno != EISDIR && errno != EPERM) ThrowErrno("remove " + shown);
  Fd d(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!d.ok()) ThrowErrno("open " + shown);
  int dupfd = ::dup(d.get());
  if (dupfd < 0) ThrowErrno("dup");
  DIR* dir = ::fdopendir(dupfd);
  if (!dir) {
    ::close(dupfd);
    ThrowErrno("read directory " + shown);
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(dir)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(dir);
  for (auto& n : names) RemoveAt(d.get(), n, shown + "/" + n);
  if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
    ThrowErrno("remove " + shown);
}

using DirRef = std::shared_ptr<Fd>;

class Extractor {
 public:
  Extractor(std::string blob, std::string dest, bool overlay)
      : blob_(std::move(blob)), dest_(std::move(dest)), overlay_(overlay) {
    root_ = std::make_shared<Fd>(::open(dest_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root_->ok()) ThrowErrno("open layer destination " + dest_);
    fresh_ = IsEmptyDir(root_->get());
  }

  void Entry(archive* a, archive_entry* e) {
    const char* raw = Archive().entry_pathname(e);
    name_ = raw ? raw : "";
    if (name_.empty()) Reject("empty name");
    if (name_.size() > 4096) Reject("name longer than 4096 bytes");
    std::vector<std::string> comps;
    if (!CleanEntryPath(name_, comps)) Reject("path escapes the layer root");
    if (comps.empty()) return;  // the root itself: its metadata belongs to the snapshot
    for (auto& c : comps)
      if (c.size() > 255) Reject("path component longer than 255 bytes");

    const std::string& base = comps.back();
    if (base.rfind(kWhiteoutPrefix, 0) == 0) {
      Whiteout(comps);
      return;
    }

    DirRef parent = OpenParent(comps, comps.size() - 1);
    std::string path = JoinPath(comps, comps.size());
    mode_t type = Archive().entry_filetype(e);
    const char* hardlink = Archive().entry_hardlink(e);

    // In a destination that started empty, only what this layer made can be in the way.
    struct stat existing;
    bool exists = (!fresh_ || written_.count(path)) &&
                  ::fstatat(parent->get(), base.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0;
    if (exists && !(S_ISDIR(existing.st_mode) && type == AE_IFDIR && !hardlink)) {
      Forget(path);
      RemoveAt(parent->get(), base, dest_ + "/" + path);
      exists = false;
    }
    for (size_t i = 1; i <= comps.size(); ++i) written_.insert(JoinPath(comps, i));

    if (hardlink) {
      Hardlink(parent->get(), base, hardlink);
      return;
    }
    switch (type) {
      case AE_IFDIR:
        if (!exists && ::mkdirat(parent->get(), base.c_str(), 0700) != 0) Fail("mkdir", errno);
        {
          auto d = std::make_shared<Fd>(::openat(parent->get(), base.c_str(),
                                                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
          if (!d->ok()) Fail("open directory", errno);
          MetaFd(d->get(), e);
          Remember(path, std::move(d));
        }
        dirs_.push_back({comps, Archive().entry_mtime(e), Archive().entry_mtime_nsec(e),
                         Archive().entry_atime(e), Archive().entry_atime_nsec(e)});
        return;
      case AE_IFREG: {
        Fd f(::openat(parent->get(), base.c_str(),
                      O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!f.ok()) Fail("create", errno);
        WriteData(a, e, f.get());
        MetaFd(f.get(), e);
        SetTimes(parent->get(), base, e);
        return;
      }
      case AE_IFLNK: {
        const char* target = Archive().entry_symlink(e);
        if (!target || !*target) Reject("symlink without a target");
        if (strlen(target) > 4095) Reject("symlink target longer than 4095 bytes");
        if (::symlinkat(target, parent->get(), base.c_str()) != 0) Fail("symlink", errno);
        MetaAt(parent->get(), base, e, true);
        SetTimes(parent->get(), base, e);
        return;
      }
      case AE_IFCHR:
      case AE_IFBLK:
      case AE_IFIFO: {
        dev_t dev = type == AE_IFIFO
                        ? 0
                        : makedev(Archive().entry_rdevmajor(e), Archive().entry_rdevminor(e));
        if (::mknodat(parent->get(), base.c_str(), type | 0600, dev) != 0) Fail("mknod", errno);
        MetaAt(parent->get(), base, e, false);
        SetTimes(parent->get(), base, e);
        return;
      }
      default:
        Reject("unsupported entry type");
    }
  }

  void Finish() {
    // Directory times last: creating their children changed them. Deepest first.
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
      DirRef parent = OpenParent(it->comps, it->comps.size() - 1);
      struct timespec ts[2] = {{it->atime, it->atime_nsec}, {it->mtime, it->mtime_nsec}};
      ::utimensat(parent->get(), it->comps.back().c_str(), ts, AT_SYMLINK_NOFOLLOW);
    }
  }

 private:
  struct DirTime {
    std::vector<std::string> comps;
    time_t mtime;
    long mtime_nsec;
    time_t atime;
    long atime_nsec;
  };

  [[noreturn]] void Reject(const std::string& why) const {
    throw Error(Code::kInvalidArgument, blob_ + ": entry \"" + name_.substr(0, 512) + "\": " + why);
  }
  [[noreturn]] void Fail(const std::string& what, int err) const {
    Error e = ErrnoError(what, err);
    throw Error(e.code() == Code::kNotFound ? Code::kInvalidArgument : e.code(),
                blob_ + ": entry \"" + name_.substr(0, 512) + "\": " + e.what());
  }

  // The directory formed by the first n components, creating missing ones (0755); from the cache
  // of open directories when it is there. A component that is a symlink or not a directory
  // rejects the entry.
  DirRef OpenParent(const std::vector<std::string>& comps, size_t n) {
    std::string prefix;
    std::vector<size_t> ends;  // prefix.substr(0, ends[i]) = the first i+1 components
    for (size_t i = 0; i < n; ++i) {
      if (i) prefix += '/';
      prefix += comps[i];
      ends.push_back(prefix.size());
    }
    size_t have = n;
    DirRef cur;
    for (; have > 0; --have) {
      auto it = open_dirs_.find(prefix.substr(0, ends[have - 1]));
      if (it != open_dirs_.end()) {
        cur = it->second;
        break;
      }
    }
    if (!cur) cur = root_;
    for (size_t i = have; i < n; ++i) {
      const std::string& c = comps[i];
      int fd = ::openat(cur->get(), c.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0 && errno == ENOENT) {
        if (::mkdirat(cur->get(), c.c_str(), 0755) != 0 && errno != EEXIST)
          Fail("mkdir " + JoinPath(comps, i + 1), errno);
        written_.insert(JoinPath(comps, i + 1));  // made by this layer (a whiteout's parent too)
        fd = ::openat(cur->get(), c.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      }
      if (fd < 0) {
        if (errno == ELOOP || errno == ENOTDIR) {
          struct stat st;
          bool link = ::fstatat(cur->get(), c.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                      S_ISLNK(st.st_mode);
          Reject("parent " + JoinPath(comps, i + 1) +
                 (link ? " is a symlink" : " is not a directory"));
        }
        Fail("open " + JoinPath(comps, i + 1), errno);
      }
      cur = std::make_shared<Fd>(fd);
      Remember(prefix.substr(0, ends[i]), cur);
    }
    return cur;
  }

  void Remember(const std::string& path, DirRef d) {
    if (open_dirs_.size() >= kMaxOpenDirs) open_dirs_.clear();  // holders keep theirs open
    open_dirs_[path] = std::move(d);
  }
  // An entry at path is being removed or replaced: it and everything below leave the cache.
  void Forget(const std::string& path) {
    auto it = open_dirs_.lower_bound(path);
    while (it != open_dirs_.end() && it->first.compare(0, path.size(), path) == 0 &&
           (it->first.size() == path.size() || it->first[path.size()] == '/'))
      it = open_dirs_.erase(it);
    // lower_bound skips "a/b" for "a" when "a!x" sorts between: walk the "a/" range too.
    it = open_dirs_.lower_bound(path + "/");
    while (it != open_dirs_.end() && it->first.compare(0, path.size() + 1, path + "/") == 0)
      it = open_dirs_.erase(it);
  }

  void Hardlink(int parent, const std::string& base, const char* target_name) {
    std::string t = target_name;
    if (t.size() > 4096) Reject("hard link target longer than 4096 bytes");
    std::vector<std::string> tc;
    if (!CleanEntryPath(t, tc) || tc.empty())
      Reject("hard link target \"" + t.substr(0, 512) + "\" escapes the layer root");
    DirRef tparent = OpenParent(tc, tc.size() - 1);
    struct stat st;
    if (::fstatat(tparent->get(), tc.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      Reject("hard link target \"" + t.substr(0, 512) + "\" does not exist in the layer");
    if (S_ISDIR(st.st_mode)) Reject("hard link target \"" + t.substr(0, 512) + "\" is a directory");
    if (::linkat(tparent->get(), tc.back().c_str(), parent, base.c_str(), 0) != 0)
      Fail("link", errno);
  }

  void Whiteout(const std::vector<std::string>& comps) {
    const std::string& base = comps.back();
    DirRef parent = OpenParent(comps, comps.size() - 1);
    std::string dir = JoinPath(comps, comps.size() - 1);
    if (base == kOpaqueMarker) {
      if (overlay_) {
        if (::fsetxattr(parent->get(), "trusted.overlay.opaque", "y", 1, 0) != 0)
          Fail("set opaque xattr", errno);
      } else {
        // Everything in the directory that this layer did not put there goes.
        int dupfd = ::dup(parent->get());
        if (dupfd < 0) ThrowErrno("dup");
        DIR* d = ::fdopendir(dupfd);
        if (!d) {
          ::close(dupfd);
          Fail("read directory", errno);
        }
        std::vector<std::string> names;
        while (dirent* e = ::readdir(d)) {
          std::string n = e->d_name;
          if (n == "." || n == "..") continue;
          if (!written_.count(dir.empty() ? n : dir + "/" + n)) names.push_back(n);
        }
        ::closedir(d);
        for (auto& n : names) {
          Forget(dir.empty() ? n : dir + "/" + n);
          RemoveAt(parent->get(), n, dest_ + "/" + (dir.empty() ? n : dir + "/" + n));
        }
      }
      return;
    }
    std::string target = base.substr(strlen(kWhiteoutPrefix));
    if (target.empty() || target == "." || target == ".." || target.rfind(kWhiteoutPrefix, 0) == 0)
      Reject("invalid whiteout");
    std::string shown = dest_ + "/" + (dir.empty() ? target : dir + "/" + target);
    Forget(dir.empty() ? target : dir + "/" + target);
    RemoveAt(parent->get(), target, shown);
    if (overlay_) {
      if (::mknodat(parent->get(), target.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0)
        Fail("create whiteout", errno);
      written_.insert(dir.empty() ? target : dir + "/" + target);  // in the way of a later entry
    }
  }

  void WriteData(archive* a, archive_entry* e, int fd) {
    const void* buf;
    size_t n;
    la_int64_t off, end = 0;
    for (;;) {
      int r = Archive().read_data_block(a, &buf, &n, &off);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) {
        const char* es = Archive().error_string(a);
        Reject(std::string("reading data: ") + (es ? es : "error"));
      }
      const char* p = static_cast<const char*>(buf);
      while (n > 0) {
        ssize_t w = ::pwrite(fd, p, n, off);
        if (w < 0) {
          if (errno == EINTR) continue;
          Fail("write", errno);
        }
        p += w;
        n -= static_cast<size_t>(w);
        off += w;
      }
      end = std::max(end, off);
    }
    // A sparse file may end in a hole: its size is set explicitly then.
    if (Archive().entry_size_is_set(e) && end != Archive().entry_size(e) &&
        ::ftruncate(fd, Archive().entry_size(e)) != 0)
      Fail("truncate", errno);
  }

  static bool SkipXattr(const char* name) {
    // overlayfs interprets its own xattrs (opaque, redirect, metacopy): a layer must not set them.
    return strncmp(name, "trusted.overlay.", 16) == 0 || strncmp(name, "user.overlay.", 13) == 0;
  }

  // Without root (tests, rootless use) ownership and privileged xattrs are best-effort.
  static bool Tolerated(int err) {
    static const bool unprivileged = ::geteuid() != 0;
    return unprivileged && err == EPERM;
  }

  void MetaFd(int fd, archive_entry* e) {
    if (::fchown(fd, Archive().entry_uid(e), Archive().entry_gid(e)) != 0 && !Tolerated(errno))
      Fail("chown", errno);
    if (::fchmod(fd, Archive().entry_perm(e) & 07777) != 0) Fail("chmod", errno);
    const char* xn;
    const void* xv;
    size_t xs;
    Archive().entry_xattr_reset(e);
    while (Archive().entry_xattr_next(e, &xn, &xv, &xs) == ARCHIVE_OK) {
      if (SkipXattr(xn)) continue;
      if (::fsetxattr(fd, xn, xv, xs, 0) != 0 && !Tolerated(errno))
        Fail(std::string("set xattr ") + xn, errno);
    }
  }

  void MetaAt(int parent, const std::string& base, archive_entry* e, bool symlink) {
    if (::fchownat(parent, base.c_str(), Archive().entry_uid(e), Archive().entry_gid(e),
                   AT_SYMLINK_NOFOLLOW) != 0 &&
        !Tolerated(errno))
      Fail("chown", errno);
    if (!symlink && ::fchmodat(parent, base.c_str(), Archive().entry_perm(e) & 07777, 0) != 0)
      Fail("chmod", errno);
    std::string p = "/proc/self/fd/" + std::to_string(parent) + "/" + base;
    const char* xn;
    const void* xv;
    size_t xs;
    Archive().entry_xattr_reset(e);
    while (Archive().entry_xattr_next(e, &xn, &xv, &xs) == ARCHIVE_OK) {
      if (SkipXattr(xn)) continue;
      if (::lsetxattr(p.c_str(), xn, xv, xs, 0) != 0) {
        if ((symlink && errno == EPERM) || Tolerated(errno))
          continue;  // user.* xattrs are not allowed on symlinks
        Fail(std::string("set xattr ") + xn, errno);
      }
    }
  }

  void SetTimes(int parent, const std::string& base, archive_entry* e) {
    struct timespec ts[2] = {{Archive().entry_atime(e), Archive().entry_atime_nsec(e)},
                             {Archive().entry_mtime(e), Archive().entry_mtime_nsec(e)}};
    if (!Archive().entry_atime_is_set(e)) ts[0] = ts[1];
    ::utimensat(parent, base.c_str(), ts, AT_SYMLINK_NOFOLLOW);
  }

  static bool IsEmptyDir(int fd) {
    int dupfd = ::dup(fd);
    if (dupfd < 0) return false;
    DIR* d = ::fdopendir(dupfd);
    if (!d) {
      ::close(dupfd);
      return false;
    }
    bool empty = true;
    while (dirent* e = ::readdir(d)) {
      if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
        empty = false;
        break;
      }
    }
    ::closedir(d);
    return empty;
  }

  static constexpr size_t kMaxOpenDirs = 512;
  std::string blob_, dest_;
  bool overlay_, fresh_ = false;
  DirRef root_;
  std::map<std::string, DirRef> open_dirs_;
  std::string name_;
  std::unordered_set<std::string> written_;
  std::vector<DirTime> dirs_;
};

std::string RandomHex(size_t n) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back(hex[rng() & 15]);
  return s;
}

}  // namespace

// Leading '/' is dropped: absolute names are taken relative to the layer root, as tar and
// containerd do.
bool CleanEntryPath(const std::string& name, std::vector<std::string>& out) {
  out.clear();
  size_t i = 0;
  while (i <= name.size()) {
    size_t j = name.find('/', i);
    if (j == std::string::npos) j = name.size();
    std::string c = name.substr(i, j - i);
    i = j + 1;
    if (c.empty() || c == ".") continue;
    if (c == "..") {
      if (out.empty()) return false;
      out.pop_back();
      continue;
    }
    out.push_back(std::move(c));
  }
  return true;
}

namespace {

// A stage that stops because another one failed (its pipe was cancelled).
struct StageCancelled {};

// Bytes that do not decode or unpack (INVALID_ARGUMENT from a codec or the tar reader).
bool IsContentError(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    return err.code() == Code::kInvalidArgument;
  } catch (...) {
    return false;
  }
}

// The first error of a pipeline's stages; recording it stops every stage. Bytes that do not
// decode or unpack were either damaged on the way or published that way, and only the whole blob
// tells which: after such an error the source goes on to its end with its bytes dropped, and its
// own error (a digest mismatch) replaces the content error, since it names the cause.
class FirstError {
 public:
  FirstError(ChunkPipe& source, std::initializer_list<ChunkPipe*> pipes)
      : source_(source), pipes_(pipes) {}
  void Set(std::exception_ptr e) {
    bool content = IsContentError(e);
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (err_) return;
      err_ = std::move(e);
    }
    for (ChunkPipe* p : pipes_) p->Cancel();
    if (content)
      source_.Discard();
    else
      source_.Cancel();
  }
  void SetFromSource(std::exception_ptr e) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (err_ && !IsContentError(err_)) return;
      err_ = std::move(e);
    }
    for (ChunkPipe* p : pipes_) p->Cancel();
    source_.Cancel();
  }
  void Rethrow() {
    std::lock_guard<std::mutex> lk(mu_);
    if (err_) std::rethrow_exception(err_);
  }

 private:
  std::mutex mu_;
  std::exception_ptr err_;
  ChunkPipe& source_;
  std::vector<ChunkPipe*> pipes_;
};

// Decoded bytes straight into the chunks of the next pipe, counted.
class CountingSink : public Decompressor::Sink {
 public:
  CountingSink(ChunkPipe& out, int64_t& size) : w_(out), size_(size) {}
  char* Space(size_t* room) override { return w_.Space(room); }
  void Wrote(size_t n) override {
    if (n == 0) return;
    size_ += static_cast<int64_t>(n);
    if (!w_.Commit(n)) throw StageCancelled{};
  }
  void Flush() {
    if (!w_.Flush()) throw StageCancelled{};
  }

 private:
  ChunkWriter w_;
  int64_t& size_;
};

// Blob bytes -> uncompressed tar bytes.
void DecompressStage(ChunkPipe& in, ChunkPipe& out, const std::string& what, int64_t& size) {
  CountingSink sink(out, size);
  std::unique_ptr<Decompressor> d;
  std::string chunk, head;
  auto start = [&] {
    d = NewDecompressor(
        DetectCodec(reinterpret_cast<const unsigned char*>(head.data()), head.size(), what), what);
    d->Feed(head.data(), head.size(), sink);
    head.clear();
  };
  while (in.Pop(chunk)) {
    if (d) {
      d->Feed(chunk.data(), chunk.size(), sink);
      continue;
    }
    head += chunk;
    if (head.size() >= 6) start();
  }
  if (in.Stopped()) throw StageCancelled{};
  if (!d) start();
  d->Finish(sink);
  sink.Flush();
  out.Close();
}

// The DiffID: tar bytes hashed in a thread of their own on their way to the extractor (SHA-256
// costs about half as much as inflating; on the decompressing thread it made that thread the
// slowest stage). Buffers the extractor is done with go back upstream.
void HashStage(ChunkPipe& in, ChunkPipe& out, Sha256& hash) {
  std::string chunk;
  while (in.Pop(chunk)) {
    hash.Update(chunk.data(), chunk.size());
    std::string used = out.TakeSpare();
    if (!out.Push(std::move(chunk))) throw StageCancelled{};
    chunk = std::move(used);  // kept by in.Pop for the decompressor
  }
  if (in.Cancelled()) throw StageCancelled{};
  out.Close();
}

struct TarSource {
  ChunkPipe* pipe;
  std::string cur;
};

// No exception crosses libarchive: a cancelled pipe is a read error, told apart by the stage.
ssize_t TarRead(archive* a, void* ud, const void** out) {
  auto* s = static_cast<TarSource*>(ud);
  if (!s->pipe->Pop(s->cur)) {
    if (s->pipe->Cancelled()) {
      Archive().set_error(a, ECANCELED, "cancelled");
      return -1;
    }
    s->cur.clear();
  }
  *out = s->cur.data();
  return static_cast<ssize_t>(s->cur.size());
}

// The tar stream -> files below dest.
void ExtractStage(ChunkPipe& in, const std::string& what, const std::string& dest, bool overlay) {
  TarSource src{&in, {}};
  ArchiveReader tar;
  Archive().read_support_format_tar(tar.a);
  if (Archive().read_open(tar.a, &src, nullptr, TarRead, nullptr) != ARCHIVE_OK) {
    const char* es = Archive().error_string(tar.a);
    throw Error(Code::kInvalidArgument, what + ": " + (es ? es : "not a tar archive"));
  }
  Extractor ex(what, dest, overlay);
  try {
    for (;;) {
      archive_entry* e;
      int r = Archive().read_next_header(tar.a, &e);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) {
        const char* es = Archive().error_string(tar.a);
        throw Error(Code::kInvalidArgument, what + ": " + (es ? es : "invalid tar archive"));
      }
      ex.Entry(tar.a, e);
    }
    ex.Finish();
  } catch (const Error&) {
    if (in.Cancelled()) throw StageCancelled{};
    throw;
  }
  // The DiffID covers the whole stream, padding after the tar trailer included.
  while (in.Pop(src.cur)) {
  }
  if (in.Cancelled()) throw StageCancelled{};
}

}  // namespace

ApplyResult ApplyLayerStream(const std::function<void(ChunkPipe&)>& produce,
                             const std::string& what, const std::string& dest_dir, bool overlay) {
  ArchiveUse use;
  ChunkPipe compressed, decoded(4 << 20), tar;
  FirstError first(compressed, {&decoded, &tar});
  Sha256 hash;
  int64_t size = 0;
  auto stage = [&](auto&& fn) {
    return [&, fn] {
      try {
        fn();
      } catch (const StageCancelled&) {
      } catch (...) {
        first.Set(std::current_exception());
      }
    };
  };
  std::thread dec(stage([&] { DecompressStage(compressed, decoded, what, size); }));
  std::thread sha(stage([&] { HashStage(decoded, tar, hash); }));
  std::thread ext(stage([&] { ExtractStage(tar, what, dest_dir, overlay); }));
  try {
    produce(compressed);
    compressed.Close();
  } catch (...) {
    first.SetFromSource(std::current_exception());
  }
  dec.join();
  sha.join();
  ext.join();
  first.Rethrow();
  if (compressed.Cancelled())  // a producer that stopped without saying why
    throw Error(Code::kAborted, what + ": cancelled");
  return ApplyResult{hash.Final(), size};
}

void ProduceFromFile(const std::string& path, ChunkPipe& out) {
  Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!f.ok()) ThrowErrno("open layer " + path);
  for (;;) {
    std::string buf = out.Buffer(1 << 20);
    ssize_t n = ::read(f.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) ThrowErrno("read layer " + path);
    if (n == 0) return;
    buf.resize(static_cast<size_t>(n));
    if (!out.Push(std::move(buf))) return;
  }
}

ApplyResult ApplyLayer(const std::string& blob_path, const std::string& dest_dir, bool overlay) {
  return ApplyLayerStream([&](ChunkPipe& p) { ProduceFromFile(blob_path, p); },
                          "layer " + blob_path, dest_dir, overlay);
}

void SyncFs(const std::string& dir, const std::string& what) {
  Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!d.ok()) ThrowErrno(what + ": open " + dir);
  if (::syncfs(d.get()) != 0) ThrowErrno(what + ": syncfs " + dir);
}

std::string ChainID(const std::vector<std::string>& diff_ids) {
  if (diff_ids.empty()) return "";
  std::string chain = diff_ids[0];
  for (size_t i = 1; i < diff_ids.size(); ++i)
    chain = content::Sha256Digest(chain + " " + diff_ids[i]);
  return chain;
}

std::string Unpack(content::Store& store, snapshot::Snapshotter& sn,
                   const std::vector<std::string>& layer_digests,
                   const std::vector<std::string>& diff_ids, bool sync_fs) {
  if (layer_digests.size() != diff_ids.size())
    throw Error(Code::kInvalidArgument, "unpack: " + std::to_string(layer_digests.size()) +
                                            " layers but " + std::to_string(diff_ids.size()) +
                                            " diff ids");
  if (layer_digests.empty()) throw Error(Code::kInvalidArgument, "unpack: image has no layers");
  bool overlay = sn.Name() == "overlayfs";
  std::optional<ArchiveUse> use;  // one load of libarchive for every layer to extract
  std::string parent;
  std::vector<std::string> chain_ids;
  for (size_t i = 0; i < layer_digests.size(); ++i) {
    content::CheckDigest(diff_ids[i]);
    chain_ids.push_back(diff_ids[i]);
    std::string chain = ChainID(chain_ids);
    if (auto info = sn.Stat(chain); info && info->kind == snapshot::Kind::kCommitted) {
      parent = chain;
      continue;
    }
    if (!use) use.emplace();
    std::string blob = store.Path(layer_digests[i]);
    std::string key = "extract-" + RandomHex(16) + "-" + chain;
    sn.Prepare(key, parent);
    try {
      ApplyResult r = ApplyLayer(blob, sn.ApplyDir(key), overlay);
      if (r.diff_id != diff_ids[i])
        throw Error(Code::kInvalidArgument, "layer " + layer_digests[i] +
                                                ": diff id mismatch: image config says " +
                                                diff_ids[i] + ", content is " + r.diff_id);
      if (sync_fs) SyncFs(sn.ApplyDir(key), "layer " + layer_digests[i]);
      try {
        sn.Commit(chain, key);
      } catch (const Error& e) {
        if (e.code() != Code::kAlreadyExists) throw;
        sn.Remove(key);  // unpacked concurrently by someone else
      }
    } catch (...) {
      try {
        if (sn.Stat(key)) sn.Remove(key);
      } catch (...) {
      }
      throw;
    }
    parent = chain;
  }
  return parent;
}

}  // namespace berth::image
