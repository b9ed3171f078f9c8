// Recursive read-only mounts on the host: the kernel probe, making a mount tree read-only, and the
// stager that prepares a read-only copy of a volume for runtimes without the `rro` option.
#pragma once

#include <set>
#include <string>
#include <vector>

namespace berth::mount {

struct KernelSupport {
  bool supported = false;
  std::string reason;  // why not (or what was proven when supported)
};

// Proves recursive read-only support on this kernel: in a forked child with a private mount
// namespace, mounts a tmpfs on a scratch directory and a second tmpfs below it, applies
// mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY) to the first and checks that creating a file in
// the submount fails with EROFS. Needs CAP_SYS_ADMIN; without it the answer is "unsupported" with
// the reason. The scratch directory is created (and removed) below `scratch_parent` ($TMPDIR or
// /tmp when empty). Never throws.
KernelSupport ProbeKernelUncached(const std::string& scratch_parent = "");
// Same, computed once per process.
const KernelSupport& ProbeKernel();

// ProbeKernel with its answer kept on disk in `cache_file` (e.g.
// <state>/io.containerd.grpc.v1.cri/probes/kernel.json), keyed by the kernel release and
// /proc/sys/kernel/random/boot_id: a reboot or another kernel invalidates it, so the first start
// after boot still probes. Only answers proven with CAP_SYS_ADMIN are written (an unprivileged
// "unsupported" says nothing about the kernel). A missing, unreadable, damaged or stale file is
// ignored and rewritten atomically. Empty `cache_file`: ProbeKernel(). `cached` (optional) tells
// whether the answer came from the file. Never throws.
KernelSupport ProbeKernelCached(const std::string& cache_file, bool* cached = nullptr);
// The key the kernel cache is written under: {"release": uname -r, "boot_id": ...}; empty
// strings when they cannot be read (then nothing is cached).
struct KernelCacheKey {
  std::string release, boot_id;
};
KernelCacheKey CurrentKernelCacheKey();

enum class RoMethod { kAuto, kMountSetattr, kRemount };
const char* RoMethodName(RoMethod m);  // "auto", "mount_setattr", "remount"

// Makes the mount at `path` (which must be a mount point) and every mount below it read-only.
// kAuto uses mount_setattr(2) with AT_RECURSIVE and falls back to kRemount where the kernel lacks
// it (ENOSYS). kRemount remounts each mount of the subtree (found in /proc/self/mountinfo) with
// MS_REMOUNT|MS_BIND|MS_RDONLY, keeping its nosuid/nodev/noexec/atime flags; unlike
// mount_setattr it is not atomic and does not cover mounts added later, so it is only safe on a
// private tree. Returns the method used. Throws Error naming the path and errno.
RoMethod MakeRecursiveReadOnly(const std::string& path, RoMethod method = RoMethod::kAuto);

// The fallback stager. StageReadOnly makes a private recursive bind mount of `source` at
// <state_dir>/rro/<container_id>/<n> (n = 0, 1, ...), makes it recursively read-only and returns
// that path; the container then bind-mounts the staged path with plain `rbind,ro`. Every staged
// mount is recorded in <state_dir>/rro/<container_id>/staged.json before it is mounted, so that
// CleanupStaged can undo it, also after a restart of the daemon. `source` must be an absolute
// path to an existing directory or file; container_id must be a single path element.
std::string StageReadOnly(const std::string& state_dir, const std::string& container_id,
                          const std::string& source, RoMethod method = RoMethod::kAuto);
// The same stager for idmapped volumes (runtimes without idmap mounts): a detached recursive
// clone of `source` idmapped through the user namespace `userns_fd` (read-only, every submount
// too, with `read_only`: an idmapped and recursively read-only volume), attached at
// <state_dir>/rro/<container_id>/<n>, recorded and cleaned up like the read-only ones.
std::string StageIdmapped(const std::string& state_dir, const std::string& container_id,
                          const std::string& source, int userns_fd, bool read_only);
// Unmounts (MNT_DETACH, deepest first) everything staged for the container and removes its
// directory. Missing state is fine. Throws Error when a mount cannot be removed.
void CleanupStaged(const std::string& state_dir, const std::string& container_id);
// Cleans up the staged mounts of every container under <state_dir>/rro not in `live_ids`.
// Returns the ids cleaned up.
std::vector<std::string> CleanupOrphans(const std::string& state_dir,
                                        const std::set<std::string>& live_ids);
// Staged paths recorded for a container (empty when none).
std::vector<std::string> StagedPaths(const std::string& state_dir, const std::string& container_id);

// True when this process can stage read-only trees itself: effective uid 0 with CAP_SYS_ADMIN in
// its effective capability set (then either mount_setattr or the remount route is available).
bool CanStage();

}  // namespace berth::mount
