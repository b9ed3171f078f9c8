// Fuzzes the mountinfo parser and the audit on whatever it parses.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/error.h"
#include "mount/audit.h"
#include "mount/mountinfo.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto mounts = berth::mount::ParseMountInfo(text);
    berth::mount::AuditReadOnly(mounts);
    if (!mounts.empty()) berth::mount::AuditReadOnly(mounts, {mounts.front().mount_point});
  } catch (const berth::Error&) {
  }
  return 0;
}
