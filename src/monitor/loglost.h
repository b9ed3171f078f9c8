// What berth-monitor could not write to a container's CRI log (a full or failing disk): the
// entries and bytes dropped, in "<bundle>/log-lost", which the monitor rewrites in place as they
// grow and berthd reads for ContainerStatus (verbose info "logLost", shown by `berthctl inspect`).
// Text, one "key value" per line:
//   entries 12        (CRI log lines not written)
//   bytes 1034        (their size as they would have been written)
// libc and the C++ standard library only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace berth::monitor {

struct LogLoss {
  uint64_t entries = 0;
  uint64_t bytes = 0;
};

std::string LogLossPath(const std::string& bundle);  // "<bundle>/log-lost"
std::string FormatLogLoss(const LogLoss& l);
// Returns "" on success, else what is wrong. Unknown keys are ignored.
std::string ParseLogLoss(std::string_view text, LogLoss* out);
// Reads "<bundle>/log-lost": zero counts when it does not exist (nothing was lost). Returns ""
// on success, else what is wrong (naming the file).
std::string ReadLogLoss(const std::string& bundle, LogLoss* out);

}  // namespace berth::monitor
