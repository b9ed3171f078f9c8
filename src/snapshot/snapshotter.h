// Snapshotters: layered file systems for image layers and container root file systems, in the
// layout of containerd's overlayfs and native snapshotters. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace berth::userns {
struct Mapping;
}

namespace berth::snapshot {

struct Mount {
  std::string type, source;
  std::vector<std::string> options;
};
enum class Kind { kView, kActive, kCommitted };
const char* KindName(Kind kind);  // "view" | "active" | "committed"
struct Info {
  std::string name, parent;
  Kind kind;
  int64_t created_unix = 0;
};
struct Usage {
  int64_t bytes = 0, inodes = 0;
};

class Snapshotter {
 public:
  virtual ~Snapshotter() = default;
  virtual std::string Name() const = 0;  // "overlayfs" | "native"
  // Errors: key exists -> kAlreadyExists; parent missing or not committed -> kNotFound /
  // kFailedPrecondition; empty parent means a snapshot with no parent.
  virtual std::vector<Mount> Prepare(const std::string& key,
                                     const std::string& parent) = 0;  // writable
  virtual std::vector<Mount> View(const std::string& key,
                                  const std::string& parent) = 0;  // read-only
  virtual std::vector<Mount> Mounts(const std::string& key) = 0;
  virtual std::string ApplyDir(
      const std::string& active_key) = 0;  // dir a layer is extracted into (overlay upperdir)
  virtual void Commit(const std::string& name, const std::string& key) = 0;  // key must be active
  // True when an active snapshot prepared without a parent may be committed on top of another
  // (overlayfs: a layer's upper dir does not depend on the layers below), so that the layers of
  // an image can be unpacked at the same time.
  virtual bool CanRebase() const { return false; }
  // Commit with `parent` (committed, or empty) as the new snapshot's parent; the active snapshot
  // must have been prepared without one. kUnimplemented unless CanRebase().
  virtual void CommitOnto(const std::string& name, const std::string& key,
                          const std::string& parent) = 0;
  virtual void Remove(
      const std::string& key) = 0;  // committed with children -> Error(kFailedPrecondition)
  virtual std::optional<Info> Stat(const std::string& key) = 0;
  virtual Usage GetUsage(const std::string& key) = 0;
  virtual std::vector<Info> List() = 0;
};

std::unique_ptr<Snapshotter> NewOverlay(const std::string& root);
std::unique_ptr<Snapshotter> NewNative(const std::string& root);  // plain copying snapshotter
bool OverlaySupported(const std::string& root);                   // real probe mount
// OverlaySupported with its answer kept on disk in cache_file (JSON, written atomically), valid
// for one boot of one kernel (release and /proc/sys/kernel/random/boot_id) and the file system
// under root (device and type); anything else, or a damaged file, runs the probe and rewrites it.
// Only answers the kernel gave are kept (mounted, or refused with ENODEV/EINVAL), never a failure
// for want of privilege. Empty cache_file: OverlaySupported(root). `cached` (optional) tells
// whether the answer came from the file.
bool OverlaySupportedCached(const std::string& root, const std::string& cache_file, bool* cached = nullptr);
void MountAll(const std::vector<Mount>& mounts, const std::string& target);  // mount(2) the result
void UnmountAll(const std::string& target);
// MountAll for a user-namespaced container, without copying or chown'ing anything: every overlay
// lower directory becomes a detached clone idmapped through the user namespace `userns_fd`
// (open_tree + mount_setattr(MOUNT_ATTR_IDMAP), overlay over idmapped layers needs Linux 5.19),
// passed to overlay as /proc/self/fd/N and held by the overlay mount alone (unmounting the rootfs
// releases them); the upper directory is owned by the mapped root (root_uid, root_gid). A bind
// mount (native snapshotter) becomes an idmapped bind. Throws Error naming the layer and the call.
void MountAllIdmapped(const std::vector<Mount>& mounts, const std::string& target, int userns_fd,
                      uint32_t root_uid, uint32_t root_gid);

// The slow path for a user-namespaced container where layers are not idmapped: the image's
// overlay lower directories merged into one tree (whiteouts and opaque directories applied, as
// overlay would) whose owners, POSIX ACL entries and file capability owners are shifted by the
// mapping; modes (set-uid/set-gid bits), times, xattrs, hard links, symlinks and device nodes
// kept. One copy per image snapshot and mapping, at <snapshot dir of the image's top
// layer>/userns-copies/<MappingKey>, removed with that snapshot (which no container's snapshot
// may outlive). It is built in `stage` and renamed into place when complete (after a sync).
struct ShiftedCopy {
  std::string dir;    // the merged, shifted tree ("" for an in-place shift)
  bool made = false;  // false: an existing copy was used
  double ms = 0;      // time the copy took when made
};
// u<container>-<host>-<length>_g... for the mapping's ranges.
std::string MappingKey(const userns::Mapping& m);
// The stage of the copy for `mounts` (a snapshot's overlay mount) made on behalf of `tag` (the
// container id): what an undo removes after a failed or interrupted copy. "" when not overlay.
std::string ShiftedCopyStage(const std::vector<Mount>& mounts, const std::string& tag);
ShiftedCopy EnsureShiftedCopy(const std::vector<std::string>& lowers, const userns::Mapping& m,
                              const std::string& cache_dir, const std::string& stage);
// MountAll on the shifted copy: overlay over the copy with the snapshot's upper directory (owned
// by the mapped root). A bind mount (the native snapshotter's own copy for the container) is
// shifted in place instead.
ShiftedCopy MountAllShifted(const std::vector<Mount>& mounts, const std::string& target,
                            const userns::Mapping& m, const std::string& tag);

}  // namespace berth::snapshot
