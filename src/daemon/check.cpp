#include "daemon/check.h"

#include <dirent.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include <linux/magic.h>
#include <nlohmann/json.hpp>

#include "common/caps.h"
#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "config/cri.h"
#include "criplugins/criplugins.h"
#include "runtime/rro.h"
#include "userns/userns.h"

namespace berth::daemon {

namespace {

using S = CheckResult::Status;

CheckResult Ok(std::string name, std::string detail) {
  return {std::move(name), S::kOk, false, std::move(detail), ""};
}
CheckResult Warn(std::string name, std::string detail, std::string fix) {
  return {std::move(name), S::kWarn, false, std::move(detail), std::move(fix)};
}
CheckResult Fail(std::string name, bool fatal, std::string detail, std::string fix) {
  return {std::move(name), S::kFail, fatal, std::move(detail), std::move(fix)};
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// --- kernel
// ---------------------------------------------------------------------------------------

CheckResult CheckOverlay() {
  std::string fss = Slurp("/proc/filesystems");
  if (fss.find("\toverlay\n") != std::string::npos)
    return Ok("kernel.overlayfs", "overlay is in /proc/filesystems");
  return Fail("kernel.overlayfs", true,
              "overlay is not in /proc/filesystems: image layers cannot be mounted",
              "load the module (modprobe overlay) and add it to /etc/modules-load.d/");
}

CheckResult CheckMountSetattr(const std::string& cache_file) {
  auto k = mount::ProbeKernelCached(cache_file);
  if (k.supported) return Ok("kernel.mount_setattr", "recursive read-only proven: " + k.reason);
  return Warn(
      "kernel.mount_setattr", "recursive read-only not available: " + k.reason,
      "Linux 5.12 or later and CAP_SYS_ADMIN; without them berth stages read-only volumes itself "
      "where it can (docs/rro.md)");
}

// The real probe, as the CRI runtime plugin makes it for user-namespaced pods: an idmapped clone
// of a scratch directory on the file system of berth's root dir (runtime/userns.h).
CheckResult CheckIdmapped(const std::string& root) {
  auto k = userns::ProbeIdmap(root);
  if (k.supported)
    return Ok("kernel.idmapped_mounts",
              "idmapped mounts proven on the file system of " + root + ": " + k.reason);
  return Warn("kernel.idmapped_mounts",
              "idmapped mounts not available on the file system of " + root + ": " + k.reason,
              "Linux 5.19 or later, a file system that supports idmapped mounts under root, and "
              "CAP_SYS_ADMIN, for pods "
              "with user namespaces (docs/userns.md)");
}

std::vector<CheckResult> CheckCgroups() {
  struct statfs st {};
  if (::statfs("/sys/fs/cgroup", &st) != 0) {
    return {Fail("cgroup.version", true, "/sys/fs/cgroup is not mounted",
                 "mount cgroup2 on /sys/fs/cgroup")};
  }
  std::vector<CheckResult> out;
  std::set<std::string> have;
  if (st.f_type == CGROUP2_SUPER_MAGIC) {
    out.push_back(Ok("cgroup.version", "cgroup v2 (unified)"));
    std::istringstream in(Slurp("/sys/fs/cgroup/cgroup.controllers"));
    for (std::string c; in >> c;) have.insert(c);
  } else {
    out.push_back(Ok("cgroup.version", "cgroup v1 (legacy or hybrid)"));
    std::istringstream in(Slurp("/proc/cgroups"));
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream f(line);
      std::string name;
      int hier = 0, num = 0, enabled = 0;
      if (f >> name >> hier >> num >> enabled && enabled) have.insert(name);
    }
  }
  std::string missing, found;
  for (const char* c : {"cpu", "memory", "pids", "cpuset", "io", "hugetlb"}) {
    std::string name = c;
    if (name == "io" && st.f_type != CGROUP2_SUPER_MAGIC) name = "blkio";
    (have.count(name) ? found : missing) += " " + name;
  }
  if (!have.count("memory") || !have.count("pids") || !have.count("cpu")) {
    out.push_back(Fail(
        "cgroup.controllers", true, "missing:" + missing + " (available:" + found + ")",
        "enable the cpu, memory and pids controllers (kernel command line cgroup_enable=memory, "
        "or the parent cgroup's cgroup.subtree_control)"));
  } else if (!missing.empty()) {
    out.push_back(Warn("cgroup.controllers", "available:" + found + "; missing:" + missing,
                       "limits on the missing controllers are not applied"));
  } else {
    out.push_back(Ok("cgroup.controllers", "available:" + found));
  }
  return out;
}

CheckResult CheckSeccomp() {
  if (::prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0) {
    return Warn("kernel.seccomp", "the kernel has no seccomp (prctl PR_GET_SECCOMP failed)",
                "a kernel with CONFIG_SECCOMP_FILTER for RuntimeDefault profiles");
  }
  if (Slurp("/proc/sys/kernel/seccomp/actions_avail").empty() &&
      !fs::Exists("/proc/sys/kernel/seccomp")) {
    return Ok("kernel.seccomp", "seccomp available (filter actions not listed)");
  }
  return Ok("kernel.seccomp", "seccomp filters available");
}

// --- runtimes
// -------------------------------------------------------------------------------------

std::vector<CheckResult> CheckRuntimes(const config::RuntimeConfig& rc,
                                       const std::string& cri_state) {
  std::vector<CheckResult> out;
  for (const auto& [name, rt] : rc.containerd.runtimes) {
    const bool is_default = name == rc.containerd.default_runtime_name;
    const std::string check = "runtime." + name;
    std::string binary;
    try {
      binary = runtime::ResolveRuntimeBinary(rt.BinaryName(), rt.runtime_path);
    } catch (const Error& e) {
      out.push_back(Fail(
          check, is_default, e.what(),
          "install the OCI runtime (apt-get install runc) or set runtime_path / options.BinaryName "
          "of runtime handler \"" +
              name + "\""));
      continue;
    }
    runtime::DetectOptions o;
    o.state_dir = cri_state;
    o.allow_probe = false;  // `features`, else say unknown: a probe container is for the daemon
    auto info = runtime::DetectHandlerRRO(name, binary, rt.treat_ro_mounts_as_rro, o);
    std::string detail = binary + ": rro " + runtime::SupportName(info.runtime.support) +
                         (info.runtime.method.empty() ? "" : " (" + info.runtime.method + ")") +
                         ", recursive read-only " + (info.resolution.enabled ? "on" : "off") +
                         (info.resolution.via_fallback ? " via berth's staging" : "");
    if (info.features) detail += ", features ociVersionMax " + info.features->oci_version_max;
    if (!info.resolution.ok()) {
      out.push_back(Fail(check, is_default, detail + ": " + info.resolution.error,
                         "set treat_ro_mounts_as_rro = \"IfPossible\" or use a kernel and runtime "
                         "that support rro"));
    } else if (!info.resolution.warning.empty()) {
      out.push_back(Warn(check, detail + ": " + info.resolution.warning, "see docs/rro.md"));
    } else {
      out.push_back(Ok(check, detail));
    }
  }
  return out;
}

// --- CNI
// ------------------------------------------------------------------------------------------

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return names;
  while (auto* e = ::readdir(d)) {
    if (e->d_name[0] != '.') names.push_back(e->d_name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

// The plugin types a network config names ("plugins"[].type, or "type").
std::vector<std::string> PluginTypes(const std::string& file) {
  auto j = nlohmann::json::parse(Slurp(file), nullptr, false);
  std::vector<std::string> types;
  if (!j.is_object()) return types;
  if (j.contains("plugins") && j["plugins"].is_array()) {
    for (const auto& p : j["plugins"]) {
      if (p.is_object() && p.contains("type") && p["type"].is_string()) types.push_back(p["type"]);
    }
  } else if (j.contains("type") && j["type"].is_string()) {
    types.push_back(j["type"]);
  }
  return types;
}

std::vector<CheckResult> CheckCNI(const config::CniConfig& cni) {
  std::vector<CheckResult> out;
  std::vector<std::string> confs;
  for (const auto& n : ListDir(cni.conf_dir)) {
    auto dot = n.rfind('.');
    std::string ext = dot == std::string::npos ? "" : n.substr(dot);
    if (ext == ".conf" || ext == ".conflist" || ext == ".json") confs.push_back(n);
  }
  const std::string fix_conf = "install a CNI network config in " + cni.conf_dir +
                               " (the cluster's network add-on does it; see docs/kubernetes.md)";
  if (confs.empty()) {
    out.push_back(Fail("cni.config", false,
                       "no network config (*.conf, *.conflist, *.json) in " + cni.conf_dir +
                           ": pods other than host-network ones cannot get a network",
                       fix_conf));
  } else {
    out.push_back(Ok("cni.config", cni.conf_dir + "/" + confs.front() + " (" +
                                       std::to_string(confs.size()) + " file(s))"));
  }
  std::string dirs;
  for (const auto& d : cni.bin_dirs) dirs += (dirs.empty() ? "" : ", ") + d;
  std::set<std::string> needed = {"loopback"};
  if (!confs.empty()) {
    for (const auto& t : PluginTypes(fs::Join(cni.conf_dir, confs.front()))) needed.insert(t);
  }
  std::string missing, found;
  for (const auto& t : needed) {
    bool ok = false;
    for (const auto& d : cni.bin_dirs) ok = ok || ::access(fs::Join(d, t).c_str(), X_OK) == 0;
    (ok ? found : missing) += " " + t;
  }
  if (!missing.empty()) {
    out.push_back(Fail(
        "cni.plugins", false, "not found in bin_dirs [" + dirs + "]:" + missing,
        "install the CNI plugins (apt-get install containernetworking-plugins) or set bin_dirs"));
  } else {
    out.push_back(Ok("cni.plugins", "found in [" + dirs + "]:" + found));
  }
  return out;
}

// --- capabilities
// ---------------------------------------------------------------------------------

std::vector<CheckResult> CheckCaps(const config::RuntimeConfig& rc) {
  std::vector<CheckResult> out;
  if (caps::HasEffective(caps::kSysAdmin)) {
    out.push_back(Ok("caps.CAP_SYS_ADMIN", "present"));
  } else {
    out.push_back(Fail(
        "caps.CAP_SYS_ADMIN", true, "missing: berthd cannot mount root file systems or namespaces",
        "run berthd as root with CAP_SYS_ADMIN (the systemd unit in contrib/systemd does)"));
  }
  if (caps::HasEffective(caps::kNetAdmin)) {
    out.push_back(Ok("caps.CAP_NET_ADMIN", "present"));
  } else {
    out.push_back(Fail("caps.CAP_NET_ADMIN", false,
                       "missing: pod network namespaces cannot be set up",
                       "run berthd with CAP_NET_ADMIN; until then only host-network pods run"));
  }
  const bool has = caps::HasEffective(caps::kSysResource);
  if (has) {
    out.push_back(Ok("caps.CAP_SYS_RESOURCE", "present"));
  } else if (!rc.restrict_oom_score_adj.has_value()) {
    out.push_back(Warn(
        "caps.CAP_SYS_RESOURCE",
        "missing: oom_score_adj of pods is clamped to berthd's own (restrict_oom_score_adj unset)",
        "grant CAP_SYS_RESOURCE for kubelet's OOM scores, or set restrict_oom_score_adj = true to "
        "say "
        "the clamp is intended"));
  } else if (*rc.restrict_oom_score_adj) {
    out.push_back(
        Ok("caps.CAP_SYS_RESOURCE",
           "missing; restrict_oom_score_adj = true clamps oom_score_adj to berthd's own"));
  } else {
    out.push_back(Fail(
        "caps.CAP_SYS_RESOURCE", true,
        "missing, and restrict_oom_score_adj = false: a pod asking for a lower oom_score_adj than "
        "berthd's fails (berth-pause: Permission denied)",
        "remove restrict_oom_score_adj (berth then clamps by itself) or grant CAP_SYS_RESOURCE"));
  }
  return out;
}

// --- disk
// -----------------------------------------------------------------------------------------

std::string ExistingAncestor(std::string path) {
  while (!path.empty() && !fs::Exists(path)) {
    auto slash = path.find_last_of('/');
    path = slash == 0 ? "/" : slash == std::string::npos ? "." : path.substr(0, slash);
  }
  return path.empty() ? "/" : path;
}

std::string Mib(double bytes) {
  return std::to_string(static_cast<long long>(bytes / (1 << 20))) + " MiB";
}

CheckResult CheckDisk(const std::string& name, const std::string& dir) {
  const std::string at = ExistingAncestor(dir);
  struct statvfs st {};
  if (::statvfs(at.c_str(), &st) != 0) {
    return Fail(name, true, "cannot stat " + at + ": " + std::strerror(errno),
                "check that " + dir + " is reachable");
  }
  const double avail = double(st.f_bavail) * double(st.f_frsize);
  const double total = double(st.f_blocks) * double(st.f_frsize);
  std::string detail = dir + ": " + Mib(avail) + " free of " + Mib(total);
  const bool has_inodes = st.f_files > 0;
  if (has_inodes)
    detail += ", " + std::to_string(st.f_favail) + " inodes free of " + std::to_string(st.f_files);
  const std::string fix = "free space (remove unused images: berthctl rmi --prune) or move " + dir +
                          " to a larger file system";
  if (avail < 64.0 * (1 << 20) || (has_inodes && st.f_favail < 1024))
    return Fail(name, true, detail, fix);
  if (avail < 0.05 * total || (has_inodes && double(st.f_favail) < 0.05 * double(st.f_files))) {
    return Warn(name, detail + " (under 5%)", fix);
  }
  return Ok(name, detail);
}

// --- socket
// ---------------------------------------------------------------------------------------

CheckResult CheckSocket(const config::GrpcConfig& g, bool from_daemon) {
  std::string path = g.address;
  if (path.rfind("unix://", 0) == 0) path = path.substr(7);
  const std::string dir =
      path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/'));
  struct stat st {};
  const std::string parent = ExistingAncestor(dir.empty() ? "." : dir);
  if (::stat(parent.c_str(), &st) == 0 && (st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX)) {
    return Fail("socket", true, parent + " is world-writable: anyone could replace the socket",
                "chmod o-w " + parent + " or choose another [grpc] address");
  }
  if (::lstat(path.c_str(), &st) != 0) {
    return Ok("socket", path + " (not created yet; berthd makes it mode 0660, owner " +
                            std::to_string(g.uid) + ", group " + std::to_string(g.gid) + ")");
  }
  if (!S_ISSOCK(st.st_mode)) {
    return Fail("socket", true, path + " exists and is not a socket",
                "remove it or choose another [grpc] address");
  }
  const mode_t mode = st.st_mode & 0777;
  char m[8];
  std::snprintf(m, sizeof m, "%04o", unsigned(mode));
  std::string detail = path + ": mode " + m + ", owner " + std::to_string(st.st_uid) + ", group " +
                       std::to_string(st.st_gid);
  if (mode & 0007)
    return Fail("socket", true, detail + ": other users can connect", "chmod 0660 " + path);
  if (from_daemon && (int(st.st_gid) != g.gid || int(st.st_uid) != g.uid)) {
    return Warn("socket",
                detail + ": not the configured [grpc] uid " + std::to_string(g.uid) + " / gid " +
                    std::to_string(g.gid),
                "restart berthd to reapply the owner");
  }
  if (!from_daemon) detail += " (exists: another berthd may be serving on it)";
  return Ok("socket", detail);
}

}  // namespace

const char* StatusName(CheckResult::Status s) {
  switch (s) {
    case S::kOk:
      return "ok";
    case S::kWarn:
      return "warn";
    case S::kFail:
      return "fail";
  }
  return "fail";
}

std::vector<CheckResult> RunChecks(const PipelineResult& p, const CheckOptions& opts) {
  std::shared_ptr<config::RuntimeConfig> rc =
      std::make_shared<config::RuntimeConfig>(config::DefaultRuntimeConfig());
  if (auto it = p.configs.find(config::kCRIRuntimePluginURI); it != p.configs.end()) {
    if (auto c = std::any_cast<std::shared_ptr<config::RuntimeConfig>>(&it->second)) rc = *c;
  }
  const std::string cri_state = fs::Join(p.config.state, criplugins::kCRIDirName);
  std::vector<CheckResult> out;
  auto add = [&](std::vector<CheckResult> v) { out.insert(out.end(), v.begin(), v.end()); };
  out.push_back(CheckOverlay());
  out.push_back(
      CheckMountSetattr(fs::Exists(cri_state) ? fs::Join(cri_state, "probes/kernel.json") : ""));
  out.push_back(CheckIdmapped(p.config.root));
  add(CheckCgroups());
  out.push_back(CheckSeccomp());
  add(CheckRuntimes(*rc, fs::Exists(cri_state) ? cri_state : ""));
  add(CheckCNI(rc->cni));
  add(CheckCaps(*rc));
  out.push_back(CheckDisk("disk.root", p.config.root));
  out.push_back(CheckDisk("disk.state", p.config.state));
  out.push_back(CheckSocket(p.config.grpc, opts.from_daemon));
  return out;
}

std::string FormatCheckLine(const CheckResult& r) {
  std::string line = std::string(StatusName(r.status));
  line.resize(5, ' ');
  line += r.name + ": " + r.detail;
  if (r.status == S::kFail && r.fatal) line += " [fatal]";
  if (!r.fix.empty() && r.status != S::kOk) line += "; fix: " + r.fix;
  return line;
}

bool AnyFatal(const std::vector<CheckResult>& results) {
  for (const auto& r : results) {
    if (r.status == S::kFail && r.fatal) return true;
  }
  return false;
}

}  // namespace berth::daemon
