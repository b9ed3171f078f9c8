// What a streaming server's error stream carries at the end of exec or attach (a metav1.Status
// JSON, or before v4 a message), as berth's streaming client reads it: an exit code, or an Error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/error.h"
#include "streaming/client.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string s(reinterpret_cast<const char*>(data), size);
  try {
    int code = berth::streaming::client::ExitCodeFromStatus(s);
    if (code < 0) __builtin_trap();
  } catch (const berth::Error&) {
  }
  return 0;
}
