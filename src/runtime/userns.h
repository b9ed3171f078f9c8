// User namespace support of a runtime handler (KEP-127), proven on the host, never assumed:
//   - kernel: an idmapped mount on the file system of berth's root directory
//     (userns::ProbeIdmap, the check the CRI validation suite makes itself);
//   - runtime: a probe container (the static berth-rro-probe as its only file) run in a new user
//     namespace with a mapping; it must be denied a write into a host-root-owned 0700 directory
//     and allowed one into a directory owned by the mapped root, which proves it ran as the mapped
//     uid. Cached per runtime binary (path, mtime, size, device, inode) and kernel release.
#pragma once

#include <string>

namespace berth::runtime {

struct UsernsSupport {
  bool supported = false;
  std::string reason;          // why not, or what was proven
  std::string kernel, probe;   // each part's answer
  bool runtime_idmap = false;  // the runtime lists idmap mounts among its features
  bool kernel_idmap = false;   // the kernel idmapped a mount on berth's root file system
  bool runtime_ok = false;     // the probe container ran as the mapped uid
  std::string rootfs;          // "idmap" | "copy" (chown'ed copies) once a mode is applied
};

// `root_dir`: where the kernel probe makes its scratch directory (berth's root); `state_dir`: the
// probe container's bundle and the cache (<state_dir>/userns-probe/). Needs root. Never throws.
UsernsSupport DetectUserns(const std::string& runtime_binary, const std::string& root_dir,
                           const std::string& state_dir);

// What pods get under the userns_rootfs setting ("auto", "idmap", "copy"): `supported` and
// `rootfs` decided and the reason rewritten. "auto": idmapped layers when the kernel proved it
// can, else chown'ed copies; "idmap": unsupported without the kernel; "copy": always copies. The
// runtime probe must have passed in every mode.
UsernsSupport ApplyRootfsMode(UsernsSupport u, const std::string& mode);

}  // namespace berth::runtime
