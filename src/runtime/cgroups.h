// Removing a container's or a sandbox's cgroups (cgroupfs), as the OCI runtimes do on delete.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace berth::runtime {

// SIGKILLs every process left in the cgroups `dirs` and removes them, with any cgroup below
// them (deepest first), retrying while the killed processes are on their way out. Returns the
// first directory still there after `timeout`, "" when all are gone.
std::string KillAndRemoveCgroups(const std::vector<std::string>& dirs, std::chrono::milliseconds timeout);

}  // namespace berth::runtime
