#include "image/hosts.h"

#include <dirent.h>

#include <algorithm>
#include <toml++/toml.h>

#include "common/error.h"
#include "common/fs.h"

namespace berth::image {
namespace {

bool IsLocalhost(const std::string& registry) {
  std::string host = registry;
  if (!host.empty() && host.front() == '[') {
    host = host.substr(1, host.find(']') - 1);
    return host == "::1";
  }
  host = host.substr(0, host.find(':'));
  return host == "localhost" || host.rfind("127.", 0) == 0;
}

[[noreturn]] void Bad(const std::string& source, const std::string& why) {
  throw Error(Code::kInvalidArgument, "invalid hosts configuration " + source + ": " + why);
}

// "https://mirror:5000/some/path" -> scheme, host, path
void ParseURL(const std::string& url, RegistryHost& h, bool override_path, const std::string& source) {
  std::string rest = url;
  size_t sep = rest.find("://");
  if (sep != std::string::npos) {
    h.scheme = rest.substr(0, sep);
    rest = rest.substr(sep + 3);
  } else {
    h.scheme = "https";
  }
  if (h.scheme != "http" && h.scheme != "https") Bad(source, "unsupported scheme in \"" + url + "\"");
  size_t slash = rest.find('/');
  h.host = rest.substr(0, slash);
  if (h.host.empty()) Bad(source, "no host in \"" + url + "\"");
  for (char c : h.host)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' || c == '[' ||
          c == ']' || c == '_'))
      Bad(source, "invalid host in \"" + url + "\"");
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.pop_back();
  if (override_path) {
    h.path = path;
  } else if (path.empty()) {
    h.path = "/v2";
  } else {
    h.path = path.size() >= 3 && path.compare(path.size() - 3, 3, "/v2") == 0 ? path : path + "/v2";
  }
}

std::vector<std::string> StringList(const toml::node* n, const std::string& source, const std::string& key) {
  std::vector<std::string> out;
  if (!n) return out;
  if (auto s = n->value<std::string>()) {
    out.push_back(*s);
  } else if (auto arr = n->as_array()) {
    for (const auto& e : *arr) {
      auto v = e.value<std::string>();
      if (!v) Bad(source, "\"" + key + "\" must be a string or a list of strings");
      out.push_back(*v);
    }
  } else {
    Bad(source, "\"" + key + "\" must be a string or a list of strings");
  }
  return out;
}

void ApplyFields(const toml::table& t, RegistryHost& h, const std::string& dir, const std::string& source,
                 bool default_push) {
  if (const toml::node* caps = t.get("capabilities")) {
    h.pull = h.resolve = h.push = false;
    for (const std::string& c : StringList(caps, source, "capabilities")) {
      if (c == "pull") h.pull = true;
      else if (c == "resolve") h.resolve = true;
      else if (c == "push") h.push = true;
      else Bad(source, "unknown capability \"" + c + "\"");
    }
  } else {
    h.pull = h.resolve = true;
    h.push = default_push;
  }
  if (const toml::node* sv = t.get("skip_verify")) {
    auto b = sv->value<bool>();
    if (!b) Bad(source, "\"skip_verify\" must be a boolean");
    h.skip_verify = *b;
  }
  for (std::string ca : StringList(t.get("ca"), source, "ca")) {
    if (!ca.empty() && ca.front() != '/') ca = fs::Join(dir, ca);
    h.ca_files.push_back(ca);
  }
  if (const toml::node* cl = t.get("client")) {
    auto add = [&](std::string cert, std::string key) {
      if (!cert.empty() && cert.front() != '/') cert = fs::Join(dir, cert);
      if (!key.empty() && key.front() != '/') key = fs::Join(dir, key);
      h.client_certs.emplace_back(cert, key);
    };
    if (auto s = cl->value<std::string>()) {
      add(*s, "");
    } else if (auto arr = cl->as_array()) {
      for (const auto& e : *arr) {
        if (auto s2 = e.value<std::string>()) {
          add(*s2, "");
        } else if (auto pair = e.as_array(); pair && pair->size() == 2 && (*pair)[0].value<std::string>() &&
                                              (*pair)[1].value<std::string>()) {
          add(*(*pair)[0].value<std::string>(), *(*pair)[1].value<std::string>());
        } else {
          Bad(source, "\"client\" entries must be a path or a [cert, key] pair");
        }
      }
    } else {
      Bad(source, "\"client\" must be a path or a list");
    }
  }
  if (const toml::node* hd = t.get("header")) {
    auto ht = hd->as_table();
    if (!ht) Bad(source, "\"header\" must be a table");
    for (const auto& [k, v] : *ht) {
      auto vals = StringList(&v, source, "header." + std::string(k.str()));
      if (!vals.empty()) h.headers[std::string(k.str())] = vals.front();
    }
  }
}

}  // namespace

