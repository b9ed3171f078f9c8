// Import of image archives into the content store: OCI image layout tarballs (oci-layout,
// index.json, blobs/sha256/*) and `docker save` archives (manifest.json with Config, RepoTags and
// Layers, for which a Docker schema2 manifest is written). Archive entries are untrusted: names are
// cleaned and may not escape, metadata files are size-bounded, every blob is verified.

#include <cerrno>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "content/store.h"
#include "image/archive.h"
#include "image/dynload.h"
#include "image/entry_path.h"

namespace berth::image {
namespace {

using nlohmann::json;

constexpr size_t kMaxEntries = 100000;
constexpr size_t kMaxJsonFile = 16u << 20;
constexpr size_t kMaxNameLength = 4096;

constexpr const char* kOciIndex = "application/vnd.oci.image.index.v1+json";
constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr const char* kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
constexpr const char* kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
constexpr const char* kDockerConfig = "application/vnd.docker.container.image.v1+json";

[[noreturn]] void Invalid(const std::string& archive, const std::string& why) {
  throw Error(Code::kInvalidArgument, "image archive " + archive + ": " + why);
}

// Cleans an archive path ("./a/../b" -> "b"); false when it climbs above the archive root.
bool CleanName(const std::string& name, std::string& out) {
  std::vector<std::string> comps;
  if (!CleanEntryPath(name, comps)) return false;
  out.clear();
  for (auto& c : comps) out += (out.empty() ? "" : "/") + c;
  return true;
}

struct ArchiveFiles {
  std::map<std::string, std::string> json_files;  // small metadata files, by name
  std::map<std::string, std::string> blobs;       // regular file name -> digest
  std::map<std::string, std::string> links;       // name -> cleaned target name
  std::set<std::string> new_loose;                // digests of loose files new to the store
};

bool IsMetadataName(const std::string& n) {
  return n == "index.json" || n == "oci-layout" || n == "manifest.json" || n == "repositories";
}

ArchiveFiles ReadArchive(const std::string& path, content::Store& store) {
  ArchiveUse use;
  ArchiveFiles files;
  archive* a = Archive().read_new();
  struct Closer {
    archive* a;
    ~Closer() { Archive().read_free(a); }
  } closer{a};
  Archive().read_support_filter_gzip(a);
  Archive().read_support_filter_zstd(a);
  Archive().read_support_format_tar(a);
  if (Archive().read_open_filename(a, path.c_str(), 1 << 17) != ARCHIVE_OK) {
    const int err = Archive().last_errno(a);
    const char* es = Archive().error_string(a);
    // A missing archive is NOT_FOUND (the CRI maps it so), not a malformed one.
    if (err == ENOENT || err == ENOTDIR) {
      throw Error(Code::kNotFound, "image archive " + path + ": " + std::strerror(err));
    }
    Invalid(path, es ? es : "cannot open");
  }
  size_t count = 0;
  for (;;) {
    archive_entry* e;
    int r = Archive().read_next_header(a, &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      const char* es = Archive().error_string(a);
      Invalid(path, es ? es : "invalid tar archive");
    }
    if (++count > kMaxEntries)
      Invalid(path, "more than " + std::to_string(kMaxEntries) + " entries");
    const char* raw = Archive().entry_pathname(e);
    std::string name_raw = raw ? raw : "";
    if (name_raw.size() > kMaxNameLength) Invalid(path, "entry name longer than 4096 bytes");
    std::string name;
    if (!CleanName(name_raw, name))
      Invalid(path, "entry \"" + name_raw + "\": path escapes the archive");
    if (name.empty()) continue;
    if (const char* hl = Archive().entry_hardlink(e)) {
      std::string target;
      if (!CleanName(hl, target))
        Invalid(path, "entry \"" + name_raw + "\": link target escapes the archive");
      files.links[name] = target;
      continue;
    }
    auto type = Archive().entry_filetype(e);
    if (type == AE_IFLNK) {
      const char* t = Archive().entry_symlink(e);
      std::string target = t ? t : "";
      if (target.size() > kMaxNameLength || target.empty() || target[0] == '/')
        Invalid(path, "entry \"" + name_raw + "\": unsupported link target");
      std::string dir = name.find('/') == std::string::npos ? "" : name.substr(0, name.rfind('/'));
      std::string resolved;
      if (!CleanName(dir.empty() ? target : dir + "/" + target, resolved))
        Invalid(path, "entry \"" + name_raw + "\": link target escapes the archive");
      files.links[name] = resolved;
      continue;
    }
    if (type != AE_IFREG) continue;

    auto read = [&](char* buf, size_t n) -> size_t {
      la_ssize_t got = Archive().read_data(a, buf, n);
      if (got < 0) {
        const char* es = Archive().error_string(a);
        Invalid(path, "entry \"" + name_raw + "\": " + (es ? es : "read error"));
      }
      return static_cast<size_t>(got);
    };

    if (IsMetadataName(name)) {
      if (Archive().entry_size(e) > static_cast<la_int64_t>(kMaxJsonFile))
        Invalid(path, "entry \"" + name_raw + "\": larger than " + std::to_string(kMaxJsonFile) +
                          " bytes");
      std::string data;
      char buf[1 << 14];
      for (size_t n; (n = read(buf, sizeof buf)) > 0;) {
        data.append(buf, n);
        if (data.size() > kMaxJsonFile) Invalid(path, "entry \"" + name_raw + "\": too large");
      }
      files.json_files[name] = std::move(data);
      continue;
    }

    std::string expected;
    if (name.rfind("blobs/sha256/", 0) == 0) {
      expected = "sha256:" + name.substr(13);
      if (!content::ValidDigest(expected))
        Invalid(path, "entry \"" + name_raw + "\": not a sha256 blob name");
      if (store.Has(expected)) {
        files.blobs[name] = expected;
        continue;  // already present: its content was verified when it was stored
      }
    }
    std::string digest;
    try {
      digest = store.Ingest(read, expected);
      // Loose files (docker save) are kept only when an image references them.
      if (expected.empty()) files.new_loose.insert(digest);
    } catch (const Error& e) {
      if (e.code() == Code::kInternal &&
          std::string(e.what()).find("digest mismatch") != std::string::npos)
        Invalid(path, "entry \"" + name_raw + "\": " + e.what());
      throw;
    }
    files.blobs[name] = digest;
  }
  return files;
}

// Digest of the file an archive path names, following links inside the archive.
std::string Resolve(const ArchiveFiles& files, const std::string& archive,
                    const std::string& raw_name) {
  std::string name;
  if (!CleanName(raw_name, name))
    Invalid(archive, "reference \"" + raw_name + "\" escapes the archive");
  for (int depth = 0; depth < 16; ++depth) {
    if (auto it = files.blobs.find(name); it != files.blobs.end()) return it->second;
    auto l = files.links.find(name);
    if (l == files.links.end()) break;
    name = l->second;
  }
  Invalid(archive, "\"" + raw_name + "\" is referenced but not in the archive");
}

json ParseJson(const std::string& archive, const std::string& what, const std::string& data) {
  json j = json::parse(data, nullptr, false);
  if (j.is_discarded()) Invalid(archive, what + " is not valid JSON");
  return j;
}

std::string GetString(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

void CheckDescriptor(const std::string& archive, content::Store& store, const json& d,
                     const std::string& where) {
  if (!d.is_object()) Invalid(archive, where + ": descriptor is not an object");
  std::string digest = GetString(d, "digest");
  if (!content::ValidDigest(digest))
    Invalid(archive, where + ": invalid digest \"" + digest.substr(0, 100) + "\"");
  if (!store.Has(digest)) Invalid(archive, where + ": blob " + digest + " is not in the archive");
  auto size = d.find("size");
  if (size != d.end() && (!size->is_number_integer() || size->get<int64_t>() != store.Size(digest)))
    Invalid(archive, where + ": size of " + digest + " does not match the descriptor");
}

std::vector<ImportedImage> ImportOci(const std::string& archive, const ArchiveFiles& files,
                                     content::Store& store) {
  if (auto it = files.json_files.find("oci-layout"); it != files.json_files.end()) {
    json layout = ParseJson(archive, "oci-layout", it->second);
    if (!layout.is_object() || GetString(layout, "imageLayoutVersion").empty())
      Invalid(archive, "oci-layout has no imageLayoutVersion");
  }
  json index = ParseJson(archive, "index.json", files.json_files.at("index.json"));
  if (!index.is_object() || !index.contains("manifests") || !index["manifests"].is_array())
    Invalid(archive, "index.json has no manifests list");
  std::vector<ImportedImage> out;
  size_t i = 0;
  for (const auto& d : index["manifests"]) {
    std::string where = "index.json manifests[" + std::to_string(i++) + "]";
    CheckDescriptor(archive, store, d, where);
    ImportedImage img;
    img.manifest_digest = GetString(d, "digest");
    img.media_type = GetString(d, "mediaType");
    if (const auto a = d.find("annotations"); a != d.end() && a->is_object()) {
      img.name = GetString(*a, "io.containerd.image.name");
      if (img.name.empty()) img.name = GetString(*a, "org.opencontainers.image.ref.name");
    }
    if (img.media_type == kOciManifest || img.media_type == kDockerManifest) {
      json m =
          ParseJson(archive, img.manifest_digest, store.Read(img.manifest_digest, kMaxJsonFile));
      if (!m.is_object() || !m.contains("config"))
        Invalid(archive, "manifest " + img.manifest_digest + " has no config");
      CheckDescriptor(archive, store, m["config"], "manifest " + img.manifest_digest + " config");
      if (m.contains("layers")) {
        if (!m["layers"].is_array())
          Invalid(archive, "manifest " + img.manifest_digest + ": layers is not a list");
        size_t li = 0;
        for (const auto& l : m["layers"])
          CheckDescriptor(
              archive, store, l,
              "manifest " + img.manifest_digest + " layers[" + std::to_string(li++) + "]");
      }
    } else if (img.media_type != kOciIndex && img.media_type != kDockerManifestList) {
      Invalid(archive,
              where + ": unsupported media type \"" + img.media_type.substr(0, 100) + "\"");
    }
    out.push_back(std::move(img));
  }
  return out;
}

std::string LayerMediaType(content::Store& store, const std::string& digest) {
  std::string head;
  {
    std::string p = store.Path(digest);
    FILE* f = fopen(p.c_str(), "rb");
    if (f) {
      char b[4];
      size_t n = fread(b, 1, 4, f);
      head.assign(b, n);
      fclose(f);
    }
  }
  if (head.size() >= 2 && head[0] == '\x1f' && head[1] == '\x8b')
    return "application/vnd.docker.image.rootfs.diff.tar.gzip";
  if (head.size() >= 4 && head == std::string("\x28\xb5\x2f\xfd", 4))
    return "application/vnd.docker.image.rootfs.diff.tar.zstd";
  return "application/vnd.docker.image.rootfs.diff.tar";
}

std::vector<ImportedImage> ImportDocker(const std::string& archive, ArchiveFiles& files,
                                        content::Store& store, std::set<std::string>& referenced) {
  json mf = ParseJson(archive, "manifest.json", files.json_files.at("manifest.json"));
  if (!mf.is_array()) Invalid(archive, "manifest.json is not a list");
  std::vector<ImportedImage> out;
  size_t i = 0;
  for (const auto& entry : mf) {
    std::string where = "manifest.json[" + std::to_string(i++) + "]";
    if (!entry.is_object()) Invalid(archive, where + " is not an object");
    std::string config_name = GetString(entry, "Config");
    if (config_name.empty()) Invalid(archive, where + " has no Config");
    std::string config_digest = Resolve(files, archive, config_name);
    json config =
        ParseJson(archive, "config " + config_name, store.Read(config_digest, kMaxJsonFile));
    if (!config.is_object()) Invalid(archive, "config " + config_name + " is not an object");
    referenced.insert(config_digest);

    json layers = json::array();
    if (entry.contains("Layers")) {
      if (!entry["Layers"].is_array()) Invalid(archive, where + ": Layers is not a list");
      for (const auto& l : entry["Layers"]) {
        if (!l.is_string()) Invalid(archive, where + ": Layers has a non-string entry");
        std::string d = Resolve(files, archive, l.get<std::string>());
        referenced.insert(d);
        layers.push_back(
            {{"mediaType", LayerMediaType(store, d)}, {"digest", d}, {"size", store.Size(d)}});
      }
    }
    if (config.contains("rootfs") && config["rootfs"].is_object() &&
        config["rootfs"].contains("diff_ids") && config["rootfs"]["diff_ids"].is_array() &&
        config["rootfs"]["diff_ids"].size() != layers.size())
      Invalid(archive, where + ": " + std::to_string(layers.size()) +
                           " layers but the config lists " +
                           std::to_string(config["rootfs"]["diff_ids"].size()) + " diff ids");
    json manifest = {
        {"schemaVersion", 2},
        {"mediaType", kDockerManifest},
        {"config",
         {{"mediaType", kDockerConfig},
          {"digest", config_digest},
          {"size", store.Size(config_digest)}}},
        {"layers", layers},
    };
    std::string manifest_digest = store.Write(manifest.dump());
    bool named = false;
    if (entry.contains("RepoTags") && entry["RepoTags"].is_array()) {
      for (const auto& t : entry["RepoTags"]) {
        if (!t.is_string() || t.get<std::string>().empty()) continue;
        out.push_back({t.get<std::string>(), manifest_digest, kDockerManifest});
        named = true;
      }
    }
    if (!named) out.push_back({"", manifest_digest, kDockerManifest});
  }
  return out;
}

}  // namespace

std::vector<ImportedImage> ImportArchive(const std::string& archive_path, content::Store& store) {
  // Digests of loose files that were already stored must survive the clean-up below.
  std::set<std::string> before;
  for (auto& d : store.List()) before.insert(d);
  ArchiveFiles files = ReadArchive(archive_path, store);
  std::set<std::string> referenced;
  std::vector<ImportedImage> out;
  try {
    if (files.json_files.count("index.json")) {
      out = ImportOci(archive_path, files, store);
    } else if (files.json_files.count("manifest.json")) {
      out = ImportDocker(archive_path, files, store, referenced);
    } else {
      Invalid(archive_path,
              "neither index.json (OCI image layout) nor manifest.json (docker save) found");
    }
  } catch (...) {
    for (auto& d : files.new_loose)
      if (!before.count(d)) {
        try {
          store.Delete(d);
        } catch (const Error&) {
        }
      }
    throw;
  }
  for (auto& d : files.new_loose) {
    if (before.count(d) || referenced.count(d)) continue;
    try {
      store.Delete(d);
    } catch (const Error&) {
    }
  }
  return out;
}

}  // namespace berth::image
