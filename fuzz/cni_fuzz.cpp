// CNI network configurations and plugin results on hostile text: only berth::Error may come out;
// a parsed configuration has a name, a known version and plugins with plain names, and a parsed
// result's interface references are in range.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "network/cni.h"
#include "network/cni_config.h"
#include "network/cni_result.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto n = berth::network::ParseNetworkConfig(text, "fuzz.conflist");
    if (n.name.empty() || n.cni_version.empty() || n.types().empty()) abort();
    for (const auto& t : n.types()) {
      if (t.empty() || t.find('/') != std::string::npos) abort();
    }
  } catch (const berth::Error&) {
  }
  try {
    auto r = berth::network::ParseResult(text);
    for (const auto& ip : r.ips) {
      if (ip.interface >= static_cast<int>(r.interfaces.size())) abort();
    }
    (void)berth::network::InterfaceIPs(r, "eth0");
    nlohmann::json rec = {{"attachments", {{{"ifname", "eth0"}, {"result", r.raw}}}}};
    (void)berth::network::RecordIPs(rec, "ipv6");
  } catch (const berth::Error&) {
  }
  (void)berth::network::ParsePluginError(text);
  return 0;
}
