#include "image/manifest.h"

#include <sys/utsname.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "image/reference.h"

namespace berth::image {

using nlohmann::json;

namespace mediatype {

const std::string& AcceptHeader() {
  static const std::string accept = std::string(kOciIndex) + ", " + std::string(kDockerManifestList) +
                                    ", " + std::string(kOciManifest) + ", " +
                                    std::string(kDockerManifest) + ", */*;q=0.5";
  return accept;
}
bool IsIndex(std::string_view mt) { return mt == kOciIndex || mt == kDockerManifestList; }
bool IsManifest(std::string_view mt) { return mt == kOciManifest || mt == kDockerManifest; }
bool IsConfig(std::string_view mt) { return mt == kOciConfig || mt == kDockerConfig; }
bool IsLayer(std::string_view mt) {
  static const char* const kLayers[] = {
      "application/vnd.oci.image.layer.v1.tar",
      "application/vnd.oci.image.layer.v1.tar+gzip",
      "application/vnd.oci.image.layer.v1.tar+zstd",
      "application/vnd.oci.image.layer.nondistributable.v1.tar",
      "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
      "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
      "application/vnd.docker.image.rootfs.diff.tar.gzip",
      "application/vnd.docker.image.rootfs.diff.tar",
      "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  };
  for (const char* l : kLayers)
    if (mt == l) return true;
  return false;
}

}  // namespace mediatype

namespace {

[[noreturn]] void Bad(const std::string& kind, const std::string& why) {
  throw Error(Code::kInvalidArgument, "invalid " + kind + ": " + why);
}

json ParseJson(std::string_view data, size_t limit, const std::string& kind) {
  if (data.size() > limit)
    Bad(kind, "document is " + std::to_string(data.size()) + " bytes, more than the limit of " +
                  std::to_string(limit));
  json j = json::parse(data.begin(), data.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) Bad(kind, "not valid JSON");
  if (!j.is_object()) Bad(kind, "not a JSON object");
  return j;
}

std::string GetString(const json& j, const char* key, const std::string& kind, bool required) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) Bad(kind, std::string("missing \"") + key + "\"");
    return "";
  }
  if (!it->is_string()) Bad(kind, std::string("\"") + key + "\" is not a string");
  return it->get<std::string>();
}

int SchemaVersion(const json& j, const std::string& kind) {
  auto it = j.find("schemaVersion");
  if (it == j.end()) return -1;
  if (!it->is_number_integer()) Bad(kind, "\"schemaVersion\" is not an integer");
  return it->get<int>();
}

Descriptor ParseDescriptor(const json& j, const std::string& kind) {
  if (!j.is_object()) Bad(kind, "descriptor is not an object");
  Descriptor d;
  d.media_type = GetString(j, "mediaType", kind, false);
  d.digest = GetString(j, "digest", kind, true);
  if (!IsValidDigest(d.digest)) Bad(kind, "descriptor digest \"" + d.digest.substr(0, 140) + "\" is not valid");
  if (d.digest.rfind("sha256:", 0) != 0)
    Bad(kind, "descriptor digest \"" + d.digest.substr(0, 140) + "\" uses an unsupported algorithm");
  auto size = j.find("size");
  if (size == j.end() || !size->is_number_integer()) Bad(kind, "descriptor " + d.digest + " has no integer \"size\"");
  d.size = size->get<int64_t>();
  if (d.size < 0) Bad(kind, "descriptor " + d.digest + " has a negative size");
  if (auto p = j.find("platform"); p != j.end() && !p->is_null()) {
    if (!p->is_object()) Bad(kind, "descriptor " + d.digest + " platform is not an object");
    d.has_platform = true;
    d.platform.os = GetString(*p, "os", kind, false);
    d.platform.architecture = GetString(*p, "architecture", kind, false);
    d.platform.variant = GetString(*p, "variant", kind, false);
    d.platform.os_version = GetString(*p, "os.version", kind, false);
  }
  if (auto u = j.find("urls"); u != j.end() && u->is_array()) {
    for (const auto& x : *u)
      if (x.is_string()) d.urls.push_back(x.get<std::string>());
  }
  if (auto a = j.find("annotations"); a != j.end() && a->is_object()) {
    for (auto it = a->begin(); it != a->end(); ++it)
      if (it->is_string()) d.annotations[it.key()] = it->get<std::string>();
  }
  return d;
}

}  // namespace

