// Per-registry host configuration in containerd's `config_path` layout:
// <config_path>/<host>/hosts.toml (or <host>_<port>_ / host:port, then _default), with
//   server = "https://registry.example.com"
//   [host."https://mirror.example.com"]
//     capabilities = ["pull", "resolve"]
//     skip_verify = false
//     ca = "/etc/certs/mirror.pem"             # or a list; relative paths are below the host dir
//     client = [["/etc/certs/client.cert", "/etc/certs/client.key"]]
//     override_path = false                    # true: path is used as is, without "/v2"
//     [host."https://mirror.example.com".header]
//       x-custom = "1"
// Mirrors are tried in file order, then the server.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace berth::image {

struct RegistryHost {
  std::string scheme = "https";
  std::string host;         // "registry-1.docker.io", "127.0.0.1:5000"
  std::string path = "/v2"; // API root, without a trailing '/'
  bool pull = true, resolve = true, push = false;
  bool skip_verify = false;
  std::vector<std::string> ca_files;
  std::vector<std::pair<std::string, std::string>> client_certs;  // cert, key
  std::map<std::string, std::string> headers;
  // "https://host/v2"
  std::string BaseURL() const;
};

// Hosts to try for `registry` (a reference's domain): those configured under `config_path`, or the
// default: docker.io -> https://registry-1.docker.io; localhost / 127.0.0.0/8 / [::1] -> http.
// Throws Error(kInvalidArgument) naming the file for an invalid hosts.toml.
std::vector<RegistryHost> LoadHosts(const std::string& config_path, const std::string& registry);
// Parses one hosts.toml text (dir: its directory, for relative CA paths).
std::vector<RegistryHost> ParseHostsToml(const std::string& text, const std::string& registry,
                                         const std::string& dir, const std::string& source_name);
RegistryHost DefaultHost(const std::string& registry);

}  // namespace berth::image
