#include "runtime/v1/api.pb.h"  // first: its enum Signal names collide with <signal.h> macros

#include <algorithm>

#include "lifecycle/compat.h"
#include "monitor/client.h"

namespace berth::lifecycle {

Error AmbiguousIdPrefix(const std::string& key, const std::string& what, size_t matches) {
  return Error(Code::kInvalidArgument, "ID prefix \"" + key + "\" is ambiguous: it matches " +
                                           std::to_string(matches) + " " + what);
}

void CheckHostNetworkHostname(const ::runtime::v1::PodSandboxConfig& cfg) {
  if (cfg.linux().security_context().namespace_options().network() != ::runtime::v1::NODE) return;
  if (cfg.hostname().empty()) return;
  throw Error(Code::kInvalidArgument, "hostname \"" + cfg.hostname() +
                                          "\": unable to set hostname without a private UTS "
                                          "namespace (the pod uses the host's network; "
                                          "leave hostname empty to get the node's)");
}

StopWait WaitForStop(int monitor_pid, const std::string& id, std::chrono::milliseconds timeout,
                     const CancelCheck& cancelled) {
  using Clock = std::chrono::steady_clock;
  const auto end = Clock::now() + timeout;
  constexpr std::chrono::milliseconds kSlice(50);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
    if (left.count() <= 0) return StopWait::kTimedOut;
    auto slice = cancelled ? std::min(left, kSlice) : left;
    if (monitor::WaitMonitor(monitor_pid, id, slice)) return StopWait::kExited;
    if (cancelled && cancelled()) return StopWait::kCancelled;
  }
}

}  // namespace berth::lifecycle
