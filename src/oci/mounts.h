// OCI mount entries for CRI volume mounts, with read-only, recursive read-only (rro) and
// propagation handled as containerd's CRI plugin does (internal/cri/opts WithMounts).
//
// Only volume mounts (CRI Mount messages) go through here; the runtime's own mounts
// (/proc, /dev, /sys, /sys/fs/cgroup, ...) are never changed by the rro settings.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace berth::oci {

// CRI MountPropagation.
enum class Propagation { kPrivate = 0, kHostToContainer = 1, kBidirectional = 2 };

// A volume mount as the CRI describes it.
struct VolumeMount {
  std::string container_path;
  std::string host_path;
  bool readonly = false;
  Propagation propagation = Propagation::kPrivate;
  bool recursive_read_only = false;  // KEP-3857 per-mount request
  bool selinux_relabel = false;
};

// The runtime handler's resolved recursive read-only behaviour (see runtime/rro.h).
struct HandlerRRO {
  bool enabled = false;            // treat_ro_mounts_as_rro resolved on
  bool via_fallback = false;       // ... through berth's stager rather than the runtime's `rro`
  bool supported_for_kep = false;  // per-mount recursive_read_only can be honoured
  bool kep_via_fallback = false;   // ... through berth's stager
};

// One OCI config.json mounts[] entry.
struct Mount {
  std::string destination;
  std::string type = "bind";
  std::string source;
  std::vector<std::string> options;
};

struct MountPlan {
  Mount mount;
  // The caller must stage mount.source read-only (mount::StageReadOnly) and replace mount.source
  // with the staged path; the options then carry a plain "ro", which on top of the staged tree
  // is recursively read-only.
  bool stage_read_only = false;
  // BIDIRECTIONAL: the container's rootfs propagation must be shared (linux.rootfsPropagation
  // "rshared") for mounts to travel back to the host.
  bool needs_shared_rootfs = false;
  // HOST_TO_CONTAINER: the container's rootfs propagation must be at least slave
  // ("rslave", unless "rshared" is needed) for host mounts to reach it. runc defaults to rslave,
  // crun to rprivate, so it is set explicitly, as containerd does.
  bool needs_slave_rootfs = false;
  bool selinux_relabel = false;
  // The host path as mounted: symlinks resolved.
  std::string resolved_host_path;
};

// Checks and resolves the host path, then builds the mount:
//   options "rbind" + propagation ("rprivate", "rslave" for HOST_TO_CONTAINER, "rshared" for
//   BIDIRECTIONAL) + one of:
//   - recursive_read_only: requires readonly (else "recursive read-only mount conflicts with RW
//     mount"), PRIVATE propagation (else "recursive read-only mount needs private propagation")
//     and a handler that can do it (else an error containing "RROUnsupported", code
//     kFailedPrecondition); gives "rro", or "ro" with stage_read_only when only the fallback can.
//   - readonly: "rro" when the handler's treat_ro_mounts_as_rro resolved on and the host path is
//     a directory (staged with "ro" when via the fallback), else "ro".
//   - otherwise "rw".
// Errors (berth::Error, kInvalidArgument unless said otherwise) name the container path: empty or
// relative container path, relative host path, missing host path.
MountPlan PlanVolumeMount(const VolumeMount& v, const HandlerRRO& rro);

// {"destination", "type", "source", "options"}.
nlohmann::json MountToJson(const Mount& m);

const char* PropagationName(Propagation p);  // "PROPAGATION_PRIVATE", ...

}  // namespace berth::oci
