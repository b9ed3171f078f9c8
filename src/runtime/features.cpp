#include "runtime/features.h"

#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <mutex>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"

namespace berth::runtime {

namespace {

[[noreturn]] void Bad(const std::string& what) {
  throw Error(Code::kInvalidArgument, "invalid runtime features: " + what);
}

const nlohmann::json* Find(const nlohmann::json& obj, const char* key, const std::string& path) {
  if (!obj.is_object()) Bad(path + ": expected an object");
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::vector<std::string> Strings(const nlohmann::json& obj, const char* key, const std::string& path) {
  std::vector<std::string> out;
  auto* v = Find(obj, key, path);
  if (!v) return out;
  std::string name = path.empty() ? key : path + "." + key;
  if (!v->is_array()) Bad(name + ": expected an array of strings");
  for (const auto& e : *v) {
    if (!e.is_string()) Bad(name + ": expected an array of strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::optional<bool> Bool(const nlohmann::json& obj, const char* key, const std::string& path) {
  auto* v = Find(obj, key, path);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) Bad((path.empty() ? key : path + "." + key) + std::string(": expected a boolean"));
  return v->get<bool>();
}

const nlohmann::json* Object(const nlohmann::json& obj, const char* key, const std::string& path) {
  auto* v = Find(obj, key, path);
  if (v && !v->is_object()) Bad((path.empty() ? key : path + "." + key) + std::string(": expected an object"));
  return v;
}

struct CacheKey {
  std::string path;
  long long mtime_ns;
  long long size;
  unsigned long long dev, ino;
  bool operator<(const CacheKey& o) const {
    return std::tie(path, mtime_ns, size, dev, ino) < std::tie(o.path, o.mtime_ns, o.size, o.dev, o.ino);
  }
  nlohmann::json ToJson() const {
    return {{"path", path}, {"mtime_ns", mtime_ns}, {"size", size}, {"dev", dev}, {"ino", ino}};
  }
};

std::string DiskCachePath(const std::string& cache_dir, const std::string& binary) {
  std::string name;
  for (char c : binary) name += (isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-') ? c : '_';
  return fs::Join(cache_dir, "features" + name + ".json");
}

// The cached answer for `key`, or nullopt when the file is missing, damaged or for another key.
std::optional<FeaturesQuery> LoadDisk(const std::string& file, const CacheKey& key) {
  try {
    auto j = nlohmann::json::parse(fs::ReadFile(file, 4u << 20), nullptr, false);
    if (!j.is_object() || j.value("version", 0) != 1 || !j.contains("key") || j["key"] != key.ToJson())
      return std::nullopt;
    FeaturesQuery q;
    q.binary = key.path;
    q.cached = true;
    q.has_features_command = j.at("has_features_command").get<bool>();
    if (q.has_features_command) {
      try {
        q.features = ParseFeatures(j.at("output").get<std::string>());
      } catch (const Error& e) {
        q.error = "\"" + key.path + " features\": " + e.what();
      }
    } else {
      q.error = j.at("error").get<std::string>();
    }
    return q;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

void StoreDisk(const std::string& file, const CacheKey& key, const FeaturesQuery& q, const exec::Result& r) {
  nlohmann::json j{{"version", 1}, {"key", key.ToJson()}, {"has_features_command", q.has_features_command}};
  if (q.has_features_command) {
    j["output"] = r.out;
  } else {
    j["error"] = q.error;
  }
  try {
    if (auto slash = file.rfind('/'); slash != std::string::npos && slash > 0)
      fs::MkdirAll(file.substr(0, slash), 0700);
    fs::WriteFileAtomic(file, j.dump() + "\n", 0600);
  } catch (const std::exception&) {
    // Not cached: the next start runs `features` again.
  }
}
std::mutex g_mu;
std::map<CacheKey, FeaturesQuery> g_cache;

}  // namespace

bool Features::HasMountOption(std::string_view opt) const {
  return std::find(mount_options.begin(), mount_options.end(), opt) != mount_options.end();
}
bool Features::HasNamespace(std::string_view ns) const {
  return std::find(namespaces.begin(), namespaces.end(), ns) != namespaces.end();
}

Features ParseFeatures(std::string_view text) {
  auto doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded()) Bad("output is not JSON");
  if (!doc.is_object()) Bad("expected a JSON object");
  Features f;
  for (const char* key : {"ociVersionMin", "ociVersionMax"}) {
    auto it = doc.find(key);
    if (it == doc.end()) Bad(std::string("missing ") + key);
    if (!it->is_string() || it->get<std::string>().empty())
      Bad(std::string(key) + ": expected a non-empty string");
  }
  f.oci_version_min = doc["ociVersionMin"].get<std::string>();
  f.oci_version_max = doc["ociVersionMax"].get<std::string>();
  f.hooks = Strings(doc, "hooks", "");
  f.mount_options = Strings(doc, "mountOptions", "");
  if (auto* linux = Object(doc, "linux", "")) {
    f.namespaces = Strings(*linux, "namespaces", "linux");
    f.capabilities = Strings(*linux, "capabilities", "linux");
    if (auto* s = Object(*linux, "seccomp", "linux")) {
      f.seccomp_enabled = Bool(*s, "enabled", "linux.seccomp");
      f.seccomp_actions = Strings(*s, "actions", "linux.seccomp");
    }
    if (auto* a = Object(*linux, "apparmor", "linux")) f.apparmor_enabled = Bool(*a, "enabled", "linux.apparmor");
    if (auto* s = Object(*linux, "selinux", "linux")) f.selinux_enabled = Bool(*s, "enabled", "linux.selinux");
    if (auto* c = Object(*linux, "cgroup", "linux")) {
      f.cgroup_v1 = Bool(*c, "v1", "linux.cgroup");
      f.cgroup_v2 = Bool(*c, "v2", "linux.cgroup");
      f.cgroup_systemd = Bool(*c, "systemd", "linux.cgroup");
    }
    if (auto* me = Object(*linux, "mountExtensions", "linux"))
      if (auto* idmap = Object(*me, "idmap", "linux.mountExtensions"))
        f.idmap_enabled = Bool(*idmap, "enabled", "linux.mountExtensions.idmap");
  }
  f.doc_ = std::make_shared<const nlohmann::json>(std::move(doc));
  return f;
}

std::string ResolveRuntimeBinary(const std::string& binary_name, const std::string& runtime_path) {
  std::string name = !binary_name.empty() ? binary_name : !runtime_path.empty() ? runtime_path : "runc";
  auto p = exec::LookPath(name);
  if (!p) throw Error(Code::kNotFound, "OCI runtime binary \"" + name + "\" not found");
  return *p;
}

FeaturesQuery QueryFeatures(const std::string& binary, std::chrono::milliseconds timeout,
                            const std::string& cache_dir) {
  struct stat st{};
  if (::stat(binary.c_str(), &st) != 0) ThrowErrno("OCI runtime binary " + binary);
  CacheKey key{binary, static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec,
               static_cast<long long>(st.st_size), static_cast<unsigned long long>(st.st_dev),
               static_cast<unsigned long long>(st.st_ino)};
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = g_cache.find(key);
    if (it != g_cache.end()) return it->second;
  }
  const std::string disk = cache_dir.empty() ? "" : DiskCachePath(cache_dir, binary);
  if (!disk.empty()) {
    if (auto q = LoadDisk(disk, key)) {
      std::lock_guard<std::mutex> lock(g_mu);
      g_cache[key] = *q;
      return *q;
    }
  }
  FeaturesQuery q;
  q.binary = binary;
  std::vector<std::string> argv{binary, "features"};
  exec::Options opts;
  opts.timeout = timeout;
  opts.max_output = 1u << 20;
  auto r = exec::Run(argv, opts);
  if (!r.ok()) {
    q.error = exec::Describe(argv, r);
  } else {
    q.has_features_command = true;
    try {
      q.features = ParseFeatures(r.out);
    } catch (const Error& e) {
      q.error = "\"" + binary + " features\": " + e.what();
    }
  }
  // A timeout or a signal may be passing trouble: not worth remembering across restarts.
  if (!disk.empty() && !r.timed_out && r.exit_code >= 0 && r.exit_code < 128) StoreDisk(disk, key, q, r);
  std::lock_guard<std::mutex> lock(g_mu);
  g_cache[key] = q;
  return q;
}

void ClearFeaturesCache() {
  std::lock_guard<std::mutex> lock(g_mu);
  g_cache.clear();
}

}  // namespace berth::runtime
