// User namespaces of pods (KEP-127) in the lifecycle: the CRI rules, the spec edits and the
// steps RunPodSandbox and CreateContainer add for a pod whose userns_options mode is POD.
#pragma once

#include "lifecycle/service_impl.h"  // first: see internal.h

#include <optional>
#include <string>

#include "userns/userns.h"

namespace berth::lifecycle {

// The pod's mapping when its userns_options mode is POD; nullopt for the host's (NODE, none).
std::optional<userns::Mapping> PodUserns(const v1::PodSandboxConfig& cfg);

// The CRI rules of userns_options, checked before anything is created: NODE without mappings;
// POD with exactly one uid and one gid mapping that map container id 0, ranges that neither
// overlap nor overflow, the pod's own network, PID and IPC namespaces, and a handler that proved
// it can (FailedPrecondition with the reason otherwise); CONTAINER and TARGET refused naming the
// mode. Throws Error(kInvalidArgument) naming the field.
void ValidatePodUserns(const v1::PodSandboxConfig& cfg, const Handler& h, const Options& opts);

// What the handler proved (proven here, once, when the plugin did not).
HandlerUserns UsernsSupportOf(const Handler& h, const Options& opts);

// <state_dir>/userns/<sandbox id>: where the pod's user namespace is pinned.
std::string UsernsPath(const Options& opts, const std::string& sandbox_id);

// The user namespace at `path` with the mapping in linux.namespaces / uidMappings / gidMappings.
void AddUsernsToSpec(nlohmann::json& spec, const userns::Mapping& m, const std::string& path);

// The pod's root on the host (uid, gid of container id 0).
std::pair<uint32_t, uint32_t> HostRoot(const userns::Mapping& m);

// CreateContainer's checks for a container of a user-namespaced pod: its user and groups are
// mapped; a volume with uidMappings/gidMappings needs the pod's user namespace and valid ranges.
void ValidateContainerUserns(const v1::ContainerConfig& cfg,
                             const std::optional<userns::Mapping>& pod);
void CheckProcessMapped(const nlohmann::json& spec, const userns::Mapping& m);

// ContainerStatus verbose info: the spec's mappings and user namespace path, and with a running
// init (`pid`), its /proc uid_map and gid_map as the kernel applies them. Null without a userns.
nlohmann::json UsernsInfo(const nlohmann::json& spec, int pid);

// Pinned user namespaces of sandboxes without a record (after a restart): removed.
void SweepUsernsOrphans(
    const Options& opts, const std::map<std::string, std::shared_ptr<SandboxRecord>>& live,
    const std::function<void(const std::string&, const std::string&, const std::string&)>& decide);

}  // namespace berth::lifecycle
