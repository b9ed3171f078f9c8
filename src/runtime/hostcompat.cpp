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
  auto slash = runtime_binary.rfind('/');
  std::string base = slash == std::string::npos ? runtime_binary : runtime_binary.substr(slash + 1);
  return base == "crun" && IsHybridCgroupHost();
}

std::vector<std::string> WrapArgvForHybridCgroup(const std::vector<std::string>& argv) {
  if (argv.empty()) throw Error(Code::kInvalidArgument, "hybrid cgroup workaround: empty command line");
  auto unshare = exec::LookPath("unshare");
  if (!unshare) throw Error(Code::kNotFound, "hybrid cgroup workaround needs util-linux \"unshare\"");
  std::vector<std::string> out{*unshare, "--mount", "--propagation", "private", "/bin/sh", "-c",
                               std::string("umount -l ") + kHybridUnifiedMount +
                                   " 2>/dev/null; exec \"$0\" \"$@\""};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

std::vector<std::string> RuntimeArgv(const std::vector<std::string>& argv) {
  if (!argv.empty() && NeedsHybridCgroupWorkaround(argv[0])) return WrapArgvForHybridCgroup(argv);
  return argv;
}

int EnterHybridCgroupWorkaround() {
  if (::unshare(CLONE_NEWNS) != 0) return errno;
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) return errno;
  if (::umount2(kHybridUnifiedMount, MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) return errno;
  return 0;
}

}  // namespace berth::runtime
