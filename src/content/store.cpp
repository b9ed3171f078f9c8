#include "content/store.h"

#include <dirent.h>
#include <fcntl.h>
#define OPENSSL_SUPPRESS_DEPRECATED  // SHA256_Init/Update/Final: see the hasher below
#include <openssl/sha.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "common/fs.h"

namespace berth::content {
namespace {

constexpr std::string_view kPrefix = "sha256:";

std::string Hex(const unsigned char* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  s.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    s.push_back(d[p[i] >> 4]);
    s.push_back(d[p[i] & 15]);
  }
  return s;
}

// SHA-256 through OpenSSL's low-level SHA256_* functions (deprecated in OpenSSL 3, kept for the
// 3.x series) rather than EVP: EVP goes through the provider machinery, which links all of
// libcrypto's algorithms into berthd (4 MB of a static libcrypto; ~0.35 MiB of relocated
// tables at every start) and initialises the default provider at the first digest (~1.5 MiB of
// code touched for good by the first pull or import). The digests are the same.
class Hasher {
 public:
  Hasher() { SHA256_Init(&ctx_); }
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  void Update(const void* p, size_t n) { SHA256_Update(&ctx_, p, n); }
  void Reset() { SHA256_Init(&ctx_); }
  std::string Digest() {
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256_CTX copy = ctx_;
    SHA256_Final(md, &copy);
    return std::string(kPrefix) + Hex(md, sizeof md);
  }

