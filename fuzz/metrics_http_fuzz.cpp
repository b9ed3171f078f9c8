// Fuzzes the metrics endpoint's request handling (request line, routing, responses) with any
// request head, and the label escaping of the exposition with any value.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "metrics/http.h"
#include "metrics/metrics.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string error;
  auto line = berth::metrics::ParseRequestLine(text, &error);
  if (!line && error.empty()) __builtin_trap();
  std::string response = berth::metrics::Respond(text);
  if (response.rfind("HTTP/1.1 ", 0) != 0) __builtin_trap();
  std::string label = berth::metrics::Label("v", text);
  if (label.find('\n') != std::string::npos) __builtin_trap();
  return 0;
}
