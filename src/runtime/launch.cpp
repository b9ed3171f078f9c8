// DecideLaunch: whether a runtime binary runs directly or through the hybrid-cgroup launcher,
// proven with a probe container on hybrid hosts (see hostcompat.h).
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "runtime/cli.h"
#include "runtime/hostcompat.h"
#include "runtime/probe.h"

namespace berth::runtime {

namespace {

std::mutex g_mu;
std::map<std::string, LaunchDecision> g_cache;
std::atomic<int> g_counter{0};

std::string FirstLine(const std::string& path) {
  try {
    std::string s = fs::ReadFile(path, 256);
    return s.substr(0, s.find('\n'));
  } catch (const Error&) {
    return "unknown";
  }
}

std::string KernelRelease() {
  struct utsname u;
  return ::uname(&u) == 0 ? u.release : "unknown";
}

// Binary identity (path, mtime, size, device, inode), kernel release and boot id; "" when the
// binary cannot be stat'ed.
std::string CacheKey(const std::string& binary) {
  struct stat st {};
  if (::stat(binary.c_str(), &st) != 0) return "";
  return binary + "|" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec) + "|" + std::to_string(st.st_size) + "|" +
         std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + "|" + KernelRelease() + "|" +
         FirstLine("/proc/sys/kernel/random/boot_id");
}

std::string DiskPath(const std::string& state_dir, const std::string& key) {
  std::string name;
  for (char c : key.substr(0, key.find('|')))
    name += isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return fs::Join(fs::Join(state_dir, "probes"), "launch-" + name + ".json");
}

nlohmann::json ProbeSpec() {
  return {{"ociVersion", "1.0.2"},
          {"process",
           {{"terminal", false},
            {"user", {{"uid", 0}, {"gid", 0}}},
            {"args", {"/probe", "/"}},
            {"env", {"PATH=/"}},
            {"cwd", "/"},
            {"noNewPrivileges", true}}},
          {"root", {{"path", "rootfs"}, {"readonly", true}}},
          {"mounts",
           {{{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
            {{"destination", "/dev"},
             {"type", "tmpfs"},
             {"source", "tmpfs"},
             {"options", {"nosuid", "size=64k"}}}}},
          {"linux", {{"namespaces", {{{"type", "mount"}}, {{"type", "pid"}}}}}}};
}

// Runs the probe container (`run`: the program checks "/" and exits; with `create` the
// container's init would hold the output pipes) with `prefix` (the runtime's command line, direct
// or wrapped), then deletes it. "" when it ran, else what the runtime said.
std::string TryRun(const std::vector<std::string>& prefix, const std::string& work,
                   const std::string& id, const LaunchOptions& opts) {
  auto with = [&](std::vector<std::string> args) {
    auto argv = prefix;
    argv.insert(argv.end(), {"--root", work + "/state"});
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  };
  exec::Options eo;
  eo.timeout = opts.timeout;
  eo.max_output = 64u << 10;
  auto argv = with({"run", "--bundle", work + "/bundle", id});
  auto r = exec::Run(argv, eo);
  exec::Options quick;
  quick.timeout = std::chrono::seconds(10);
  exec::Run(with({"delete", "-f", id}), quick);
  if (r.ok() && r.out.find("/ ") != std::string::npos) return "";
  std::string msg = RuntimeErrorMessage(r.err.empty() ? r.out : r.err);
  return msg.empty() ? exec::Describe(argv, r) : msg;
}

LaunchDecision ProbeHybrid(const std::string& binary, const LaunchOptions& opts) {
  LaunchDecision d;
  d.binary = binary;
  d.hybrid_host = true;
  d.hybrid_launcher = true;
  d.determined_by = "unproven";
  std::string probe = opts.probe_binary.empty() ? FindProbeBinary() : opts.probe_binary;
  if (probe.empty()) {
    d.reason =
        "hybrid cgroup host; no probe container (berth-rro-probe not found): the launcher works "
        "for every runtime";
    return d;
  }
  std::string parent = !opts.state_dir.empty() ? fs::Join(opts.state_dir, "launch-probe")
                       : std::getenv("TMPDIR") && *std::getenv("TMPDIR") ? std::getenv("TMPDIR")
                                                                         : "/tmp";
  std::string work;
  try {
    fs::MkdirAll(parent, 0700);
    std::string tmpl = fs::Join(parent, "launch-XXXXXX");
    if (!::mkdtemp(tmpl.data())) ThrowErrno("mkdtemp " + tmpl);
    work = tmpl;
    for (const char* dir : {"/bundle/rootfs/proc", "/bundle/rootfs/dev", "/state"})
      fs::MkdirAll(work + dir, 0700);
    fs::WriteFileAtomic(work + "/bundle/rootfs/probe", fs::ReadFile(probe, 64u << 20), 0755);
    fs::WriteFileAtomic(work + "/bundle/config.json", ProbeSpec().dump());
    std::string id =
        "berth-launch-probe-" + std::to_string(::getpid()) + "-" + std::to_string(g_counter++);
    std::string direct = TryRun({binary}, work, id, opts);
    if (direct.empty()) {
      d.hybrid_launcher = false;
      d.determined_by = "probe";
      d.reason = "hybrid cgroup host; a probe container ran with the runtime called directly";
    } else if (std::string wrapped = TryRun(WrapArgvForHybridCgroup({binary}), work, id, opts);
               wrapped.empty()) {
      d.determined_by = "probe";
      d.reason =
          "hybrid cgroup host; called directly the runtime refused to run a probe container (" +
          direct + "), through the launcher it ran it";
    } else {
      d.reason = "hybrid cgroup host; the probe container failed called directly (" + direct +
                 ") and through the launcher (" + wrapped + ")";
    }
  } catch (const Error& e) {
    d.reason = std::string("hybrid cgroup host; probe container: ") + e.what();
  }
  if (!work.empty()) {
    try {
      fs::RemoveAll(work);
    } catch (const Error&) {
      // A leftover scratch directory under the state dir is harmless and reused by nothing.
    }
  }
  return d;
}

std::optional<LaunchDecision> FromDisk(const std::string& path, const std::string& key) {
  try {
    if (path.empty() || !fs::Exists(path)) return std::nullopt;
    auto j = nlohmann::json::parse(fs::ReadFile(path, 1u << 16));
    if (j.value("key", "") != key) return std::nullopt;
    LaunchDecision d;
    d.binary = j.at("binary").get<std::string>();
    d.hybrid_host = j.at("hybrid_host").get<bool>();
    d.hybrid_launcher = j.at("hybrid_launcher").get<bool>();
    d.determined_by = j.at("determined_by").get<std::string>();
    d.reason = j.at("reason").get<std::string>();
    return d;
  } catch (const std::exception&) {
    return std::nullopt;  // a damaged entry is ignored and rewritten
  }
}

}  // namespace

nlohmann::json LaunchDecisionToJson(const LaunchDecision& d) {
  return {{"binary", d.binary},
          {"mode", d.hybrid_launcher ? "hybrid-cgroup launcher" : "direct"},
          {"hybrid_cgroup_host", d.hybrid_host},
          {"determined_by", d.determined_by},
          {"reason", d.reason}};
}

LaunchDecision DecideLaunch(const std::string& runtime_binary, const LaunchOptions& opts) {
  std::string binary = runtime_binary;
  if (binary.find('/') == std::string::npos) {
    if (auto p = exec::LookPath(binary)) binary = *p;
  }
  LaunchDecision d;
  d.binary = binary;
  d.determined_by = "host";
  if (!IsHybridCgroupHost()) {
    d.reason = "not a hybrid cgroup host (no cgroup2 at /sys/fs/cgroup/unified beside cgroup v1)";
    return d;
  }
  const std::string key = CacheKey(binary);
  if (key.empty()) {
    d.hybrid_host = true;
    d.reason = "hybrid cgroup host; " + binary + ": " + std::strerror(errno);
    return d;
  }
  const std::string disk = opts.state_dir.empty() ? "" : DiskPath(opts.state_dir, key);
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = g_cache.find(key);
    auto hit =
        it != g_cache.end() ? std::optional<LaunchDecision>(it->second) : FromDisk(disk, key);
    if (hit) {
      g_cache[key] = *hit;
      hit->cached = true;
      return *hit;
    }
  }
  d = ProbeHybrid(binary, opts);
  std::lock_guard<std::mutex> lock(g_mu);
  g_cache[key] = d;
  if (!disk.empty() && d.determined_by == "probe") {
    try {
      auto j = LaunchDecisionToJson(d);
      j["key"] = key;
      j["hybrid_host"] = d.hybrid_host;
      j["hybrid_launcher"] = d.hybrid_launcher;
      fs::MkdirAll(fs::Join(opts.state_dir, "probes"), 0700);
      fs::WriteFileAtomic(disk, j.dump() + "\n", 0600);
    } catch (const Error&) {
      // Not cached on disk: the next start probes again.
    }
  }
  return d;
}

void ClearLaunchCache() {
  std::lock_guard<std::mutex> lock(g_mu);
  g_cache.clear();
}

}  // namespace berth::runtime
