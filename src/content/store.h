// Content-addressed blob store: <root>/blobs/sha256/<hex>, partial ingests in <root>/ingest/.
// Blobs are verified against their sha256 digest before they become visible (atomic rename).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace berth::content {

// True for "sha256:<64 lowercase hex>".
bool ValidDigest(std::string_view digest);
// Throws Error(kInvalidArgument) naming the digest when it is not valid.
void CheckDigest(std::string_view digest);
// "sha256:<hex>" of data.
std::string Sha256Digest(std::string_view data);

class Store {
 public:
  explicit Store(
      std::string root);  // <root>/blobs/sha256/<hex>, partial downloads in <root>/ingest/
  const std::string& root() const { return root_; }
  bool Has(const std::string& digest)
      const;  // "sha256:<64 hex>"; invalid digest -> Error(kInvalidArgument)
  std::string Path(const std::string& digest) const;  // throws Error(kNotFound)
  int64_t Size(const std::string& digest) const;
  std::string Read(const std::string& digest, size_t max_size = 16 << 20) const;
  class Writer {  // streaming ingest with sha256 verification; a partial ingest can be resumed
   public:
    virtual ~Writer() = default;  // not committed: keeps a non-empty partial file for resume
    // A write that finds no space (ResourceExhausted) empties the partial ingest, then throws
    // (an empty ingest is removed with its writer).
    virtual void Write(const void* data, size_t n) = 0;
    virtual int64_t Offset() const = 0;        // bytes already present (resume point)
    virtual std::string DataPath() const = 0;  // the partial file (its first Offset() bytes)
    // mismatch -> Error(kInternal, "digest mismatch for <digest>: got <actual>"), partial
    // discarded. expected_size < 0: size not checked. Committing a blob that already exists is
    // fine.
    virtual void Commit(const std::string& expected_digest, int64_t expected_size) = 0;
    virtual void Truncate() = 0;  // restart from 0
  };
  // One ingest per digest at a time (flock): a second writer for the same digest, in this or
  // another process, gets Error(kUnavailable) naming the digest.
  std::unique_ptr<Writer> OpenWriter(const std::string& digest);
  // Small blobs; returns the digest. A given expected_digest must match (else kInternal mismatch).
  std::string Write(std::string_view data, const std::string& expected_digest = "");
  // Streams a blob whose digest is learned from its content: `read` fills up to n bytes of the
  // buffer and returns how many (0 at the end; it may throw). Data goes to a temporary file under
  // <root>/ingest and is renamed into place; returns the digest. A given expected_digest must
  // match.
  std::string Ingest(const std::function<size_t(char* buf, size_t n)>& read,
                     const std::string& expected_digest = "");
  void Delete(const std::string& digest);  // missing blob -> Error(kNotFound)
  std::vector<std::string> List() const;   // digests of committed blobs

 private:
  std::string root_;
};

}  // namespace berth::content
