// Fuzzes the CRI log line parser (berthctl logs) and the line splitter of berth-monitor.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "monitor/crilog.h"

namespace {
void Check(void* ctx, bool partial, std::string_view text) {
  auto max = *static_cast<long*>(ctx);
  if (max > 0 && text.size() > static_cast<size_t>(max)) __builtin_trap();
  if (text.find('\n') != std::string_view::npos) __builtin_trap();
  (void)partial;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t pos = 0;
  while (pos <= in.size()) {
    size_t nl = in.find('\n', pos);
    if (nl == std::string_view::npos) nl = in.size();
    berth::monitor::LogEntry e;
    if (berth::monitor::ParseLogLine(in.substr(pos, nl - pos), &e).empty()) {
      // A parsed entry formats back into a line that parses to the same text.
      std::string again;
      int64_t ns = 0;
      if (!berth::monitor::ParseTimestamp(e.timestamp, &ns)) __builtin_trap();
      berth::monitor::AppendLogEntry(again, ns, e.stream, e.partial, e.text);
      berth::monitor::LogEntry e2;
      if (!berth::monitor::ParseLogLine(again, &e2).empty() || e2.text != e.text ||
          e2.partial != e.partial || e2.stream != e.stream)
        __builtin_trap();
    }
    pos = nl + 1;
  }
  long max = size > 0 ? data[0] % 17 : 0;
  berth::monitor::LineSplitter s(max, Check, &max);
  for (size_t i = 1; i < size; i += 7) s.Feed(in.substr(i, 7));
  s.Finish();
  return 0;
}
