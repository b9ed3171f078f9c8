// The built-in pause started by berthd itself: berth-pause --sandbox sets the pod's namespaces,
// cgroups, sysctls and user up as the sandbox spec says and runs the pause, without the OCI
// runtime (a pod sandbox then costs a few milliseconds instead of a runtime container).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace berth::lifecycle {

struct PauseProcess {
  int waiter_pid = 0;  // berth-pause's waiter: the pause's parent, exits with it (watched)
  int pause_pid = 0;   // the pause: PID 1 of the pod's PID namespace (its namespaces are joined)
  int waiter_fd = -1;  // pidfd of the waiter, berthd's child: exec::Reap() once it has exited
};

// Starts `pause_binary --sandbox --id <id>` for the sandbox spec (oci::SandboxSpec: namespaces,
// hostname, linux.sysctl, process.oomScoreAdj and user, linux.cgroupsPath and cpu shares) with
// `root` (an empty directory) as its read-only root. Creates the cgroup directories. Throws
// Error: kInvalidArgument naming the sysctl the kernel refused, kInternal otherwise; what was
// created is left for RemovePauseCgroups and the caller's teardown.
PauseProcess StartPause(const std::string& pause_binary, const std::string& id, const nlohmann::json& spec,
                        const std::string& root);

// The cgroup directories of a cgroupfs cgroupsPath, one per mounted hierarchy (cgroup v1
// controllers, named hierarchies, cgroup2).
std::vector<std::string> CgroupDirs(const std::string& cgroups_path);

// Removes the sandbox's cgroup directories (not its parents); waits up to `timeout_ms` for the
// processes in them to be gone. Throws Error naming the directory that stays busy.
void RemovePauseCgroups(const std::string& cgroups_path, int timeout_ms = 2000);

}  // namespace berth::lifecycle
