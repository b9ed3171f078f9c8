// The mount audit: finds writable mounts below paths that were meant to be read-only, which is
// what a plain (non-recursive) read-only bind mount leaves behind.
#pragma once

#include <string>
#include <vector>

#include "mount/mountinfo.h"

namespace berth::mount {

struct AuditFinding {
  std::string requested;    // the read-only path the finding is under
  std::string mount_point;  // the writable mount
  std::string fs_type;
  std::string source;
  int mount_id = 0;
  std::string reason;  // "tmpfs on /vol/sub is writable (per-mount options rw,relatime, super options rw) below read-only /vol"
};

// Audits `mounts` (a process's mountinfo). With `readonly_paths` given, every mount at or below
// each path is checked and each writable one is a finding. With none given, every mount whose own
// per-mount options say "ro" is taken as a read-only request, except "/" (a read-only root file
// system has writable /dev, /proc... mounted on purpose), and the writable mounts below it are the
// findings. A mount is writable when neither its per-mount options nor its super-block options
// say "ro". Each writable mount is reported once, under the closest request.
std::vector<AuditFinding> AuditReadOnly(const std::vector<MountInfo>& mounts,
                                        const std::vector<std::string>& readonly_paths = {});

}  // namespace berth::mount
