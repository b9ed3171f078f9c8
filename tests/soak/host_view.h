// What exists on the host below one berthd's directory: berth-monitor and berth-pause processes
// of its state dir, mounts, network namespace files, rro staging, cgroup directories. For the
// crash tests' invariants; scoped to the test's own directory.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace berth::testing {

struct HostView {
  std::map<std::string, int> monitors;  // id -> pid, berth-monitor with --bundle below state
  std::map<std::string, int>
      pauses;  // id -> pid, berth-pause --sandbox whose sandbox dir is below state
  std::vector<std::string> mounts;   // mount points below dir
  std::set<std::string> netns, rro;  // ids of <state>/netns/<id>, <state>/rro/<id>
  std::set<std::string> userns;      // ids of <state>/userns/<id> (pods' pinned user namespaces)
};
HostView ScanHost(const std::string& dir, const std::string& state);

// The cgroup directories of a cgroupfs path in every mounted hierarchy that exist.
std::vector<std::string> ExistingCgroups(const std::string& cgroups_path);

// The id a path below the state dir belongs to ("containers/<id>/...", "sandboxes/<id>/...",
// "netns/<id>", "userns/<id>", "rro/<id>/..."): {kind, id}, kind "" when it is none of those.
std::pair<std::string, std::string> StateOwner(const std::string& state, const std::string& path);

bool ProcessAlive(int pid);  // exists and is not a zombie

}  // namespace berth::testing
