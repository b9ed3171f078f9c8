#include "cri/validate.h"

#include <arpa/inet.h>

#include <charconv>

#include "berth/images/v1/images.pb.h"
#include "common/error.h"
#include "image/reference.h"
#include "runtime/v1/api.pb.h"

namespace berth::cri {

namespace {

[[noreturn]] void Invalid(const std::string& msg) { throw Error(Code::kInvalidArgument, msg); }

std::string Quote(const std::string& s) {
  // Bounded, printable rendering of untrusted input for error messages.
  std::string out = "\"";
  size_t n = 0;
  for (unsigned char c : s) {
    if (++n > 256) {
      out += "...";
      break;
    }
    if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

bool DecodeBase64(const std::string& in, std::string* out) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  out->clear();
  int bits = 0, acc = 0;
  size_t i = 0;
  for (; i < in.size() && in[i] != '='; ++i) {
    int v = val(in[i]);
    if (v < 0) return false;
    // Only the bits not yet emitted are kept (fewer than 8), so acc never overflows.
    acc = ((acc << 6) | v) & 0x3fff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
      acc &= (1 << bits) - 1;
    }
  }
  for (; i < in.size(); ++i) {
    if (in[i] != '=') return false;
  }
  return true;
}

}  // namespace

std::string CheckImageRefOrID(const std::string& value, const char* field) {
  if (value.empty()) Invalid(std::string(field) + " is required");
  if (value.size() > kMaxImageRefLength) {
    Invalid(std::string(field) + " is too long (" + std::to_string(value.size()) + " bytes, at most " +
            std::to_string(kMaxImageRefLength) + ")");
  }
  for (unsigned char c : value) {
    if (c <= 0x20 || c == 0x7f) {
      Invalid(std::string(field) + " " + Quote(value) + " contains whitespace or control characters");
    }
  }
  return value;
}

std::string ValidatePullImage(const runtime::v1::PullImageRequest& req) {
  std::string ref = CheckImageRefOrID(req.image().image(), "image.image");
  try {
    image::ParseReference(ref);
  } catch (const Error& e) {
    Invalid("image.image: invalid image reference " + Quote(ref) + ": " + e.what());
  }
  if (req.has_auth() && !req.auth().auth().empty()) ToAuthConfig(req.auth());
  return ref;
}

std::string ValidateImageStatus(const runtime::v1::ImageStatusRequest& req) {
  return CheckImageRefOrID(req.image().image(), "image.image");
}

std::string ValidateRemoveImage(const runtime::v1::RemoveImageRequest& req) {
  return CheckImageRefOrID(req.image().image(), "image.image");
}

std::string ValidateListImages(const runtime::v1::ListImagesRequest& req) {
  if (!req.has_filter() || !req.filter().has_image() || req.filter().image().image().empty()) return "";
  return CheckImageRefOrID(req.filter().image().image(), "filter.image.image");
}

bool IsValidCIDR(const std::string& cidr) {
  auto slash = cidr.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 >= cidr.size()) return false;
  std::string addr = cidr.substr(0, slash);
  std::string prefix = cidr.substr(slash + 1);
  int bits = -1;
  auto [p, ec] = std::from_chars(prefix.data(), prefix.data() + prefix.size(), bits);
  if (ec != std::errc() || p != prefix.data() + prefix.size() || bits < 0) return false;
  unsigned char buf[16];
  if (inet_pton(AF_INET, addr.c_str(), buf) == 1) return bits <= 32;
  if (inet_pton(AF_INET6, addr.c_str(), buf) == 1) return bits <= 128;
  return false;
}

std::vector<std::string> ValidateUpdateRuntimeConfig(const runtime::v1::UpdateRuntimeConfigRequest& req) {
  std::vector<std::string> cidrs;
  const std::string& s = req.runtime_config().network_config().pod_cidr();
  if (s.empty()) return cidrs;
  if (s.size() > 1024) Invalid("runtime_config.network_config.pod_cidr is too long");
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    std::string part = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!IsValidCIDR(part)) {
      Invalid("runtime_config.network_config.pod_cidr: invalid CIDR " + Quote(part));
    }
    cidrs.push_back(part);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return cidrs;
}

std::string ValidateImport(const berth::images::v1::ImportRequest& req) {
  const std::string& path = req.path();
  if (path.empty()) Invalid("path is required");
  if (path.size() > kMaxPathLength) Invalid("path is too long (" + std::to_string(path.size()) + " bytes)");
  if (path.find('\0') != std::string::npos) Invalid("path " + Quote(path) + " contains a NUL byte");
  if (path[0] != '/') Invalid("path " + Quote(path) + " must be absolute");
  return path;
}

image::AuthConfig ToAuthConfig(const runtime::v1::AuthConfig& auth) {
  image::AuthConfig out;
  out.username = auth.username();
  out.password = auth.password();
  out.auth = auth.auth();
  out.server_address = auth.server_address();
  out.identity_token = auth.identity_token();
  out.registry_token = auth.registry_token();
  if (!out.auth.empty()) {
    std::string decoded;
    if (!DecodeBase64(out.auth, &decoded)) Invalid("auth.auth is not valid base64");
    if (decoded.find(':') == std::string::npos) Invalid("auth.auth must encode \"username:password\"");
  }
  return out;
}

}  // namespace berth::cri