std::string DetectManifestType(std::string_view data, std::string_view content_type) {
  const std::string kind = "manifest";
  json j = ParseJson(data, kMaxManifestSize, kind);
  std::string mt = GetString(j, "mediaType", kind, false);
  if (mt.empty()) {
    std::string_view ct = content_type.substr(0, content_type.find(';'));
    while (!ct.empty() && ct.back() == ' ') ct.remove_suffix(1);
    if (mediatype::IsIndex(ct) || mediatype::IsManifest(ct)) mt = std::string(ct);
  }
  if (mt.empty()) {
    if (SchemaVersion(j, kind) == 1 || j.contains("fsLayers"))
      mt = std::string(mediatype::kDockerSchema1);
    else if (j.contains("manifests"))
      mt = std::string(mediatype::kOciIndex);
    else if (j.contains("config") && j.contains("layers"))
      mt = std::string(mediatype::kOciManifest);
  }
  if (mt == mediatype::kDockerSchema1 || mt == "application/vnd.docker.distribution.manifest.v1+json")
    Bad(kind, "Docker image manifest schema 1 is not supported (push the image again with a current tool)");
  if (!mediatype::IsIndex(mt) && !mediatype::IsManifest(mt))
    Bad(kind, "unsupported media type \"" + mt.substr(0, 200) + "\"");
  return mt;
}

Index ParseIndex(std::string_view data, std::string_view media_type) {
  const std::string kind = "image index";
  json j = ParseJson(data, kMaxManifestSize, kind);
  if (SchemaVersion(j, kind) != 2) Bad(kind, "\"schemaVersion\" must be 2");
  Index idx;
  idx.media_type = GetString(j, "mediaType", kind, false);
  if (idx.media_type.empty()) idx.media_type = std::string(media_type);
  if (!mediatype::IsIndex(idx.media_type)) Bad(kind, "media type \"" + idx.media_type.substr(0, 200) + "\" is not an index");
  auto m = j.find("manifests");
  if (m == j.end() || !m->is_array()) Bad(kind, "\"manifests\" is missing or not an array");
  if (m->size() > kMaxIndexEntries) Bad(kind, "too many manifests (" + std::to_string(m->size()) + ")");
  for (const auto& e : *m) idx.manifests.push_back(ParseDescriptor(e, kind));
  return idx;
}

Manifest ParseManifest(std::string_view data, std::string_view media_type) {
  const std::string kind = "image manifest";
  json j = ParseJson(data, kMaxManifestSize, kind);
  if (SchemaVersion(j, kind) != 2) Bad(kind, "\"schemaVersion\" must be 2");
  Manifest man;
  man.media_type = GetString(j, "mediaType", kind, false);
  if (man.media_type.empty()) man.media_type = std::string(media_type);
  if (!mediatype::IsManifest(man.media_type))
    Bad(kind, "media type \"" + man.media_type.substr(0, 200) + "\" is not an image manifest");
  auto c = j.find("config");
  if (c == j.end()) Bad(kind, "missing \"config\"");
  man.config = ParseDescriptor(*c, kind);
  if (man.config.media_type.empty()) man.config.media_type = std::string(mediatype::kOciConfig);
  if (!mediatype::IsConfig(man.config.media_type))
    Bad(kind, "config media type \"" + man.config.media_type.substr(0, 200) + "\" is not an image config");
  if (man.config.size > static_cast<int64_t>(kMaxConfigSize)) Bad(kind, "config is larger than 16 MiB");
  auto l = j.find("layers");
  if (l == j.end() || !l->is_array()) Bad(kind, "\"layers\" is missing or not an array");
  if (l->size() > kMaxLayers) Bad(kind, "too many layers (" + std::to_string(l->size()) + ")");
  for (const auto& e : *l) {
    Descriptor d = ParseDescriptor(e, kind);
    if (d.media_type.empty()) d.media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
    if (!mediatype::IsLayer(d.media_type))
      Bad(kind, "layer " + d.digest + " has unsupported media type \"" + d.media_type.substr(0, 200) + "\"");
    man.layers.push_back(std::move(d));
  }
  return man;
}

