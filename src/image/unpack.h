// Layer extraction, chain ids, image unpacking into snapshots, and image archive import.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace berth::content {
class Store;
}
namespace berth::snapshot {
class Snapshotter;
}

namespace berth::image {

class ChunkPipe;

struct ApplyResult {
  std::string diff_id;  // "sha256:<hex>" of the uncompressed tar stream
  int64_t size = 0;     // bytes of the uncompressed tar stream
};
// Extracts a layer blob (gzip, zstd or uncompressed tar, detected from content) into dest_dir with
// OCI whiteouts translated for overlayfs when `overlay`, else applied by deleting; hostile-input
// safe: an entry that would escape dest_dir fails the layer with Error(kInvalidArgument) naming it.
ApplyResult ApplyLayer(const std::string& blob_path, const std::string& dest_dir, bool overlay);
// The same as a pipeline of four threads: `produce` (on the calling thread) pushes the blob's
// bytes as they arrive and returns at their end (an exception fails the layer; a Push that
// returns false means a later stage failed: stop); a thread decompresses; a thread hashes the
// DiffID; a thread extracts. `what` ("layer sha256:...") starts every error message. The first
// error of any stage is thrown once all have stopped.
ApplyResult ApplyLayerStream(const std::function<void(ChunkPipe&)>& produce,
                             const std::string& what, const std::string& dest_dir, bool overlay);
// Pushes a file's bytes into a pipe (a producer for ApplyLayerStream).
void ProduceFromFile(const std::string& path, ChunkPipe& out);
std::string ChainID(const std::vector<std::string>& diff_ids);  // OCI chain id of the whole list
// Unpacks every layer of an image into committed snapshots named by chain id, skipping ones that
// exist; returns the top chain id. Verifies each diff_id.
// With sync_fs, one syncfs(2) of each layer's file system before its commit.
std::string Unpack(content::Store&, snapshot::Snapshotter&,
                   const std::vector<std::string>& layer_digests,
                   const std::vector<std::string>& diff_ids, bool sync_fs = false);
// syncfs(2) of the file system holding dir; `what` names the layer in errors.
void SyncFs(const std::string& dir, const std::string& what);
// Loads an OCI image layout tarball or a `docker save` archive into the content store; returns the
// images found: {name (may be empty), manifest digest, manifest media type}.
struct ImportedImage {
  std::string name, manifest_digest, media_type;
};
std::vector<ImportedImage> ImportArchive(const std::string& archive_path, content::Store&);

}  // namespace berth::image
