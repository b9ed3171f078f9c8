#include "runtime/hostcompat.h"

#include <sched.h>
#include <sys/mount.h>

#include <cerrno>

#include "common/error.h"
#include "common/exec.h"
#include "mount/mountinfo.h"

namespace berth::runtime {

bool IsHybridCgroupHost() {
  try {
    bool root_v1 = false, unified_v2 = false;
    for (const auto& m : mount::ReadMountInfo()) {
      if (m.mount_point == "/sys/fs/cgroup") root_v1 = m.fs_type != "cgroup2";
      if (m.mount_point == kHybridUnifiedMount) unified_v2 = m.fs_type == "cgroup2";
    }
    return root_v1 && unified_v2;
  } catch (const Error&) {
    return false;
  }
}

bool NeedsHybridCgroupWorkaround(const std::string& runtime_binary) {
  return DecideLaunch(runtime_binary).hybrid_launcher;
}

namespace {

std::string Tool(const char* name) {
  auto p = exec::LookPath(name);
  if (!p)
    throw Error(Code::kNotFound,
                std::string("hybrid cgroup launcher needs util-linux \"") + name + "\"");
  return *p;
}

}  // namespace

std::vector<std::string> WrapArgvForHybridCgroup(const std::vector<std::string>& argv) {
  if (argv.empty())
    throw Error(Code::kInvalidArgument, "hybrid cgroup launcher: empty command line");
  // Only the cgroup2 mount is made private (in the new namespace alone) before it is detached:
  // an unmount of a shared mount would propagate to the host. Nothing else changes propagation.
  const std::string u = kHybridUnifiedMount;
  std::vector<std::string> out{Tool("unshare"),
                               "--mount",
                               "--propagation",
                               "unchanged",
                               "/bin/sh",
                               "-c",
                               "'" + Tool("mount") + "' --make-private " + u + " && '" +
                                   Tool("umount") + "' -l " + u + " && exec \"$0\" \"$@\""};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

std::vector<std::string> RuntimeArgv(const std::vector<std::string>& argv) {
  if (!argv.empty() && NeedsHybridCgroupWorkaround(argv[0])) return WrapArgvForHybridCgroup(argv);
  return argv;
}

int EnterHybridCgroupWorkaround() {
  if (::unshare(CLONE_NEWNS) != 0) return errno;
  if (::mount(nullptr, kHybridUnifiedMount, nullptr, MS_PRIVATE, nullptr) != 0) return errno;
  if (::umount2(kHybridUnifiedMount, MNT_DETACH) != 0) return errno;
  return 0;
}

}  // namespace berth::runtime
