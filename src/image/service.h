// The image service: pull, list, inspect, remove and import images. The CRI ImageService and
// berthctl call this facade; it owns the content store, the snapshotter and the image metadata.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace berth::content {
class Store;
}
namespace berth::snapshot {
class Snapshotter;
}

namespace berth::image {

// Credentials of one pull request (CRI AuthConfig). `auth` is base64("user:pass").
struct AuthConfig {
  std::string username, password, auth, server_address, identity_token, registry_token;
};

struct Image {
  std::string id;                         // config digest "sha256:..."
  std::vector<std::string> repo_tags;     // "docker.io/library/busybox:latest"
  std::vector<std::string> repo_digests;  // "docker.io/library/busybox@sha256:<manifest>"
  int64_t size = 0;                       // sum of compressed layer sizes (+config)
  std::string config_json;                // the OCI image config document
  std::string user;                       // config.User
  bool pinned = false;
  std::string chain_id;  // top snapshot, parent for container rootfs
  std::string manifest_digest;
};

// An in-flight pull, layer by layer (ImageService::Progress).
struct LayerProgress {
  std::string digest;
  int64_t size = 0, received = 0;  // compressed bytes
  std::string state;               // "waiting", "pulling", "done" (fetched and unpacked), "exists"
};
struct PullProgress {
  std::string ref;  // normalised
  std::vector<LayerProgress> layers;
  int64_t elapsed_ms = 0;
};

struct FsUsage {
  std::string mountpoint;
  int64_t used_bytes = 0, inodes_used = 0;
  int64_t timestamp_ns = 0;
};

class ImageService {
 public:
  struct Options {
    std::string root;                       // images plugin root dir
    std::string state;                      // state dir for probe caches (probes/); empty: none
    std::string snapshotter = "overlayfs";  // "overlayfs" (falls back to native) or "native"
    std::string hosts_config_path;          // containerd `config_path` (hosts.toml directories)
    int max_concurrent_downloads = 3;
    std::map<std::string, std::string>
        pinned_images;  // e.g. {"sandbox": "registry.k8s.io/pause:3.9"}
    std::string platform_os = "linux", platform_arch;  // arch default: the host's (amd64...)
    std::string platform_variant;                      // default: the host's (arm: v7/v8)
    std::chrono::seconds progress_timeout{300};
    // containerd's image_pull_with_sync_fs: one syncfs of each unpacked layer before its commit
    // (no per-file fsync either way).
    bool pull_with_sync_fs = false;
    // How long libarchive stays loaded after the last pull or import that used it, so that
    // several in a row load it once (image/dynload.h). BERTH_LIBRARY_IDLE_MS overrides it.
    std::chrono::milliseconds library_idle{30000};
  };

  explicit ImageService(Options opts);  // opens content store, snapshotter, SQLite store
  ~ImageService();
  ImageService(const ImageService&) = delete;
  ImageService& operator=(const ImageService&) = delete;

  Image Pull(const std::string& ref, const AuthConfig& auth);  // returns the image
  // The progress of a pull of `ref` in flight; nullopt when there is none (or it has not yet
  // read its manifest).
  std::optional<PullProgress> Progress(const std::string& ref);
  std::vector<Image> List(const std::string& filter_ref = "");
  std::optional<Image> Status(const std::string& ref_or_id);
  void Remove(const std::string& ref_or_id);  // throws Error(kNotFound) when absent
  FsUsage FsInfo();
  std::vector<Image> Import(const std::string& archive_path);
  snapshot::Snapshotter& snapshotter();  // used later for containers' rootfs
  content::Store& content();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace berth::image
