// User namespaces of pods (Kubernetes KEP-127): id mappings, user namespaces pinned by a bind
// mount of their namespace file (as network namespaces are), network namespaces owned by them,
// and idmapped mounts (open_tree(OPEN_TREE_CLONE) + mount_setattr(MOUNT_ATTR_IDMAP)).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace berth::userns {

// One range: container ids [container_id, container_id + length) are host ids [host_id, ...).
struct IDMap {
  uint32_t container_id = 0, host_id = 0, length = 0;
  bool operator==(const IDMap&) const = default;
};

struct Mapping {
  std::vector<IDMap> uids, gids;
  bool operator==(const Mapping&) const = default;
};

// "container_id 0, host_id 100000, length 65536": how errors name a range.
std::string Describe(const IDMap& m);
// The lines /proc/PID/uid_map takes: "0 100000 65536\n" per range.
std::string MapText(const std::vector<IDMap>& m);
// The host id of container id `id`, -1 when it is not mapped.
int64_t ToHost(const std::vector<IDMap>& m, uint32_t id);

// Checks a list of ranges as the kernel would take it: each length above 0, neither side past
// 2^32 - 1 (4294967295 is not a valid id), no two ranges overlapping on the container side or on
// the host side. Throws Error(kInvalidArgument) "<field>[i]: <why>: <range>".
void CheckRanges(const std::vector<IDMap>& m, const std::string& field);

// Pins a new user namespace with mapping `m` at `path` (an empty file it creates; it must not
// exist). A short-lived child is cloned into the namespace; berthd writes its uid_map and gid_map
// and bind-mounts /proc/<child>/ns/user onto `path`. Throws Error naming the path and the step.
void CreatePinned(const std::string& path, const Mapping& m);

// Both at once, as a pod needs them: a new user namespace with mapping `m` pinned at `path` and a
// new network namespace it owns (loopback up) pinned at `netns_path`, made by one clone
// (CLONE_NEWUSER|CLONE_NEWNET) of a short-lived child. Both files are created (they must not
// exist); on failure neither is left. Throws Error naming the paths and the step.
void CreatePinnedWithNetns(const std::string& path, const std::string& netns_path,
                           const Mapping& m);

// A new network namespace owned by the user namespace pinned at `userns_path`, loopback up, pinned
// at `netns_path` (an empty file it creates). A forked child joins the user namespace and unshares
// the network namespace; berthd bind-mounts it. Throws Error naming the path and the step.
void CreateNetnsIn(const std::string& userns_path, const std::string& netns_path);

// Unmounts (MNT_DETACH) and removes a pinned namespace file. A missing path is fine.
void RemovePinned(const std::string& path);

// True when `path` is a mounted namespace file.
bool IsPinned(const std::string& path);

// An O_CLOEXEC file descriptor, closed by the destructor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_;
};

// A user namespace with mapping `m` held only by the returned descriptor (no process, no pin).
Fd NewUsernsFd(const Mapping& m);
// The pinned namespace at `path`, opened.
Fd OpenNs(const std::string& path);

// A detached clone of the mount tree at `path` (with its submounts when `recursive`), idmapped
// through the user namespace `userns_fd`; with `readonly`, read-only too (every submount with
// `recursive`). Throws Error naming the path and the system call (EINVAL from mount_setattr: the
// file system cannot be idmapped).
Fd IdmappedTree(const std::string& path, int userns_fd, bool recursive, bool readonly);
// Attaches a detached mount (IdmappedTree) at `target` with move_mount(2).
void Attach(const Fd& tree, const std::string& target);

// Proves that the kernel can idmap a mount of the file system of `dir`: a scratch directory made
// below `dir` is cloned with open_tree, idmapped (0 -> 65534, length 1) and its owner read back
// through the clone. Needs CAP_SYS_ADMIN. `reason` says what was proven or why not. Never throws.
struct Support {
  bool supported = false;
  std::string reason;
};
Support ProbeIdmap(const std::string& dir);

}  // namespace berth::userns