ImageConfig ParseConfig(std::string_view data) {
  const std::string kind = "image config";
  json j = ParseJson(data, kMaxConfigSize, kind);
  ImageConfig cfg;
  cfg.os = GetString(j, "os", kind, false);
  cfg.architecture = GetString(j, "architecture", kind, false);
  cfg.variant = GetString(j, "variant", kind, false);
  if (auto c = j.find("config"); c != j.end() && !c->is_null()) {
    if (!c->is_object()) Bad(kind, "\"config\" is not an object");
    cfg.user = GetString(*c, "User", kind, false);
  }
  auto r = j.find("rootfs");
  if (r == j.end() || !r->is_object()) Bad(kind, "\"rootfs\" is missing or not an object");
  std::string type = GetString(*r, "type", kind, true);
  if (type != "layers") Bad(kind, "rootfs type \"" + type.substr(0, 100) + "\" is not \"layers\"");
  auto d = r->find("diff_ids");
  if (d == r->end() || !d->is_array()) Bad(kind, "\"rootfs.diff_ids\" is missing or not an array");
  if (d->size() > kMaxLayers) Bad(kind, "too many diff_ids");
  for (const auto& x : *d) {
    if (!x.is_string()) Bad(kind, "a diff_id is not a string");
    std::string id = x.get<std::string>();
    if (!IsValidDigest(id) || id.rfind("sha256:", 0) != 0) Bad(kind, "diff_id \"" + id.substr(0, 140) + "\" is not a sha256 digest");
    cfg.diff_ids.push_back(std::move(id));
  }
  return cfg;
}

Platform NormalizePlatform(Platform p) {
  auto lower = [](std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  p.os = lower(p.os);
  p.architecture = lower(p.architecture);
  p.variant = lower(p.variant);
  if (p.os == "macos") p.os = "darwin";
  const std::string& a = p.architecture;
  if (a == "i386") {
    p.architecture = "386";
    p.variant.clear();
  } else if (a == "x86_64" || a == "x86-64" || a == "amd64") {
    p.architecture = "amd64";
    if (p.variant == "v1") p.variant.clear();
  } else if (a == "aarch64" || a == "arm64") {
    p.architecture = "arm64";
    if (p.variant == "8" || p.variant == "v8") p.variant.clear();
  } else if (a == "armhf") {
    p.architecture = "arm";
    p.variant = "v7";
  } else if (a == "armel") {
    p.architecture = "arm";
    p.variant = "v6";
  } else if (a == "arm") {
    if (p.variant.empty() || p.variant == "7") p.variant = "v7";
    else if (p.variant == "5" || p.variant == "6" || p.variant == "8") p.variant = "v" + p.variant;
  }
  return p;
}

Platform HostPlatform() {
  Platform p;
  p.os = "linux";
  struct utsname u {};
  if (uname(&u) == 0) {
    std::string m = u.machine;
    if (m == "x86_64") p.architecture = "amd64";
    else if (m == "aarch64" || m == "arm64") p.architecture = "arm64";
    else if (m.rfind("armv", 0) == 0) {
      p.architecture = "arm";
      p.variant = "v" + m.substr(4, 1);
    } else if (m == "i386" || m == "i686") p.architecture = "386";
    else p.architecture = m;  // ppc64le, s390x, riscv64...
  }
  return NormalizePlatform(p);
}

std::string PlatformString(const Platform& p) {
  std::string s = p.os + "/" + p.architecture;
  if (!p.variant.empty()) s += "/" + p.variant;
  return s;
}

namespace {
// Rank of `have` for `want`: higher is better, -1 is no match.
int MatchRank(const Platform& want, const Platform& have) {
  if (have.os != want.os || have.architecture != want.architecture) return -1;
  if (have.variant == want.variant) return 100;
  // arm: a v7 host runs v6 and v5 images; arm64 v8 host (variant "") may run v8.x variants? no.
  auto arm_level = [](const std::string& v) { return v.size() == 2 && v[0] == 'v' ? v[1] - '0' : -1; };
  if (want.architecture == "arm") {
    int w = arm_level(want.variant), h = arm_level(have.variant);
    if (h > 0 && w > 0 && h < w) return 50 + h;
    return -1;
  }
  if (want.architecture == "amd64") {  // amd64 v1..v4 microarchitecture levels; v1 is ""
    int w = want.variant.empty() ? 1 : arm_level(want.variant);
    int h = have.variant.empty() ? 1 : arm_level(have.variant);
    if (h > 0 && w > 0 && h <= w) return 50 + h;
    return -1;
  }
  return -1;
}
}  // namespace

int SelectPlatform(const Index& index, const Platform& want_in) {
  Platform want = NormalizePlatform(want_in);
  int best = -1, best_rank = -1;
  for (size_t i = 0; i < index.manifests.size(); ++i) {
    const Descriptor& d = index.manifests[i];
    if (!d.media_type.empty() && !mediatype::IsManifest(d.media_type)) continue;
    int rank;
    if (!d.has_platform) {
      rank = 1;  // unknown platform: only when nothing better exists
    } else {
      rank = MatchRank(want, NormalizePlatform(d.platform));
    }
    if (rank > best_rank) {
      best_rank = rank;
      best = static_cast<int>(i);
    }
  }
  return best_rank >= 0 ? best : -1;
}

}  // namespace berth::image
