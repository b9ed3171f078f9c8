#include "network/cni_config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "common/error.h"
#include "common/fs.h"

namespace berth::network {

namespace {

const std::vector<std::string> kKnownVersions = {"0.1.0", "0.2.0", "0.3.0", "0.3.1",
                                                 "0.4.0", "1.0.0", "1.1.0"};

bool Known(const std::string& v) {
  return std::find(kKnownVersions.begin(), kKnownVersions.end(), v) != kKnownVersions.end();
}

// Line and column (1-based) of byte offset `pos` in `data`.
std::string Position(const std::string& data, size_t pos) {
  pos = std::min(pos, data.size());
  size_t line = 1, col = 1;
  for (size_t i = 0; i < pos; ++i) {
    if (data[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return "line " + std::to_string(line) + " column " + std::to_string(col);
}

[[noreturn]] void Invalid(const std::string& file, const std::string& what) {
  throw Error(Code::kInvalidArgument, "invalid CNI network configuration " + file + ": " + what);
}

void CheckPlugin(const nlohmann::json& p, size_t i, const std::string& file) {
  std::string at = "plugins[" + std::to_string(i) + "]";
  if (!p.is_object()) Invalid(file, at + " is not an object");
  if (!p.contains("type") || !p["type"].is_string() || p["type"].get<std::string>().empty()) {
    Invalid(file, at + " has no \"type\"");
  }
  std::string type = p["type"].get<std::string>();
  if (type.find('/') != std::string::npos || type == "." || type == "..") {
    Invalid(file, at + ".type \"" + type + "\" is not a plugin name");
  }
  if (p.contains("capabilities") && !p["capabilities"].is_object())
    Invalid(file, at + ".capabilities is not an object");
}

std::string ChooseVersion(const nlohmann::json& conf, const std::string& file) {
  if (conf.contains("cniVersions")) {
    const auto& vs = conf["cniVersions"];
    if (!vs.is_array()) Invalid(file, "\"cniVersions\" is not an array");
    std::string best;
    for (const auto& v : vs) {
      if (!v.is_string()) Invalid(file, "\"cniVersions\" holds a non-string");
      std::string s = v.get<std::string>();
      if (Known(s) && (best.empty() || CompareVersions(s, best) > 0)) best = s;
    }
    if (!best.empty()) return best;
    if (!conf.contains("cniVersion"))
      Invalid(file, "none of \"cniVersions\" is a version berth speaks (0.1.0 to 1.1.0)");
  }
  if (!conf.contains("cniVersion") || !conf["cniVersion"].is_string()) {
    Invalid(file, "\"cniVersion\" is missing or not a string");
  }
  std::string v = conf["cniVersion"].get<std::string>();
  if (!Known(v))
    Invalid(file, "cniVersion \"" + v + "\" is not a version berth speaks (0.1.0 to 1.1.0)");
  return v;
}

bool IsExecutableFile(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

std::string JoinDirs(const std::vector<std::string>& dirs) {
  std::string s;
  for (const auto& d : dirs) s += (s.empty() ? "" : ", ") + d;
  return s.empty() ? "(none)" : s;
}

}  // namespace

std::vector<std::string> Network::types() const {
  std::vector<std::string> out;
  for (const auto& p : conf.value("plugins", nlohmann::json::array()))
    out.push_back(p.value("type", ""));
  return out;
}

int CompareVersions(const std::string& a, const std::string& b) {
  auto parts = [](const std::string& s) {
    std::vector<long> v;
    size_t i = 0;
    while (i <= s.size()) {
      size_t j = s.find('.', i);
      if (j == std::string::npos) j = s.size();
      long n = 0;
      for (size_t k = i; k < j && k < i + 9; ++k)
        n = std::isdigit(static_cast<unsigned char>(s[k])) ? n * 10 + (s[k] - '0') : n;
      v.push_back(n);
      i = j + 1;
    }
    while (v.size() < 3) v.push_back(0);
    return v;
  };
  auto pa = parts(a), pb = parts(b);
  for (size_t i = 0; i < std::max(pa.size(), pb.size()); ++i) {
    long x = i < pa.size() ? pa[i] : 0, y = i < pb.size() ? pb[i] : 0;
    if (x != y) return x < y ? -1 : 1;
  }
  return 0;
}

Network ParseNetworkConfig(const std::string& data, const std::string& file) {
  nlohmann::json conf;
  try {
    conf = nlohmann::json::parse(data);
  } catch (const nlohmann::json::parse_error& e) {
    Invalid(file, "parse error at " + Position(data, e.byte > 0 ? e.byte - 1 : 0) + ": " +
                      std::string(e.what()).substr(std::string(e.what()).find(':') + 2));
  }
  if (!conf.is_object()) Invalid(file, "not a JSON object");
  if (!conf.contains("plugins")) {
    // A single plugin's configuration: wrapped into a list, as libcni's ConfListFromConf does.
    if (!conf.contains("type")) Invalid(file, "neither \"plugins\" nor \"type\"");
    nlohmann::json list = nlohmann::json::object();
    for (const char* k : {"cniVersion", "cniVersions", "name", "disableCheck", "disableGC"}) {
      if (conf.contains(k)) list[k] = conf[k];
    }
    list["plugins"] = nlohmann::json::array({conf});
    conf = std::move(list);
  }
  if (!conf["plugins"].is_array()) Invalid(file, "\"plugins\" is not an array");
  if (conf["plugins"].empty()) Invalid(file, "\"plugins\" is empty");
  if (!conf.contains("name") || !conf["name"].is_string() ||
      conf["name"].get<std::string>().empty()) {
    Invalid(file, "\"name\" is missing or empty");
  }
  Network n;
  n.name = conf["name"].get<std::string>();
  n.cni_version = ChooseVersion(conf, file);
  for (size_t i = 0; i < conf["plugins"].size(); ++i) CheckPlugin(conf["plugins"][i], i, file);
  n.file = file;
  n.conf = std::move(conf);
  return n;
}

Network LoopbackNetwork() {
  Network n;
  n.name = "cni-loopback";
  n.cni_version = "1.0.0";
  n.conf = {
      {"cniVersion", "1.0.0"}, {"name", "cni-loopback"}, {"plugins", {{{"type", "loopback"}}}}};
  return n;
}

std::string FindPlugin(const std::string& type, const std::vector<std::string>& bin_dirs) {
  for (const auto& d : bin_dirs) {
    std::string p = fs::Join(d, type);
    if (IsExecutableFile(p)) return p;
  }
  return "";
}

LoadResult LoadNetworks(const std::string& dir, int max_conf_num,
                        const std::vector<std::string>& bin_dirs, bool need_loopback) {
  LoadResult r;
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string ext = e.path().extension().string();
    if ((ext == ".conf" || ext == ".conflist" || ext == ".json") && !e.is_directory())
      files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    if (max_conf_num > 0 && static_cast<int>(r.networks.size()) >= max_conf_num) break;
    try {
      r.networks.push_back(ParseNetworkConfig(fs::ReadFile(f, 1 << 20), f));
    } catch (const Error& e) {
      r.networks.clear();
      r.reason = "NetworkConfigInvalid";
      r.error = e.what();
      return r;
    }
  }
  if (r.networks.empty()) {
    r.unconfigured = true;
    r.reason = "NetworkPluginNotReady";
    r.error = "no network config found in " + dir + (ec ? " (" + ec.message() + ")" : "") +
              ": cni plugin not initialized";
    return r;
  }
  auto missing = [&](const std::string& t, const std::string& where) {
    if (!FindPlugin(t, bin_dirs).empty()) return false;
    r.reason = "NetworkPluginNotFound";
    r.error = "CNI plugin \"" + t + "\"" + where + " not found in " + JoinDirs(bin_dirs);
    return true;
  };
  if (need_loopback && missing("loopback", " (the loopback network)")) return r;
  for (const auto& n : r.networks) {
    for (const auto& t : n.types()) {
      if (missing(t, " of network \"" + n.name + "\" (" + n.file + ")")) return r;
    }
  }
  return r;
}

}  // namespace berth::network
