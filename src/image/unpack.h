// Layer extraction, chain ids, image unpacking into snapshots, and image archive import.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace berth::content {
class Store;
}
namespace berth::snapshot {
class Snapshotter;
}

namespace berth::image {

struct ApplyResult {
  std::string diff_id;  // "sha256:<hex>" of the uncompressed tar stream
  int64_t size = 0;     // bytes of the uncompressed tar stream
};
// Extracts a layer blob (gzip, zstd or uncompressed tar, detected from content) into dest_dir with
// OCI whiteouts translated for overlayfs when `overlay`, else applied by deleting; hostile-input
// safe: an entry that would escape dest_dir fails the layer with Error(kInvalidArgument) naming it.
ApplyResult ApplyLayer(const std::string& blob_path, const std::string& dest_dir, bool overlay);
std::string ChainID(const std::vector<std::string>& diff_ids);  // OCI chain id of the whole list
// Unpacks every layer of an image into committed snapshots named by chain id, skipping ones that
// exist; returns the top chain id. Verifies each diff_id.
std::string Unpack(content::Store&, snapshot::Snapshotter&,
                   const std::vector<std::string>& layer_digests,
                   const std::vector<std::string>& diff_ids);
// Loads an OCI image layout tarball or a `docker save` archive into the content store; returns the
// images found: {name (may be empty), manifest digest, manifest media type}.
struct ImportedImage {
  std::string name, manifest_digest, media_type;
};
std::vector<ImportedImage> ImportArchive(const std::string& archive_path, content::Store&);

}  // namespace berth::image
