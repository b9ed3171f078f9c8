// hosts.toml parsing (registry mirrors, CA files, headers) on hostile text: only berth::Error may
// come out, and every host that is returned has a scheme berth can talk to and a host name.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "image/hosts.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto hosts = berth::image::ParseHostsToml(text, "registry.example.com", "/etc/berth/certs.d/registry.example.com",
                                              "hosts.toml");
    for (const auto& h : hosts) {
      if (h.scheme != "http" && h.scheme != "https") abort();
      if (h.host.empty()) abort();
      (void)h.BaseURL();
    }
  } catch (const berth::Error&) {
  }
  return 0;
}
