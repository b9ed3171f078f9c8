// Fuzzes the OCI runtime features parser.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/error.h"
#include "runtime/features.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = berth::runtime::ParseFeatures(std::string_view(reinterpret_cast<const char*>(data), size));
    (void)f.SupportsRRO();
    (void)f.SupportsUserns();
  } catch (const berth::Error&) {
  }
  return 0;
}
