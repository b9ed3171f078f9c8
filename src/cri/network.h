// CNI networks of the CRI plugin: built from the runtime plugin's cni configuration, and the
// NetworkReady condition of Status.
#pragma once

#include <map>
#include <memory>
#include <string>

namespace runtime::v1 {
class RuntimeCondition;
}
namespace berth::criplugins {
class CRIRuntimePlugin;
}
namespace berth::lifecycle {
struct Options;
}
namespace berth::network {
class Cni;
}

namespace berth::cri {

// The default networks (cni.conf_dir) into o->cni, and a handler's own (cni_conf_dir) into its
// Handler::cni. Returns the default ones; null (and no CNI at all) when conf_dir is "".
std::shared_ptr<network::Cni> AttachNetworks(const criplugins::CRIRuntimePlugin& plugin,
                                             lifecycle::Options* o);

// NetworkReady from `cni` (null: not configured); with `info`, "lastCNILoadStatus" and
// "cniNetworks" (the loaded networks as JSON) are added.
void FillNetworkReady(network::Cni* cni, runtime::v1::RuntimeCondition* cond,
                      std::map<std::string, std::string>* info);

}  // namespace berth::cri
