// Host compatibility for OCI runtimes.
//
// Hybrid cgroup hosts (cgroup v1 controllers plus a cgroup2 mount at /sys/fs/cgroup/unified):
// crun 1.8 refuses to run there. The workaround runs the runtime in a private mount namespace in
// which /sys/fs/cgroup/unified is detached, so crun sees a plain cgroup v1 host. Nothing changes
// on the host: the namespace belongs to the runtime process (and the containers it creates
// inherit a copy of it, which they replace with their own mounts anyway). Mounts made on the host
// later (rootfs overlays of new containers) are seen by each new runtime invocation, since every
// invocation gets a fresh namespace.
//
// Two ways to use it:
//  - WrapArgv(argv) returns a command line that does the above with util-linux `unshare` and
//    `umount` and then execs argv; use it with exec::Run or any other spawner.
//  - EnterHybridCgroupWorkaround() does it in the calling process (for code that forks itself and
//    execs the runtime in the child); it only uses system calls and is safe after fork().
#pragma once

#include <string>
#include <vector>

namespace berth::runtime {

// The cgroup2 mount point of a hybrid host.
inline constexpr const char* kHybridUnifiedMount = "/sys/fs/cgroup/unified";

// True when /sys/fs/cgroup is cgroup v1 (not cgroup2) and a cgroup2 file system is mounted at
// /sys/fs/cgroup/unified (read from /proc/self/mountinfo).
bool IsHybridCgroupHost();

// True when `runtime_binary` (a path or name) is crun and this is a hybrid host.
bool NeedsHybridCgroupWorkaround(const std::string& runtime_binary);

// ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
//  "umount -l /sys/fs/cgroup/unified 2>/dev/null; exec \"$0\" \"$@\"", argv...]
// (absolute paths of unshare and sh). argv must not be empty.
std::vector<std::string> WrapArgvForHybridCgroup(const std::vector<std::string>& argv);

// argv wrapped when NeedsHybridCgroupWorkaround(argv[0]), otherwise argv as it is.
std::vector<std::string> RuntimeArgv(const std::vector<std::string>& argv);

// In the calling process: unshare(CLONE_NEWNS), make / rslave, umount2(unified, MNT_DETACH).
// Returns 0 or the errno of the failing step (EINVAL from umount2, i.e. nothing mounted there,
// is not a failure).
int EnterHybridCgroupWorkaround();

}  // namespace berth::runtime