 private:
  SHA256_CTX ctx_;
};

void WriteAll(int fd, const void* data, size_t n, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      ThrowErrno("write " + path);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

class FileWriter : public Store::Writer {
 public:
  FileWriter(std::string digest, std::string dir, std::string blob_path)
      : digest_(std::move(digest)), dir_(std::move(dir)), blob_path_(std::move(blob_path)) {
    // Another writer may finish and remove the ingest directory between our
    // mkdir and our lock; only a lock on the file that is still at dir/lock counts.
    for (int attempt = 0;; ++attempt) {
      if (attempt == 100) throw Error(Code::kUnavailable, "ingest of " + digest_ + " keeps changing; retry");
      fs::MkdirAll(dir_.substr(0, dir_.rfind('/')), 0700);
      if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) ThrowErrno("create " + dir_);
      lock_fd_ = ::open((dir_ + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
      if (lock_fd_ < 0) {
        if (errno == ENOENT) continue;  // directory removed under us
        ThrowErrno("open ingest lock for " + digest_);
      }
      if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        ::close(lock_fd_);
        lock_fd_ = -1;
        if (err == EWOULDBLOCK)
          throw Error(Code::kUnavailable, "ingest of " + digest_ + " is already in progress");
        ThrowErrno("lock ingest of " + digest_, err);
      }
      struct stat held, now;
      if (::fstat(lock_fd_, &held) == 0 && ::stat((dir_ + "/lock").c_str(), &now) == 0 &&
          held.st_ino == now.st_ino && held.st_dev == now.st_dev)
        break;
      ::close(lock_fd_);  // the file we locked was removed by a finishing writer
      lock_fd_ = -1;
    }
    data_path_ = dir_ + "/data";
    fd_ = ::open(data_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd_ < 0) {
      int err = errno;
      ::close(lock_fd_);
      ThrowErrno("open " + data_path_, err);
    }
    // Resume: re-hash what is already there.
    char buf[1 << 16];
    for (;;) {
      ssize_t r = ::read(fd_, buf, sizeof buf);
      if (r < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        Close();
        ThrowErrno("read " + data_path_, err);
      }
      if (r == 0) break;
      hash_.Update(buf, static_cast<size_t>(r));
      offset_ += r;
    }
  }
  // Not committed: a partial download stays for a resume; an empty one is removed.
  ~FileWriter() override {
    if (fd_ >= 0 && offset_ == 0) Discard();
    Close();
  }

  void Write(const void* data, size_t n) override {
    if (fd_ < 0) throw Error(Code::kFailedPrecondition, "ingest of " + digest_ + " is closed");
    try {
      WriteAll(fd_, data, n, data_path_);
    } catch (const Error& e) {
      // A full disk: the partial download is not kept for a resume, it would hold the space.
      if (e.code() == Code::kResourceExhausted && ::ftruncate(fd_, 0) == 0 &&
          ::lseek(fd_, 0, SEEK_SET) == 0) {
        hash_.Reset();
        offset_ = 0;
      }
      throw;
    }
    hash_.Update(data, n);
    offset_ += static_cast<int64_t>(n);
  }
  int64_t Offset() const override { return offset_; }
  std::string DataPath() const override { return data_path_; }
  void Truncate() override {
    if (fd_ < 0) throw Error(Code::kFailedPrecondition, "ingest of " + digest_ + " is closed");
    if (::ftruncate(fd_, 0) != 0 || ::lseek(fd_, 0, SEEK_SET) < 0)
      ThrowErrno("truncate " + data_path_);
    hash_.Reset();
    offset_ = 0;
  }
  void Commit(const std::string& expected_digest, int64_t expected_size) override {
    if (fd_ < 0) throw Error(Code::kFailedPrecondition, "ingest of " + digest_ + " is closed");
    std::string want = expected_digest.empty() ? digest_ : expected_digest;
    CheckDigest(want);
    std::string got = hash_.Digest();
    if (expected_size >= 0 && expected_size != offset_) {
      Discard();
      throw Error(Code::kInternal, "size mismatch for " + want + ": expected " +
                                       std::to_string(expected_size) + " bytes, got " +
                                       std::to_string(offset_));
    }
    if (got != want) {
      Discard();
      throw Error(Code::kInternal, "digest mismatch for " + want + ": got " + got);
    }
    if (::fsync(fd_) != 0) ThrowErrno("fsync " + data_path_);
    ::fchmod(fd_, 0444);
    std::string target = blob_path_;
    if (want != digest_) {
      // Written under one name, committed under another: place it by its real digest.
      target = blob_path_.substr(0, blob_path_.rfind('/') + 1) + want.substr(kPrefix.size());
    }
    struct stat st;
    if (::stat(target.c_str(), &st) == 0) {
      Discard();  // already present: same content
      return;
    }
    if (::rename(data_path_.c_str(), target.c_str()) != 0)
      ThrowErrno("commit " + want + " to " + target);
    Discard();
  }

 private:
  void Discard() {
    ::unlink(data_path_.c_str());
    ::unlink((dir_ + "/lock").c_str());
    ::rmdir(dir_.c_str());
    Close();
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    if (lock_fd_ >= 0) ::close(lock_fd_);
    fd_ = lock_fd_ = -1;
  }

  std::string digest_, dir_, blob_path_, data_path_;
  int fd_ = -1, lock_fd_ = -1;
  int64_t offset_ = 0;
  Hasher hash_;
};

}  // namespace

bool ValidDigest(std::string_view digest) {
  if (digest.size() != kPrefix.size() + 64 || digest.substr(0, kPrefix.size()) != kPrefix)
    return false;
  return std::all_of(digest.begin() + kPrefix.size(), digest.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

void CheckDigest(std::string_view digest) {
  if (!ValidDigest(digest)) {
    std::string shown(digest.substr(0, 100));
    throw Error(Code::kInvalidArgument,
                "invalid digest \"" + shown + "\": want sha256:<64 lowercase hex>");
  }
}

std::string Sha256Digest(std::string_view data) {
  Hasher h;
  h.Update(data.data(), data.size());
  return h.Digest();
}

Store::Store(std::string root) : root_(std::move(root)) {
  fs::MkdirAll(root_ + "/blobs/sha256");
  fs::MkdirAll(root_ + "/ingest", 0700);
}

namespace {
std::string BlobPath(const std::string& root, const std::string& digest) {
  CheckDigest(digest);
  return root + "/blobs/sha256/" + digest.substr(kPrefix.size());
}
}  // namespace

bool Store::Has(const std::string& digest) const {
  struct stat st;
  return ::stat(BlobPath(root_, digest).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string Store::Path(const std::string& digest) const {
  std::string p = BlobPath(root_, digest);
  struct stat st;
  if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    throw Error(Code::kNotFound, "content " + digest + ": not found");
  return p;
}

int64_t Store::Size(const std::string& digest) const {
  struct stat st;
  if (::stat(BlobPath(root_, digest).c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    throw Error(Code::kNotFound, "content " + digest + ": not found");
  return st.st_size;
}

std::string Store::Read(const std::string& digest, size_t max_size) const {
  std::string p = Path(digest);
  struct stat st;
  if (::stat(p.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) > max_size)
    throw Error(Code::kResourceExhausted, "content " + digest + ": " + std::to_string(st.st_size) +
                                              " bytes exceeds the limit of " +
                                              std::to_string(max_size));
  return fs::ReadFile(p, max_size);
}

std::unique_ptr<Store::Writer> Store::OpenWriter(const std::string& digest) {
  std::string blob = BlobPath(root_, digest);
  return std::make_unique<FileWriter>(digest, root_ + "/ingest/" + digest.substr(kPrefix.size()),
                                      blob);
}

std::string Store::Write(std::string_view data, const std::string& expected_digest) {
  std::string actual = Sha256Digest(data);
  if (!expected_digest.empty()) {
    CheckDigest(expected_digest);
    if (expected_digest != actual)
      throw Error(Code::kInternal, "digest mismatch for " + expected_digest + ": got " + actual);
  }
  if (Has(actual)) return actual;
  size_t off = 0;
  return Ingest(
      [&](char* buf, size_t n) {
        size_t k = std::min(n, data.size() - off);
        memcpy(buf, data.data() + off, k);
        off += k;
        return k;
      },
      actual);
}

std::string Store::Ingest(const std::function<size_t(char*, size_t)>& read,
                          const std::string& expected_digest) {
  if (!expected_digest.empty()) CheckDigest(expected_digest);
  std::string tmp = root_ + "/ingest/.tmp-XXXXXX";
  int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) ThrowErrno("create temporary file in " + root_ + "/ingest");
  std::string actual;
  try {
    Hasher h;
    std::vector<char> buf(1 << 17);
    for (;;) {
      size_t n = read(buf.data(), buf.size());
      if (n == 0) break;
      if (n > buf.size())
        throw Error(Code::kInternal, "content ingest: reader returned too many bytes");
      h.Update(buf.data(), n);
      WriteAll(fd, buf.data(), n, tmp);
    }
    actual = h.Digest();
    if (!expected_digest.empty() && actual != expected_digest)
      throw Error(Code::kInternal, "digest mismatch for " + expected_digest + ": got " + actual);
    if (::fsync(fd) != 0) ThrowErrno("fsync " + tmp);
    ::fchmod(fd, 0444);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (Has(actual)) {
    ::unlink(tmp.c_str());
    return actual;
  }
  if (::rename(tmp.c_str(), BlobPath(root_, actual).c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    ThrowErrno("commit " + actual, err);
  }
  return actual;
}

void Store::Delete(const std::string& digest) {
  std::string p = BlobPath(root_, digest);
  if (::unlink(p.c_str()) != 0) {
    if (errno == ENOENT) throw Error(Code::kNotFound, "content " + digest + ": not found");
    ThrowErrno("delete content " + digest);
  }
}

std::vector<std::string> Store::List() const {
  std::vector<std::string> out;
  std::string dir = root_ + "/blobs/sha256";
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return out;
    ThrowErrno("list " + dir);
  }
  while (dirent* e = ::readdir(d)) {
    std::string dg = std::string(kPrefix) + e->d_name;
    if (ValidDigest(dg)) out.push_back(dg);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace berth::content
