// Image references as the Docker/OCI ecosystem writes them, parsed and normalised:
// "busybox" -> docker.io/library/busybox:latest, "host:5000/team/app:v1", "repo@sha256:<hex>".
#pragma once

#include <string>
#include <string_view>

namespace berth::image {

struct Reference {
  std::string domain;  // "docker.io", "registry.example.com:5000", "localhost"
  std::string path;    // "library/busybox"
  std::string tag;     // "latest" (empty when only a digest was given)
  std::string digest;  // "sha256:<64 hex>" or empty

  // docker.io/library/busybox:latest[@sha256:...]
  std::string String() const;
  // Short form: busybox:latest, myhost:5000/app:v1, busybox@sha256:...
  std::string Familiar() const;
  // docker.io/library/busybox
  std::string Repository() const;
};

// Parses and normalises. A reference without tag and digest gets tag "latest".
// Throws Error(kInvalidArgument, "invalid image reference \"...\": <why>").
Reference ParseReference(std::string_view s);

// True for "sha256:<64 lowercase hex>" (and other registered algorithms with their lengths).
bool IsValidDigest(std::string_view digest);

}  // namespace berth::image
