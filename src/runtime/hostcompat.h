// Host compatibility for OCI runtimes: how berth launches a runtime binary on this host.
//
// Hybrid cgroup hosts (cgroup v1 controllers plus a cgroup2 mount at /sys/fs/cgroup/unified):
// some runtimes (crun 1.8) refuse to run there. berth decides per runtime binary, by probing,
// whether to call it directly or through the hybrid-cgroup launcher:
//  - not a hybrid host: directly;
//  - a hybrid host: a probe container is created with the runtime called directly; if that works,
//    directly; if it fails and works through the launcher, through the launcher.
// The launcher runs the runtime in a new mount namespace that keeps every mount's propagation as
// on the host (so the containers it creates see host mounts made later, and bidirectional volumes
// reach the host), except /sys/fs/cgroup/unified, which is made private in that namespace only
// and then detached there, so the runtime sees a plain cgroup v1 host. The namespace belongs to
// the runtime process alone and ends with it; the containers' own mount namespaces are copies
// that keep the same propagation peers, as with a direct call.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace berth::runtime {

// The cgroup2 mount point of a hybrid host.
inline constexpr const char* kHybridUnifiedMount = "/sys/fs/cgroup/unified";

// True when /sys/fs/cgroup is cgroup v1 (not cgroup2) and a cgroup2 file system is mounted at
// /sys/fs/cgroup/unified (read from /proc/self/mountinfo).
bool IsHybridCgroupHost();

struct LaunchOptions {
  // Results are cached on disk in <state_dir>/probes/launch-*.json (keyed by the binary's path,
  // mtime, size, device and inode, the kernel release and the boot id); bundles of the probe
  // container are made below <state_dir>/launch-probe. Empty: $TMPDIR or /tmp, no disk cache.
  std::string state_dir;
  std::string probe_binary;  // the static program run in the probe container; "": FindProbeBinary()
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};
};

struct LaunchDecision {
  std::string binary;  // absolute path
  bool hybrid_host = false;
  bool hybrid_launcher = false;  // run through the hybrid-cgroup launcher
  // "host" (not a hybrid host: nothing to probe), "probe" (a probe container decided),
  // "unproven" (the probe container could not run either way; the launcher is used on hybrid
  // hosts since it works for every runtime there).
  std::string determined_by;
  std::string reason;  // why, with what the runtime said
  bool cached = false;
};

// How to launch `runtime_binary` (a path or a name looked up in PATH). Cached in memory per
// binary identity and, with opts.state_dir, on disk. Needs root to probe. Never throws.
LaunchDecision DecideLaunch(const std::string& runtime_binary, const LaunchOptions& opts = {});
nlohmann::json LaunchDecisionToJson(const LaunchDecision& d);
void ClearLaunchCache();

// DecideLaunch(runtime_binary).hybrid_launcher.
bool NeedsHybridCgroupWorkaround(const std::string& runtime_binary);

// [unshare, --mount, --propagation, unchanged, /bin/sh, -c,
//  "mount --make-private U && umount -l U && exec \"$0\" \"$@\"", argv...]
// (absolute paths of unshare, mount and umount; U = /sys/fs/cgroup/unified). argv must not be
// empty.
std::vector<std::string> WrapArgvForHybridCgroup(const std::vector<std::string>& argv);

// argv wrapped when NeedsHybridCgroupWorkaround(argv[0]), otherwise argv as it is.
std::vector<std::string> RuntimeArgv(const std::vector<std::string>& argv);

// The launcher in the calling process (for code that forks itself and execs the runtime in the
// child; only system calls, safe after fork()): unshare(CLONE_NEWNS), make
// /sys/fs/cgroup/unified private, umount2(it, MNT_DETACH). Every other mount keeps its
// propagation. Returns 0 or the errno of the failing step.
int EnterHybridCgroupWorkaround();

}  // namespace berth::runtime
