// Exit files are read back from disk by berthd, also after a crash mid-write or a restart: the
// parser must reject anything partial or malformed with a message and never crash, and what it
// accepts must survive a format/parse round trip unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "monitor/exitfile.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using berth::monitor::ExitInfo;
  std::string text(reinterpret_cast<const char*>(data), size);
  ExitInfo info;
  std::string err = berth::monitor::ParseExitInfo(text, &info);
  if (!err.empty()) return 0;
  ExitInfo again;
  if (!berth::monitor::ParseExitInfo(berth::monitor::FormatExitInfo(info), &again).empty()) abort();
  if (again.exit_code != info.exit_code || again.exited_at_ns != info.exited_at_ns ||
      again.signal != info.signal || again.oom_killed != info.oom_killed)
    abort();
  return 0;
}
