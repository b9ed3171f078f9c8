// Migration of config trees to version 3: v1 short plugin names, and the split of
// io.containerd.grpc.v1.cri into the runtime, images and server tables. Keys are moved, never
// silently dropped: anything that cannot be placed is named in a warning.
#include <map>
#include <set>

#include "config/config.h"
#include "config/toml_io.h"

namespace berth::config {

using detail::JoinKey;
using detail::Tree;

namespace {

const std::string kCRIv1Path = std::string("plugins.") + detail::QuoteKey(kCRIServerPluginURI);

std::string PluginPath(const std::string& uri) { return "plugins." + detail::QuoteKey(uri); }

// containerd's v1 -> v2 plugin name mapping.
std::string V1PluginName(const std::string& name, std::vector<std::string>& warnings) {
  if (name.find('.') != std::string::npos) return name;
  static const std::map<std::string, std::string> kCore = {
      {"cri", "io.containerd.grpc.v1.cri"},
      {"cgroups", "io.containerd.monitor.v1.cgroups"},
      {"linux", "io.containerd.runtime.v1.linux"},
      {"scheduler", "io.containerd.gc.v1.scheduler"},
      {"bolt", "io.containerd.metadata.v1.bolt"},
      {"task", "io.containerd.runtime.v2.task"},
      {"opt", "io.containerd.internal.v1.opt"},
      {"restart", "io.containerd.internal.v1.restart"},
      {"tracing", "io.containerd.internal.v1.tracing"},
      {"otlp", "io.containerd.tracing.processor.v1.otlp"},
      {"aufs", "io.containerd.snapshotter.v1.aufs"},
      {"btrfs", "io.containerd.snapshotter.v1.btrfs"},
      {"devmapper", "io.containerd.snapshotter.v1.devmapper"},
      {"native", "io.containerd.snapshotter.v1.native"},
      {"overlayfs", "io.containerd.snapshotter.v1.overlayfs"},
      {"zfs", "io.containerd.snapshotter.v1.zfs"},
  };
  auto it = kCore.find(name);
  if (it != kCore.end()) return it->second;
  if (name.size() > 8 && name.compare(name.size() - 8, 8, "-service") == 0)
    return "io.containerd.service.v1." + name;
  std::string full = (name == "windows" || name == "windows-lcow")
                         ? "io.containerd.snapshotter.v1." + name
                         : "io.containerd.grpc.v1." + name;
  warnings.push_back("ambiguous plugin name \"" + name + "\" in version 1 config, treating it as \"" +
                     full + "\"");
  return full;
}

// Moves src[key] into dst[key]. Tables are merged key by key. When both sides hold different
// non-table values, `src_wins` decides which one stays; the other is named in a warning.
void MoveKey(Tree& src, const std::string& key, Tree& dst, const std::string& dst_key,
             const std::string& src_path, const std::string& dst_path, bool src_wins,
             std::vector<std::string>& warnings) {
  auto it = src.find(key);
  if (it == src.end()) return;
  Tree value = std::move(*it);
  src.erase(key);
  if (!dst.is_object()) return;
  auto dit = dst.find(dst_key);
  if (dit == dst.end()) {
    dst[dst_key] = std::move(value);
    return;
  }
  if (dit->is_object() && value.is_object()) {
    std::vector<std::string> keys;
    for (const auto& [k, v] : value.items()) keys.push_back(k);
    for (const auto& k : keys)
      MoveKey(value, k, *dit, k, JoinKey(src_path, k), JoinKey(dst_path, k), src_wins, warnings);
    return;
  }
  if (*dit == value) return;
  if (src_wins) {
    warnings.push_back(dst_path + " = " + dit->dump() + " was replaced by the migrated " +
                       src_path + " = " + value.dump());
    *dit = std::move(value);
  } else {
    warnings.push_back(src_path + " = " + value.dump() + " was not migrated: " + dst_path +
                       " is already set to " + dit->dump());
  }
}

// The destination plugin table, created when missing. Null when it exists but is not a table.
Tree* DestTable(Tree& plugins, const std::string& uri, std::vector<std::string>& warnings) {
  auto it = plugins.find(uri);
  if (it == plugins.end()) {
    plugins[uri] = Tree::object();
    return &plugins[uri];
  }
  if (!it->is_object()) {
    warnings.push_back(PluginPath(uri) + " is not a table; keys of " + kCRIv1Path +
                       " meant for it are left where they are");
    return nullptr;
  }
  return &*it;
}

Tree* CRIv1Table(int version, Tree& plugins, std::vector<std::string>& warnings) {
  if (version >= kCurrentVersion || !plugins.is_object()) return nullptr;
  if (version < 2) MigrateV1PluginNames(plugins, warnings);
  auto it = plugins.find(kCRIServerPluginURI);
  if (it == plugins.end() || !it->is_object()) return nullptr;
  return &*it;
}

void EraseIfEmptied(Tree& table, const std::string& key, bool was_nonempty) {
  auto it = table.find(key);
  if (it != table.end() && it->is_object() && it->empty() && was_nonempty) table.erase(key);
}

const std::set<std::string> kImageKeys = {
    "sandbox_image",          "registry",         "image_decryption",
    "max_concurrent_downloads", "image_pull_progress_timeout", "image_pull_with_sync_fs",
    "stats_collect_period",   "use_local_image_pull",
};
const std::set<std::string> kImageContainerdKeys = {
    "snapshotter", "disable_snapshot_annotations", "discard_unpacked_layers"};
const std::set<std::string> kServerKeys = {
    "disable_tcp_service", "stream_server_address", "stream_server_port",
    "stream_idle_timeout", "enable_tls_streaming",  "x509_key_pair_streaming"};

// Keys containerd 2.0 removed, with what replaces them. The runtime migration drops them and
// names each in a warning.
const std::map<std::string, std::string> kRemovedTopKeys = {
    {"systemd_cgroup", "use containerd.runtimes.<name>.options.SystemdCgroup"},
    {"disable_cgroup", "no replacement"},
};
const std::map<std::string, std::string> kRemovedContainerdKeys = {
    {"no_pivot", "use containerd.runtimes.<name>.options.NoPivotRoot"},
    {"default_runtime", "use containerd.runtimes and containerd.default_runtime_name"},
    {"untrusted_workload_runtime", "use containerd.runtimes and a runtime handler"},
};
const std::map<std::string, std::string> kRemovedRuntimeKeys = {
    {"runtime_engine", "use options.BinaryName"},
    {"runtime_root", "use options.Root"},
};

void DropRemoved(Tree& table, const std::string& path,
                 const std::map<std::string, std::string>& removed,
                 std::vector<std::string>& warnings) {
  if (!table.is_object()) return;
  for (const auto& [key, hint] : removed) {
    auto it = table.find(key);
    if (it == table.end()) continue;
    std::string value = it->is_object() ? "(table)" : it->dump();
    warnings.push_back(JoinKey(path, key) + " = " + value +
                       " was dropped: removed in containerd 2.0 (" + hint + ")");
    table.erase(key);
  }
}

}  // namespace

void MigrateV1PluginNames(Tree& plugins, std::vector<std::string>& warnings) {
  if (!plugins.is_object()) return;
  Tree out = Tree::object();
  for (auto& [name, value] : plugins.items()) {
    std::string full = V1PluginName(name, warnings);
    if (out.contains(full)) {
      warnings.push_back("plugins." + detail::QuoteKey(name) + " maps to " + PluginPath(full) +
                         ", which is also configured; plugins." + detail::QuoteKey(name) +
                         " is left under its short name");
      out[name] = value;
      continue;
    }
    out[full] = value;
  }
  plugins = std::move(out);
}

void MigrateCRIRuntime(int version, Tree& plugins, std::vector<std::string>& warnings) {
  Tree* src = CRIv1Table(version, plugins, warnings);
  if (!src) return;
  Tree* dst = DestTable(plugins, kCRIRuntimePluginURI, warnings);
  if (!dst) return;
  src = &plugins[kCRIServerPluginURI];  // DestTable may have reallocated
  const std::string dst_path = PluginPath(kCRIRuntimePluginURI);

  DropRemoved(*src, kCRIv1Path, kRemovedTopKeys, warnings);
  if (src->contains("containerd")) {
    Tree& scd = (*src)["containerd"];
    DropRemoved(scd, kCRIv1Path + ".containerd", kRemovedContainerdKeys, warnings);
    if (scd.is_object() && scd.contains("runtimes") && scd["runtimes"].is_object())
      for (auto& [name, rt] : scd["runtimes"].items())
        DropRemoved(rt, JoinKey(kCRIv1Path + ".containerd.runtimes", name), kRemovedRuntimeKeys,
                    warnings);
  }
  std::vector<std::string> keys;
  for (const auto& [k, v] : src->items()) keys.push_back(k);
  for (const auto& k : keys) {
    if (kImageKeys.count(k) || kServerKeys.count(k)) continue;
    if (k == "cni" || k == "containerd") {
      if (!(*src)[k].is_object()) {
        MoveKey(*src, k, *dst, k, JoinKey(kCRIv1Path, k), JoinKey(dst_path, k), false, warnings);
      }
      continue;
    }
    MoveKey(*src, k, *dst, k, JoinKey(kCRIv1Path, k), JoinKey(dst_path, k), false, warnings);
  }

  // cni: bin_dir is folded into bin_dirs.
  if (src->contains("cni")) {
    Tree& scni = (*src)["cni"];
    bool had = !scni.empty();
    if (!dst->contains("cni")) (*dst)["cni"] = Tree::object();
    Tree& dcni = (*dst)["cni"];
    const std::string sp = kCRIv1Path + ".cni", dp = dst_path + ".cni";
    if (dcni.is_object() && scni.contains("bin_dir") && scni["bin_dir"].is_string()) {
      std::string bin_dir = scni["bin_dir"].get<std::string>();
      // bin_dirs from the old table first, then from the new one.
      if (scni.contains("bin_dirs"))
        MoveKey(scni, "bin_dirs", dcni, "bin_dirs", sp + ".bin_dirs", dp + ".bin_dirs", false,
                warnings);
      Tree& dirs = dcni["bin_dirs"];
      if (dirs.is_null()) dirs = Tree::array();
      if (dirs.is_array()) {
        bool present = false;
        for (const auto& d : dirs) present = present || d == bin_dir;
        if (!present) dirs.push_back(bin_dir);
        if (dirs.size() > 1)
          warnings.push_back(sp + ".bin_dir = \"" + bin_dir + "\" was folded into " + dp +
                             ".bin_dirs = " + dirs.dump());
        scni.erase("bin_dir");
      }
    }
    std::vector<std::string> ck;
    for (const auto& [k, v] : scni.items()) ck.push_back(k);
    for (const auto& k : ck)
      MoveKey(scni, k, dcni, k, JoinKey(sp, k), JoinKey(dp, k), false, warnings);
    EraseIfEmptied(*src, "cni", had);
    if (!had && src->contains("cni")) src->erase("cni");
  }

  // containerd: everything but the image keys; sandbox_mode is renamed to sandboxer.
  if (src->contains("containerd")) {
    Tree& scd = (*src)["containerd"];
    bool had = !scd.empty();
    if (!dst->contains("containerd")) (*dst)["containerd"] = Tree::object();
    Tree& dcd = (*dst)["containerd"];
    const std::string sp = kCRIv1Path + ".containerd", dp = dst_path + ".containerd";
    if (scd.contains("runtimes") && scd["runtimes"].is_object()) {
      for (auto& [name, rt] : scd["runtimes"].items()) {
        if (!rt.is_object() || !rt.contains("sandbox_mode")) continue;
        const std::string rp = JoinKey(sp + ".runtimes", name);
        if (!rt.contains("sandboxer")) {
          rt["sandboxer"] = rt["sandbox_mode"];
        } else if (rt["sandboxer"] != rt["sandbox_mode"]) {
          warnings.push_back(rp + ".sandbox_mode = " + rt["sandbox_mode"].dump() +
                             " was not migrated: " + rp + ".sandboxer is already set to " +
                             rt["sandboxer"].dump());
        }
        rt.erase("sandbox_mode");
      }
    }
    std::vector<std::string> ck;
    for (const auto& [k, v] : scd.items())
      if (!kImageContainerdKeys.count(k)) ck.push_back(k);
    for (const auto& k : ck)
      MoveKey(scd, k, dcd, k, JoinKey(sp, k), JoinKey(dp, k), false, warnings);
    EraseIfEmptied(*src, "containerd", had);
    if (!had && src->contains("containerd") && (*src)["containerd"].empty())
      src->erase("containerd");
  }
}

void MigrateCRIImages(int version, Tree& plugins, std::vector<std::string>& warnings) {
  Tree* src = CRIv1Table(version, plugins, warnings);
  if (!src) return;
  Tree* dst = DestTable(plugins, kCRIImagesPluginURI, warnings);
  if (!dst) return;
  src = &plugins[kCRIServerPluginURI];
  const std::string dst_path = PluginPath(kCRIImagesPluginURI);

  if (src->contains("sandbox_image")) {
    if (!dst->contains("pinned_images")) (*dst)["pinned_images"] = Tree::object();
    Tree& pinned = (*dst)["pinned_images"];
    if (pinned.is_object()) {
      MoveKey(*src, "sandbox_image", pinned, "sandbox", kCRIv1Path + ".sandbox_image",
              dst_path + ".pinned_images.sandbox", true, warnings);
    }
  }
  if (src->contains("containerd") && (*src)["containerd"].is_object()) {
    Tree& scd = (*src)["containerd"];
    bool had = !scd.empty();
    for (const auto& k : kImageContainerdKeys)
      MoveKey(scd, k, *dst, k, kCRIv1Path + ".containerd." + k, JoinKey(dst_path, k), true,
              warnings);
    EraseIfEmptied(*src, "containerd", had);
  }
  std::vector<std::string> keys;
  for (const auto& [k, v] : src->items())
    if (kImageKeys.count(k) && k != "sandbox_image") keys.push_back(k);
  for (const auto& k : keys)
    MoveKey(*src, k, *dst, k, JoinKey(kCRIv1Path, k), JoinKey(dst_path, k), true, warnings);
}

void MigrateCRIServer(int version, Tree& plugins, std::vector<std::string>& warnings) {
  Tree* src = CRIv1Table(version, plugins, warnings);
  if (!src) return;
  // The server keys stay where they are. Keys the runtime and images migrations have not taken
  // remain too, so that decoding names them; a table left empty is removed.
  if (src->empty()) plugins.erase(kCRIServerPluginURI);
}

void MigrateToV3(Config& c, int from_version, std::vector<std::string>& warnings) {
  if (from_version >= kCurrentVersion) {
    c.version = kCurrentVersion;
    return;
  }
  if (from_version < 2) {
    MigrateV1PluginNames(c.plugins, warnings);
    for (auto* list : {&c.disabled_plugins, &c.required_plugins})
      for (auto& p : *list) p = V1PluginName(p, warnings);
  }
  int v = from_version < 2 ? 2 : from_version;
  MigrateCRIImages(v, c.plugins, warnings);
  MigrateCRIRuntime(v, c.plugins, warnings);
  MigrateCRIServer(v, c.plugins, warnings);
  c.version = kCurrentVersion;
}

}  // namespace berth::config
