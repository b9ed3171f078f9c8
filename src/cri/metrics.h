// The CRI plugin's scrape-time metrics: pods and containers by state and runtime handler, and the
// recursive read-only resolution of each runtime handler (see docs/operations.md).
#pragma once

#include <memory>

namespace berth::lifecycle {
class RuntimeService;
}
namespace berth::criplugins {
class CRIRuntimePlugin;
}

namespace berth::cri {

// Adds a metrics collector reading `pods` (held weakly: a closed service reports nothing) and the
// handlers of `runtime`.
void RegisterStateMetrics(std::weak_ptr<lifecycle::RuntimeService> pods,
                          std::shared_ptr<const criplugins::CRIRuntimePlugin> runtime);

}  // namespace berth::cri
