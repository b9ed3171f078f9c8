// Root file systems of user-namespaced containers on idmapped layers (snapshotter.h).
#include <sys/mount.h>
#include <unistd.h>

#include <cstring>

#include "common/error.h"
#include "snapshot/lowerdir.h"
#include "snapshot/snapshotter.h"
#include "userns/userns.h"

namespace berth::snapshot {

namespace {

void MountOverlayIdmapped(const Mount& m, const std::string& target, int userns_fd, uint32_t uid,
                          uint32_t gid) {
  std::vector<userns::Fd> layers;  // held until overlay has taken its own references
  std::string data;
  unsigned long flags = 0;
  for (const auto& o : m.options) {
    std::string out = o;
    if (o.rfind("lowerdir=", 0) == 0) {
      out = "lowerdir=";
      for (const auto& dir : SplitLowerdir(o.substr(9))) {
        layers.push_back(
            userns::IdmappedTree(dir, userns_fd, /*recursive=*/false, /*readonly=*/true));
        out += (out.size() > 9 ? ":" : "") + std::string("/proc/self/fd/") +
               std::to_string(layers.back().get());
      }
    } else if (o.rfind("upperdir=", 0) == 0) {
      std::string upper = o.substr(9);
      if (::chown(upper.c_str(), uid, gid) != 0)
        ThrowErrno("chown of the upper directory " + upper + " to the mapped root");
    } else if (o == "ro") {
      flags |= MS_RDONLY;
      continue;
    } else if (o == "rw") {
      continue;
    }
    data += (data.empty() ? "" : ",") + out;
  }
  if (data.size() >= static_cast<size_t>(::getpagesize()))
    throw Error(Code::kInvalidArgument,
                "mount overlay on " + target + ": too many layers for one mount");
  if (::mount("overlay", target.c_str(), "overlay", flags, data.c_str()) != 0)
    ThrowErrno("mount overlay on idmapped layers on " + target + " (needs Linux 5.19 or later)");
}

}  // namespace

void MountAllIdmapped(const std::vector<Mount>& mounts, const std::string& target, int userns_fd,
                      uint32_t root_uid, uint32_t root_gid) {
  if (mounts.size() != 1) {
    throw Error(Code::kUnimplemented, "idmapped root file system on " + target + ": " +
                                          std::to_string(mounts.size()) +
                                          " mounts (one overlay or bind mount expected)");
  }
  const auto& m = mounts[0];
  bool bind = m.type == "bind";
  for (const auto& o : m.options) bind = bind || o == "bind" || o == "rbind";
  if (m.type == "overlay") {
    MountOverlayIdmapped(m, target, userns_fd, root_uid, root_gid);
  } else if (bind) {
    bool ro = false;
    for (const auto& o : m.options) ro = ro || o == "ro";
    auto tree = userns::IdmappedTree(m.source, userns_fd, /*recursive=*/false, ro);
    userns::Attach(tree, target);
  } else {
    throw Error(Code::kUnimplemented,
                "idmapped root file system on " + target + ": mount type \"" + m.type + "\"");
  }
}

}  // namespace berth::snapshot
