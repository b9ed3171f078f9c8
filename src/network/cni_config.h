// CNI network configurations as containerd reads them: .conf, .conflist and .json files of a
// directory, in lexical order, up to a maximum; a single plugin's .conf is wrapped into a list.
// Pure logic apart from reading the directory; no plugin is run here.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace berth::network {

// One network: a configuration list (spec 1.x "network configuration list").
struct Network {
  std::string name;
  std::string cni_version;  // the version the plugins are spoken to in
  std::string file;         // where it was read from ("" for built-in ones)
  nlohmann::json conf;      // {"cniVersion", "name", "plugins": [...], ...}
  std::vector<std::string> types() const;
};

// The newest CNI spec version berth speaks.
inline constexpr const char* kNewestCniVersion = "1.1.0";

// Compares dotted versions ("0.4.0" < "1.0.0"); non-numbers count as 0.
int CompareVersions(const std::string& a, const std::string& b);

// Parses a configuration list (or, when it has no "plugins" but a "type", a single plugin's
// configuration, wrapped into a list). `file` names the source in errors. Throws Error
// (kInvalidArgument) naming the file and, for JSON errors, the line and column; a list without
// plugins, a plugin without "type", a missing name or an invalid version are errors too.
// With "cniVersions" (spec 1.1), the newest listed version berth speaks is chosen.
Network ParseNetworkConfig(const std::string& data, const std::string& file);

// The loopback network containerd adds in front of the configured ones.
Network LoopbackNetwork();

// The result of loading a directory.
struct LoadResult {
  std::vector<Network> networks;  // in lexical order of their files, at most max_conf_num
  std::string error;              // "" when at least one network loaded and every plugin exists
  std::string reason;             // a short CamelCase reason with `error`
  bool unconfigured = false;      // no configuration file at all (not an invalid one)
};

// Reads `dir` (.conf, .conflist, .json; lexical order; at most `max_conf_num`, <= 0: no limit)
// and checks that every plugin type (and "loopback" with `need_loopback`) is an executable file
// in one of `bin_dirs`.
LoadResult LoadNetworks(const std::string& dir, int max_conf_num,
                        const std::vector<std::string>& bin_dirs, bool need_loopback);

// The path of plugin `type` in the first of `bin_dirs` that holds it as an executable file; "".
std::string FindPlugin(const std::string& type, const std::vector<std::string>& bin_dirs);

}  // namespace berth::network
