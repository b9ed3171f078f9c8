// Validation of CRI requests: every field the implementation relies on is checked here, before
// anything is done, with errors that name the field (Error(kInvalidArgument,
// "image.image is required")). Pure functions; no daemon state.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "image/service.h"

namespace runtime::v1 {
class AuthConfig;
class ImageFsInfoRequest;
class ImageStatusRequest;
class ListImagesRequest;
class PullImageRequest;
class RemoveImageRequest;
class StatusRequest;
class UpdateRuntimeConfigRequest;
class VersionRequest;
}  // namespace runtime::v1
namespace berth::images::v1 {
class ImportRequest;
}

namespace berth::cri {

inline constexpr size_t kMaxImageRefLength = 4096;
inline constexpr size_t kMaxPathLength = 4096;

// An image reference or id given in `field`: required, at most kMaxImageRefLength bytes, no
// whitespace or control characters. Returns it unchanged.
std::string CheckImageRefOrID(const std::string& value, const char* field);

// PullImage: image.image is a valid reference (normalisable by image::ParseReference). Returns
// the reference as given.
std::string ValidatePullImage(const runtime::v1::PullImageRequest& req);
// ImageStatus / RemoveImage: image.image is a reference or an image id (full or short).
std::string ValidateImageStatus(const runtime::v1::ImageStatusRequest& req);
std::string ValidateRemoveImage(const runtime::v1::RemoveImageRequest& req);
// ListImages: the filter reference ("" when no filter).
std::string ValidateListImages(const runtime::v1::ListImagesRequest& req);
// UpdateRuntimeConfig: runtime_config.network_config.pod_cidr is "" or comma-separated CIDRs
// ("10.88.0.0/16,fd00::/64"). Returns them.
std::vector<std::string> ValidateUpdateRuntimeConfig(const runtime::v1::UpdateRuntimeConfigRequest& req);
// Import: path is absolute, without NUL bytes, at most kMaxPathLength bytes.
std::string ValidateImport(const berth::images::v1::ImportRequest& req);

// The pull credentials of a CRI AuthConfig (fields copied; `auth` must be valid base64 of
// "user:password" when set).
image::AuthConfig ToAuthConfig(const runtime::v1::AuthConfig& auth);

// True for "a.b.c.d/n" and IPv6 "x::y/n" with a prefix length in range.
bool IsValidCIDR(const std::string& cidr);

}  // namespace berth::cri
