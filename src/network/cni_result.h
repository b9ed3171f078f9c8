// Results of CNI ADD (spec versions 0.1.0/0.2.0, 0.3.x, 0.4.0, 1.0.0 and 1.1.0) and plugin
// errors, parsed from a plugin's output. Pure logic.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace berth::network {

struct ResultInterface {
  std::string name, mac, sandbox;
};

struct ResultIP {
  std::string address;  // CIDR, "10.1.2.3/24"
  std::string gateway;
  int interface = -1;  // index into interfaces, -1 when absent
  bool v6 = false;
};

struct Result {
  std::string cni_version;
  std::vector<ResultInterface> interfaces;
  std::vector<ResultIP> ips;
  std::vector<std::string> dns_servers;
  nlohmann::json raw;  // as the plugin printed it: the next plugin's prevResult, and cached
};

// Parses a result. Throws Error (kInvalidArgument) naming what is wrong.
Result ParseResult(const std::string& data);
Result ParseResultJson(const nlohmann::json& doc);

// The addresses (without prefix length) of the interface named `ifname` that sits in a sandbox
// (1.0 results), or of every IP when the result names no interfaces (0.2.0 and older), in the
// result's order.
std::vector<std::string> InterfaceIPs(const Result& r, const std::string& ifname);

// A plugin's error output: {"cniVersion", "code", "msg", "details"}.
struct PluginError {
  bool parsed = false;
  int code = 0;
  std::string msg, details;
};
// Parses `out` when it holds a CNI error object; parsed = false otherwise.
PluginError ParsePluginError(const std::string& out);

}  // namespace berth::network
