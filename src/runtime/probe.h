// The rro probe container: proves that an OCI runtime honours the `rro` mount option when the
// runtime has no `features` command (crun 1.8). The container's root file system is the static
// berth-rro-probe program alone; it bind-mounts (rbind,rro) a scratch directory with a tmpfs
// submount at /vol and tries to write into /vol/sub: EROFS proves rro.
#pragma once

#include <chrono>
#include <string>

namespace berth::runtime {

struct ProbeOptions {
  // The berth-rro-probe binary; empty: FindProbeBinary().
  std::string probe_binary;
  // Bundles are created below <state_dir>/rro-probe and results cached on disk there (keyed by
  // runtime path, mtime, size, device and inode, and kernel release). Empty: bundles under $TMPDIR or /tmp, no disk
  // cache.
  std::string state_dir;
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};
  bool use_cache = true;  // memory and disk cache
};

struct ProbeResult {
  bool supported = false;
  bool ran = false;     // the container ran and reported (false: it could not be run)
  bool cached = false;  // answered from a cache
  std::string detail;   // what was observed ("/vol/sub EROFS", the runtime's error, ...)
};

// Runs the probe container with `runtime_binary` (wrapped by RuntimeArgv for the hybrid cgroup
// workaround) as `<runtime> --root <tmp> run --bundle <dir> <id>`. Needs root. Never throws.
ProbeResult ProbeRuntimeRRO(const std::string& runtime_binary, const ProbeOptions& opts = {});

// Where berth-rro-probe is: $BERTH_RRO_PROBE, else next to the running executable, else
// <exe dir>/../libexec/berth/, else PATH. Empty when not found.
std::string FindProbeBinary();

void ClearProbeCache();

}  // namespace berth::runtime
