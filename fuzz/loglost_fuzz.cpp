// The lost-log count is read back by berthd while berth-monitor rewrites it in place: the parser
// must reject anything partial or malformed with a message and never crash, and what it accepts
// must survive a format/parse round trip unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "monitor/loglost.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using berth::monitor::LogLoss;
  std::string text(reinterpret_cast<const char*>(data), size);
  LogLoss l;
  if (!berth::monitor::ParseLogLoss(text, &l).empty()) return 0;
  LogLoss again;
  if (!berth::monitor::ParseLogLoss(berth::monitor::FormatLogLoss(l), &again).empty()) abort();
  if (again.entries != l.entries || again.bytes != l.bytes) abort();
  return 0;
}