std::string RegistryHost::BaseURL() const { return scheme + "://" + host + path; }

RegistryHost DefaultHost(const std::string& registry) {
  RegistryHost h;
  h.push = true;
  if (registry == "docker.io") {
    h.host = "registry-1.docker.io";
  } else {
    h.host = registry;
    if (IsLocalhost(registry)) h.scheme = "http";
  }
  return h;
}

std::vector<RegistryHost> ParseHostsToml(const std::string& text, const std::string& registry,
                                         const std::string& dir, const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    Bad(source, std::string(e.description()) + " at line " + std::to_string(e.source().begin.line));
  }
  std::vector<RegistryHost> hosts;
  if (const toml::node* hs = root.get("host")) {
    const toml::table* ht = hs->as_table();
    if (!ht) Bad(source, "\"host\" must be a table of hosts");
    // File order: toml++ tables are sorted by key, so order by source position.
    std::vector<std::pair<std::string, const toml::table*>> entries;
    for (const auto& [k, v] : *ht) {
      const toml::table* t = v.as_table();
      if (!t) Bad(source, "host \"" + std::string(k.str()) + "\" must be a table");
      entries.emplace_back(std::string(k.str()), t);
    }
    std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
      const auto& sa = a.second->source().begin;
      const auto& sb = b.second->source().begin;
      return sa.line != sb.line ? sa.line < sb.line : sa.column < sb.column;
    });
    for (const auto& [url, t] : entries) {
      RegistryHost h;
      bool override_path = t->get("override_path") && t->get("override_path")->value_or(false);
      ParseURL(url, h, override_path, source);
      ApplyFields(*t, h, dir, source, /*default_push=*/false);
      hosts.push_back(std::move(h));
    }
  }
  // The server: explicit `server`, or the registry's default; capabilities etc. from the top level.
  RegistryHost server = DefaultHost(registry);
  if (const toml::node* s = root.get("server")) {
    auto url = s->value<std::string>();
    if (!url) Bad(source, "\"server\" must be a string");
    bool override_path = root.get("override_path") && root.get("override_path")->value_or(false);
    ParseURL(*url, server, override_path, source);
  }
  ApplyFields(root, server, dir, source, /*default_push=*/true);
  hosts.push_back(std::move(server));
  return hosts;
}

std::vector<RegistryHost> LoadHosts(const std::string& config_path, const std::string& registry) {
  if (!config_path.empty()) {
    std::vector<std::string> dirs;
    size_t colon = registry.rfind(':');
    if (colon != std::string::npos && colon > 0)
      dirs.push_back(fs::Join(config_path, registry.substr(0, colon) + "_" + registry.substr(colon + 1) + "_"));
    dirs.push_back(fs::Join(config_path, registry));
    dirs.push_back(fs::Join(config_path, "_default"));
    for (const std::string& d : dirs) {
      if (!fs::IsDir(d)) continue;
      std::string file = fs::Join(d, "hosts.toml");
      if (fs::Exists(file)) return ParseHostsToml(fs::ReadFile(file, 1u << 20), registry, d, file);
      // Docker's certs.d layout: *.crt are CAs, <name>.cert + <name>.key client certificates.
      RegistryHost h = DefaultHost(registry);
      std::vector<std::string> names;
      if (DIR* dir = opendir(d.c_str())) {
        while (dirent* e = readdir(dir)) names.emplace_back(e->d_name);
        closedir(dir);
      }
      std::sort(names.begin(), names.end());
      auto ends_with = [](const std::string& n, const std::string& suf) {
        return n.size() > suf.size() && n.compare(n.size() - suf.size(), suf.size(), suf) == 0;
      };
      for (const std::string& n : names) {
        if (ends_with(n, ".crt")) h.ca_files.push_back(fs::Join(d, n));
        if (ends_with(n, ".cert")) {
          std::string key = n.substr(0, n.size() - 5) + ".key";
          if (std::find(names.begin(), names.end(), key) != names.end())
            h.client_certs.emplace_back(fs::Join(d, n), fs::Join(d, key));
        }
      }
      return {h};
    }
  }
  return {DefaultHost(registry)};
}

}  // namespace berth::image
