// Status verbose info["config"]: the configuration as containerd's CRI plugin (1.6/1.7,
// pkg/cri/config) writes it as JSON, with its field names and nesting, so that
// `crictl info | jq .config.containerd.runtimes.runc.runtimeType` and tools reading
// `maxContainerLogSize`, `stateDir`, `cni.confDir` or `containerd.snapshotter` work unchanged.
// What containerd does not have goes under the key "berth" only.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/cri.h"

namespace berth::cri {

struct InfoConfigInput {
  config::RuntimeConfig runtime = config::DefaultRuntimeConfig();
  config::ImageConfig images = config::DefaultImageConfig();
  config::ServerConfig server = config::DefaultServerConfig();
  std::string containerd_root_dir;  // the daemon's root
  std::string containerd_endpoint;  // the daemon's socket
  std::string root_dir, state_dir;  // the CRI plugin's own directories
};

// Every field of containerd 1.7's Config, with berth's values.
nlohmann::ordered_json ContainerdInfoConfig(const InfoConfigInput& in);

}  // namespace berth::cri
