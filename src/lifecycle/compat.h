// Behaviour berth shares with containerd's CRI plugin where kubelet and tools can see it, kept
// apart from the long CRI calls: ID prefixes (containerd's truncindex), the refusal of a custom
// hostname on a host-network pod, and a stop wait that gives up when the caller does.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "common/error.h"

namespace runtime::v1 {
class PodSandboxConfig;
}

namespace berth::lifecycle {

// Error(kInvalidArgument, "ID prefix \"<key>\" is ambiguous: it matches <n> <what>").
Error AmbiguousIdPrefix(const std::string& key, const std::string& what, size_t matches);

// The object a full ID or a unique prefix of one names in `m` (a map keyed by ID), as
// containerd's truncindex resolves them: an exact match wins; else the one key starting with
// `key`; null when none does; AmbiguousIdPrefix when several do. `what`: the objects' plural
// ("containers").
template <typename M>
typename M::mapped_type LookupIdPrefix(const M& m, const std::string& key,
                                       const std::string& what) {
  if (key.empty()) return {};
  auto it = m.find(key);
  if (it != m.end()) return it->second;
  typename M::mapped_type found{};
  size_t n = 0;
  for (auto i = m.lower_bound(key); i != m.end() && i->first.compare(0, key.size(), key) == 0;
       ++i, ++n)
    found = i->second;
  if (n > 1) throw AmbiguousIdPrefix(key, what, n);
  return found;
}

// A pod in the host's network namespace shares the node's UTS namespace, so it cannot have a
// hostname of its own: Error(kInvalidArgument) when `cfg` asks for one (containerd refuses it
// through runc: "unable to set hostname without a private UTS namespace").
void CheckHostNetworkHostname(const ::runtime::v1::PodSandboxConfig& cfg);

// True once the caller of a CRI call has gone (cancelled, or its deadline has passed).
using CancelCheck = std::function<bool()>;

enum class StopWait { kExited, kTimedOut, kCancelled };
// Waits up to `timeout` for the monitor of container `id` to exit, checking `cancelled` (may be
// empty) every 50 ms.
StopWait WaitForStop(int monitor_pid, const std::string& id, std::chrono::milliseconds timeout,
                     const CancelCheck& cancelled);

}  // namespace berth::lifecycle
