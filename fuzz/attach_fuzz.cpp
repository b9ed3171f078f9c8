// Messages berth-monitor reads on its attach socket (monitor/attach.h): anything is rejected or
// parsed without a crash, and what is accepted is exactly what its canonical form says.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "monitor/attach.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto m = berth::monitor::ParseAttachMessage(text);
  std::string canonical;
  if (m.kind == "attach") {
    canonical =
        std::string("attach ") + (m.in ? "1" : "0") + (m.out ? " 1" : " 0") + (m.err ? " 1" : " 0");
  } else if (m.kind == "resize") {
    if (m.width > 65535 || m.height > 65535) abort();
    canonical = "resize " + std::to_string(m.width) + " " + std::to_string(m.height);
  } else if (!m.kind.empty()) {
    abort();
  }
  if (!m.kind.empty()) {
    auto again = berth::monitor::ParseAttachMessage(canonical);
    if (again.kind != m.kind || again.in != m.in || again.out != m.out || again.err != m.err ||
        again.width != m.width || again.height != m.height)
      abort();
  }
  return 0;
}
