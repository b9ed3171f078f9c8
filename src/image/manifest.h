// OCI / Docker image manifests, indexes (manifest lists) and image configs: media types, defensive
// parsing with size limits, and platform selection for the node.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace berth::image {

namespace mediatype {
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";
inline constexpr std::string_view kDockerSchema1 = "application/vnd.docker.distribution.manifest.v1+prettyjws";
// Accept header for manifest requests, most preferred first.
const std::string& AcceptHeader();
bool IsIndex(std::string_view mt);
bool IsManifest(std::string_view mt);
bool IsConfig(std::string_view mt);
bool IsLayer(std::string_view mt);
}  // namespace mediatype

inline constexpr size_t kMaxManifestSize = 4u << 20;  // as containerd
inline constexpr size_t kMaxConfigSize = 16u << 20;
inline constexpr size_t kMaxLayers = 256;
inline constexpr size_t kMaxIndexEntries = 4096;

struct Platform {
  std::string os, architecture, variant, os_version;
};

struct Descriptor {
  std::string media_type, digest;
  int64_t size = 0;
  bool has_platform = false;
  Platform platform;
  std::vector<std::string> urls;
  std::map<std::string, std::string> annotations;
};

struct Index {
  std::string media_type;
  std::vector<Descriptor> manifests;
};

struct Manifest {
  std::string media_type;
  Descriptor config;
  std::vector<Descriptor> layers;
};

struct ImageConfig {
  std::string os, architecture, variant, user;
  std::vector<std::string> diff_ids;
};

// Kind of a manifest document: the explicit mediaType field, else the transport's content type,
// else inferred from its fields. Throws Error(kInvalidArgument) for unknown or unsupported types
// (schema 1 is refused with a clear message).
std::string DetectManifestType(std::string_view data, std::string_view content_type);
// Throw Error(kInvalidArgument, "invalid <kind> <what>: <why>") on malformed documents.
Index ParseIndex(std::string_view data, std::string_view media_type);
Manifest ParseManifest(std::string_view data, std::string_view media_type);
ImageConfig ParseConfig(std::string_view data);

// Normalised platform of this host ("linux", "amd64"/"arm64"/"arm"..., variant "v7"/"v8"/"").
Platform HostPlatform();
// Normalises names the way containerd's platforms package does (x86_64 -> amd64, aarch64 -> arm64,
// arm64 variant v8 -> "", armhf -> arm/v7...).
Platform NormalizePlatform(Platform p);
// Index of the best manifest for `want` (exact variant first, then older compatible variants
// for arm), or -1 when none matches.
int SelectPlatform(const Index& index, const Platform& want);
std::string PlatformString(const Platform& p);

}  // namespace berth::image
