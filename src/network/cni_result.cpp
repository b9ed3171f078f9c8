#include "network/cni_result.h"

#include <arpa/inet.h>

#include "common/error.h"

namespace berth::network {

namespace {

[[noreturn]] void Bad(const std::string& what) {
  throw Error(Code::kInvalidArgument, "invalid CNI result: " + what);
}

std::string Str(const nlohmann::json& o, const char* key, const std::string& at) {
  if (!o.contains(key)) return "";
  if (!o[key].is_string()) Bad(at + "." + key + " is not a string");
  return o[key].get<std::string>();
}

// "10.1.2.3/24" or "fd00::3/64": the address part must parse, the prefix be in range.
bool ParseCidr(const std::string& cidr, bool* v6) {
  size_t slash = cidr.find('/');
  if (slash == std::string::npos) return false;
  std::string addr = cidr.substr(0, slash), len = cidr.substr(slash + 1);
  if (len.empty() || len.size() > 3 || len.find_first_not_of("0123456789") != std::string::npos)
    return false;
  unsigned char buf[16];
  if (::inet_pton(AF_INET, addr.c_str(), buf) == 1) {
    *v6 = false;
    return std::stoi(len) <= 32;
  }
  if (::inet_pton(AF_INET6, addr.c_str(), buf) == 1) {
    *v6 = true;
    return std::stoi(len) <= 128;
  }
  return false;
}

ResultIP ParseIP(const nlohmann::json& j, const std::string& at, size_t n_ifaces) {
  if (!j.is_object()) Bad(at + " is not an object");
  ResultIP ip;
  ip.address = Str(j, "address", at);
  if (!ParseCidr(ip.address, &ip.v6))
    Bad(at + ".address \"" + ip.address + "\" is not an address with a prefix length");
  ip.gateway = Str(j, "gateway", at);
  if (j.contains("interface")) {
    if (!j["interface"].is_number_integer()) Bad(at + ".interface is not an integer");
    long long i = j["interface"].get<long long>();
    if (i < 0 || static_cast<size_t>(i) >= n_ifaces)
      Bad(at + ".interface " + std::to_string(i) + " is out of range");
    ip.interface = static_cast<int>(i);
  }
  return ip;
}

// 0.1.0 / 0.2.0: {"ip4": {"ip": ..., "gateway": ...}, "ip6": {...}, "dns": {...}}
void ParseLegacy(const nlohmann::json& doc, Result* r) {
  for (const char* fam : {"ip4", "ip6"}) {
    if (!doc.contains(fam)) continue;
    const auto& o = doc[fam];
    if (!o.is_object()) Bad(std::string(fam) + " is not an object");
    ResultIP ip;
    ip.address = Str(o, "ip", fam);
    if (!ParseCidr(ip.address, &ip.v6))
      Bad(std::string(fam) + ".ip \"" + ip.address + "\" is not an address with a prefix length");
    ip.gateway = Str(o, "gateway", fam);
    r->ips.push_back(ip);
  }
}

}  // namespace

Result ParseResult(const std::string& data) {
  auto doc = nlohmann::json::parse(data, nullptr, false);
  if (doc.is_discarded()) Bad("not JSON");
  return ParseResultJson(doc);
}

Result ParseResultJson(const nlohmann::json& doc) {
  if (!doc.is_object()) Bad("not a JSON object");
  Result r;
  r.cni_version = Str(doc, "cniVersion", "result");
  r.raw = doc;
  bool legacy = r.cni_version.empty() || r.cni_version == "0.1.0" || r.cni_version == "0.2.0";
  if (legacy) {
    ParseLegacy(doc, &r);
  } else {
    if (doc.contains("interfaces")) {
      if (!doc["interfaces"].is_array()) Bad("interfaces is not an array");
      for (size_t i = 0; i < doc["interfaces"].size(); ++i) {
        const auto& j = doc["interfaces"][i];
        std::string at = "interfaces[" + std::to_string(i) + "]";
        if (!j.is_object()) Bad(at + " is not an object");
        r.interfaces.push_back({Str(j, "name", at), Str(j, "mac", at), Str(j, "sandbox", at)});
      }
    }
    if (doc.contains("ips")) {
      if (!doc["ips"].is_array()) Bad("ips is not an array");
      for (size_t i = 0; i < doc["ips"].size(); ++i) {
        r.ips.push_back(
            ParseIP(doc["ips"][i], "ips[" + std::to_string(i) + "]", r.interfaces.size()));
      }
    }
  }
  if (doc.contains("dns")) {
    const auto& d = doc["dns"];
    if (!d.is_object()) Bad("dns is not an object");
    if (d.contains("nameservers")) {
      if (!d["nameservers"].is_array()) Bad("dns.nameservers is not an array");
      for (const auto& s : d["nameservers"]) {
        if (!s.is_string()) Bad("dns.nameservers holds a non-string");
        r.dns_servers.push_back(s.get<std::string>());
      }
    }
  }
  return r;
}

std::vector<std::string> InterfaceIPs(const Result& r, const std::string& ifname) {
  std::vector<std::string> out;
  for (const auto& ip : r.ips) {
    bool match = r.interfaces.empty() || ip.interface < 0;
    if (ip.interface >= 0 && static_cast<size_t>(ip.interface) < r.interfaces.size()) {
      const auto& itf = r.interfaces[ip.interface];
      match = itf.name == ifname && !itf.sandbox.empty();
    }
    if (match) out.push_back(ip.address.substr(0, ip.address.find('/')));
  }
  return out;
}

PluginError ParsePluginError(const std::string& out) {
  PluginError e;
  auto doc = nlohmann::json::parse(out, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("code") ||
      !doc["code"].is_number_integer())
    return e;
  e.parsed = true;
  e.code = doc["code"].get<int>();
  if (doc.contains("msg") && doc["msg"].is_string()) e.msg = doc["msg"].get<std::string>();
  if (doc.contains("details") && doc["details"].is_string())
    e.details = doc["details"].get<std::string>();
  return e;
}

}  // namespace berth::network
