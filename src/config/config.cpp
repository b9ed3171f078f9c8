// Loading config.toml with imports, defaults and TOML output.
#include "config/config.h"

#include <glob.h>

#include <algorithm>
#include <deque>
#include <filesystem>

#include "common/error.h"
#include "common/fs.h"
#include "config/cri.h"
#include "config/reader.h"
#include "config/toml_io.h"

namespace berth::config {

using detail::Tree;

namespace {

// Top-level tables of containerd's config berth keeps verbatim without a warning.
const std::set<std::string> kKnownExtra = {"ttrpc", "metrics", "cgroup", "timeouts",
                                           "proxy_plugins", "stream_processors"};
// Tables whose entries an import replaces whole (containerd's mergeConfig).
const std::set<std::string> kReplacePerKey = {"timeouts", "proxy_plugins", "stream_processors"};
constexpr size_t kMaxFiles = 1024;

std::string Prefixed(const std::string& name, const std::string& msg) {
  return name.empty() ? msg : name + ": " + msg;
}

// Keeps the keys of `table` listed in `unknown` under extra[section], with a warning.
void KeepUnknown(const Tree& table, const std::string& section,
                 const std::vector<std::string>& unknown, const std::string& name, Tree& extra,
                 std::vector<std::string>* warnings) {
  for (const auto& [key, v] : table.items()) {
    std::string path = detail::JoinKey(section, key);
    if (std::find(unknown.begin(), unknown.end(), path) == unknown.end()) continue;
    extra[section][key] = v;
    if (warnings)
      warnings->push_back(Prefixed(name, "unknown key " + path + " kept verbatim, not used by berth"));
  }
}

// Decodes the top level of one file's tree. Type errors name the file and the key.
Config FromTree(const Tree& t, const std::string& name, std::vector<std::string>* warnings) {
  Config c;
  c.plugins = Tree::object();
  c.extra = Tree::object();
  try {
    std::vector<std::string> unknown;
    detail::TableReader rd(t, "", &unknown);
    rd.Int("version", c.version);
    rd.Str("root", c.root);
    rd.Str("state", c.state);
    rd.Str("temp", c.temp);
    rd.Str("plugin_dir", c.plugin_dir);
    rd.Int("oom_score", c.oom_score);
    rd.StrList("disabled_plugins", c.disabled_plugins);
    rd.StrList("required_plugins", c.required_plugins);
    rd.StrList("imports", c.imports);
    if (const Tree* g = rd.Table("grpc")) {
      std::vector<std::string> gu;
      detail::TableReader gr(*g, "grpc", &gu);
      gr.Str("address", c.grpc.address);
      gr.Str("tcp_address", c.grpc.tcp_address);
      gr.Str("tcp_tls_ca", c.grpc.tcp_tls_ca);
      gr.Str("tcp_tls_cert", c.grpc.tcp_tls_cert);
      gr.Str("tcp_tls_key", c.grpc.tcp_tls_key);
      gr.Int("uid", c.grpc.uid);
      gr.Int("gid", c.grpc.gid);
      gr.Int64("max_recv_message_size", c.grpc.max_recv_message_size);
      gr.Int64("max_send_message_size", c.grpc.max_send_message_size);
      gr.Finish();
      KeepUnknown(*g, "grpc", gu, name, c.extra, warnings);
    }
    if (const Tree* d = rd.Table("debug")) {
      std::vector<std::string> du;
      detail::TableReader dr(*d, "debug", &du);
      dr.Str("address", c.debug.address);
      dr.Str("level", c.debug.level);
      dr.Str("format", c.debug.format);
      dr.Int("uid", c.debug.uid);
      dr.Int("gid", c.debug.gid);
      dr.Finish();
      KeepUnknown(*d, "debug", du, name, c.extra, warnings);
    }
    rd.Raw("plugins", c.plugins, true);
    rd.Finish();
    for (const auto& k : unknown) {
      // Unknown top-level keys are bare or quoted; look them up by their original spelling.
      for (const auto& [key, v] : t.items()) {
        if (detail::QuoteKey(key) != k) continue;
        c.extra[key] = v;
        if (!kKnownExtra.count(key) && warnings)
          warnings->push_back(Prefixed(name, "unknown top-level key " + k + " kept verbatim, not used by berth"));
      }
    }
    for (const auto& key : kReplacePerKey) {
      if (c.extra.contains(key) && !c.extra[key].is_object())
        detail::ThrowType(key, "table", c.extra[key]);
    }
  } catch (const Error& e) {
    throw Error(e.code(), Prefixed(name, e.what()));
  }
  return c;
}

// Merges an import into the accumulated tree. Scalars present in `from` replace; the top-level
// lists are unions; plugin tables and other tables merge key by key (recursively for plugins);
// entries of timeouts, proxy_plugins and stream_processors are replaced whole.
void DeepMerge(Tree& to, const Tree& from) {
  for (const auto& [k, v] : from.items()) {
    auto it = to.find(k);
    if (it != to.end() && it->is_object() && v.is_object()) {
      DeepMerge(*it, v);
    } else {
      to[k] = v;
    }
  }
}

void MergeTrees(Tree& to, const Tree& from) {
  for (const auto& [k, v] : from.items()) {
    auto it = to.find(k);
    if (it == to.end()) {
      to[k] = v;
    } else if ((k == "disabled_plugins" || k == "required_plugins" || k == "imports") &&
               it->is_array() && v.is_array()) {
      for (const auto& e : v)
        if (std::find(it->begin(), it->end(), e) == it->end()) it->push_back(e);
    } else if (kReplacePerKey.count(k) && it->is_object() && v.is_object()) {
      for (const auto& [ek, ev] : v.items()) (*it)[ek] = ev;
    } else if (it->is_object() && v.is_object()) {
      DeepMerge(*it, v);
    } else {
      *it = v;
    }
  }
}

std::vector<std::string> ResolveImports(const std::string& parent_dir,
                                        const std::vector<std::string>& imports,
                                        const std::string& name) {
  std::vector<std::string> out;
  for (const auto& imp : imports) {
    if (imp.empty()) continue;
    std::filesystem::path p = std::filesystem::path(imp).lexically_normal();
    if (!p.is_absolute()) p = (std::filesystem::path(parent_dir) / p).lexically_normal();
    std::string path = p.string();
    if (path.find('*') == std::string::npos) {
      out.push_back(path);
      continue;
    }
    glob_t g{};
    // Unreadable directories count as no match, as Go's filepath.Glob.
    int rc = glob(path.c_str(), 0, nullptr, &g);
    if (rc == 0) {
      for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
    } else if (rc == GLOB_NOSPACE) {
      globfree(&g);
      throw Error(Code::kInvalidArgument,
                  name + ": imports: cannot expand pattern \"" + imp + "\" (" + path + ")");
    }
    globfree(&g);
  }
  return out;
}

// One file: parse, check version, migrate to version 3 (tree level).
struct FileTree {
  Tree tree;
  int version = 1;
  std::vector<std::string> imports;
};

FileTree ParseOne(std::string_view text, const std::string& name,
                  std::vector<std::string>& warnings) {
  FileTree f;
  f.tree = detail::ParseToml(text, name);
  Config top = FromTree(f.tree, name, nullptr);  // type checks, naming the file
  int version = f.tree.contains("version") ? top.version : 0;
  if (version < 0 || version > kCurrentVersion)
    throw Error(Code::kInvalidArgument,
                name + ": version = " + std::to_string(version) +
                    " is not supported: berth reads config versions 1, 2 and 3");
  if (version == 0) version = 1;  // containerd: an absent version means version 1
  f.version = version;
  f.imports = top.imports;
  if (version < kCurrentVersion) {
    Config c;
    c.plugins = f.tree.contains("plugins") ? f.tree["plugins"] : Tree::object();
    c.disabled_plugins = top.disabled_plugins;
    c.required_plugins = top.required_plugins;
    std::vector<std::string> w;
    MigrateToV3(c, version, w);
    for (auto& m : w) warnings.push_back(name + ": " + m);
    if (!c.plugins.empty() || f.tree.contains("plugins")) f.tree["plugins"] = c.plugins;
    if (f.tree.contains("disabled_plugins")) f.tree["disabled_plugins"] = c.disabled_plugins;
    if (f.tree.contains("required_plugins")) f.tree["required_plugins"] = c.required_plugins;
    warnings.push_back(name + ": configuration migrated from version " + std::to_string(version) +
                       "; use `berthd config migrate` to avoid migration on every start");
  }
  f.tree["version"] = kCurrentVersion;
  return f;
}

LoadResult Load(std::string_view text, const std::string& name, const std::string& dir) {
  LoadResult res;
  Tree merged = Tree::object();
  FileTree root = ParseOne(text, name, res.warnings);
  res.file_version = root.version;
  res.files.push_back(name);
  MergeTrees(merged, root.tree);

  std::set<std::string> loaded;
  std::error_code ec;
  auto canon = [&](const std::string& p) {
    auto c = std::filesystem::weakly_canonical(p, ec);
    return ec ? p : c.string();
  };
  loaded.insert(canon(name));
  std::deque<std::string> pending;
  for (auto& p : ResolveImports(dir, root.imports, name)) pending.push_back(p);
  while (!pending.empty()) {
    std::string path = pending.front();
    pending.pop_front();
    if (!loaded.insert(canon(path)).second) continue;
    if (loaded.size() > kMaxFiles)
      throw Error(Code::kInvalidArgument,
                  name + ": imports: more than " + std::to_string(kMaxFiles) + " files");
    std::string body;
    try {
      body = fs::ReadFile(path, 16u << 20);
    } catch (const Error& e) {
      throw Error(e.code(), name + ": imports: " + e.what());
    }
    FileTree f = ParseOne(body, path, res.warnings);
    if (f.version > root.version)
      throw Error(Code::kInvalidArgument,
                  path + ": imported config version " + std::to_string(f.version) +
                      " is higher than the root config version " + std::to_string(root.version) +
                      " (" + name + ")");
    res.files.push_back(path);
    MergeTrees(merged, f.tree);
    auto parent = std::filesystem::path(path).parent_path().string();
    for (auto& p : ResolveImports(parent, f.imports, path)) pending.push_back(p);
  }
  res.config = FromTree(merged, name, &res.warnings);
  res.config.version = kCurrentVersion;
  return res;
}

}  // namespace

LoadResult LoadFile(const std::string& path) {
  std::string text = fs::ReadFile(path, 16u << 20);
  auto dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  return Load(text, path, dir);
}

LoadResult LoadString(std::string_view toml, const std::string& name) {
  return Load(toml, name, ".");
}

Config Default() {
  Config c;
  c.plugins = Tree::object();
  c.plugins[kCRIImagesPluginURI] = Encode(DefaultImageConfig());
  c.plugins[kCRIRuntimePluginURI] = Encode(DefaultRuntimeConfig());
  c.plugins[kCRIServerPluginURI] = Encode(DefaultServerConfig());
  return c;
}

Tree ToTree(const Config& c) {
  Tree t = Tree::object();
  t["version"] = c.version;
  t["root"] = c.root;
  t["state"] = c.state;
  t["temp"] = c.temp;
  t["plugin_dir"] = c.plugin_dir;
  t["disabled_plugins"] = c.disabled_plugins;
  t["required_plugins"] = c.required_plugins;
  t["oom_score"] = c.oom_score;
  t["imports"] = c.imports;
  Tree g = Tree::object();
  g["address"] = c.grpc.address;
  g["tcp_address"] = c.grpc.tcp_address;
  g["tcp_tls_ca"] = c.grpc.tcp_tls_ca;
  g["tcp_tls_cert"] = c.grpc.tcp_tls_cert;
  g["tcp_tls_key"] = c.grpc.tcp_tls_key;
  g["uid"] = c.grpc.uid;
  g["gid"] = c.grpc.gid;
  g["max_recv_message_size"] = c.grpc.max_recv_message_size;
  g["max_send_message_size"] = c.grpc.max_send_message_size;
  Tree d = Tree::object();
  d["address"] = c.debug.address;
  d["uid"] = c.debug.uid;
  d["gid"] = c.debug.gid;
  d["level"] = c.debug.level;
  d["format"] = c.debug.format;
  if (c.extra.is_object()) {
    if (c.extra.contains("grpc") && c.extra["grpc"].is_object())
      for (const auto& [k, v] : c.extra["grpc"].items()) g[k] = v;
    if (c.extra.contains("debug") && c.extra["debug"].is_object())
      for (const auto& [k, v] : c.extra["debug"].items()) d[k] = v;
  }
  t["grpc"] = g;
  t["debug"] = d;
  if (c.extra.is_object()) {
    for (const auto& [k, v] : c.extra.items()) {
      if (k == "grpc" || k == "debug" || t.contains(k) || k == "plugins") continue;
      t[k] = v;
    }
  }
  t["plugins"] = c.plugins.is_object() ? c.plugins : Tree::object();
  return t;
}

std::string ToToml(const Config& c) { return detail::EmitToml(ToTree(c)); }

std::vector<std::string> UnimplementedPluginWarnings(const Config& c,
                                                     const std::set<std::string>& known_uris) {
  std::vector<std::string> out;
  if (!c.plugins.is_object()) return out;
  for (const auto& [uri, v] : c.plugins.items()) {
    if (known_uris.count(uri)) continue;
    out.push_back("plugin \"" + uri +
                  "\" is configured but not implemented by berth; its table is kept verbatim");
  }
  return out;
}

}  // namespace berth::config
