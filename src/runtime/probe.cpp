#include "runtime/probe.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdlib>
#include <map>
#include <mutex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "runtime/hostcompat.h"

namespace berth::runtime {

namespace {

std::mutex g_mu;
std::map<std::string, ProbeResult> g_cache;
std::atomic<int> g_counter{0};

std::string KernelRelease() {
  struct utsname u;
  if (::uname(&u) != 0) return "unknown";
  return u.release;
}

std::string EscapeKey(const std::string& s) {
  std::string out;
  for (char c : s) out += (isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-') ? c : '_';
  return out;
}

std::string DirOf(const std::string& p) {
  auto i = p.rfind('/');
  return i == std::string::npos ? "." : (i == 0 ? "/" : p.substr(0, i));
}

void CopyExecutable(const std::string& from, const std::string& to) {
  fs::WriteFileAtomic(to, fs::ReadFile(from, 64u << 20), 0755);
  if (::chmod(to.c_str(), 0755) != 0) ThrowErrno("chmod " + to);
}

nlohmann::json ProbeConfig(const std::string& vol) {
  return {
      {"ociVersion", "1.0.2"},
      {"process",
       {{"terminal", false},
        {"user", {{"uid", 0}, {"gid", 0}}},
        {"args", {"/probe", "/vol/sub"}},
        {"env", {"PATH=/"}},
        {"cwd", "/"},
        {"noNewPrivileges", true}}},
      {"root", {{"path", "rootfs"}, {"readonly", true}}},
      {"hostname", "berth-rro-probe"},
      {"mounts",
       {{{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
        {{"destination", "/dev"}, {"type", "tmpfs"}, {"source", "tmpfs"},
         {"options", {"nosuid", "strictatime", "mode=755", "size=64k"}}},
        {{"destination", "/vol"}, {"type", "bind"}, {"source", vol},
         {"options", {"rbind", "rro", "rprivate"}}}}},
      {"linux",
       {{"namespaces", {{{"type", "mount"}}, {{"type", "pid"}}, {{"type", "ipc"}}, {{"type", "uts"}}}}}},
  };
}

ProbeResult RunProbe(const std::string& runtime, const ProbeOptions& opts) {
  ProbeResult res;
  std::string probe = opts.probe_binary.empty() ? FindProbeBinary() : opts.probe_binary;
  if (probe.empty()) {
    res.detail = "berth-rro-probe not found (set BERTH_RRO_PROBE or install it next to berthd)";
    return res;
  }
  std::string parent;
  if (!opts.state_dir.empty()) {
    parent = fs::Join(opts.state_dir, "rro-probe");
  } else {
    const char* t = std::getenv("TMPDIR");
    parent = (t && *t) ? t : "/tmp";
  }
  std::string work;
  try {
    fs::MkdirAll(parent, 0700);
    std::string tmpl = fs::Join(parent, "run-XXXXXX");
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) ThrowErrno("mkdtemp " + tmpl);
    work = buf.data();
  } catch (const Error& e) {
    res.detail = std::string("cannot prepare the probe bundle: ") + e.what();
    return res;
  }
  const std::string bundle = work + "/bundle";
  const std::string rootfs = bundle + "/rootfs";
  const std::string vol = work + "/vol";
  const std::string sub = vol + "/sub";
  const std::string root = work + "/state";
  const std::string id = "berth-rro-probe-" + std::to_string(::getpid()) + "-" + std::to_string(g_counter++);
  bool mounted = false;
  try {
    for (const char* d : {"/vol", "/proc", "/dev"}) fs::MkdirAll(rootfs + d);
    fs::MkdirAll(sub);
    fs::MkdirAll(root, 0700);
    CopyExecutable(probe, rootfs + "/probe");
    fs::WriteFileAtomic(bundle + "/config.json", ProbeConfig(vol).dump(2));
    if (::mount("tmpfs", sub.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=64k") != 0)
      ThrowErrno("mounting the probe's tmpfs at " + sub);
    mounted = true;
    std::vector<std::string> argv{runtime, "--root", root, "run", "--bundle", bundle, id};
    exec::Options eo;
    eo.timeout = opts.timeout;
    eo.max_output = 64u << 10;
    auto r = exec::Run(RuntimeArgv(argv), eo);
    std::istringstream lines(r.out);
    std::string line, verdict;
    while (std::getline(lines, line))
      if (line.rfind("/vol/sub ", 0) == 0) verdict = line;
    if (verdict == "/vol/sub EROFS") {
      res.ran = true;
      res.supported = true;
      res.detail = "probe container: a write into a submount of an rro bind mount failed with EROFS";
    } else if (verdict == "/vol/sub WRITABLE") {
      res.ran = true;
      res.detail = "probe container: the runtime accepted rro but a submount stayed writable";
    } else if (!verdict.empty()) {
      res.ran = true;
      res.detail = "probe container: " + verdict;
    } else {
      res.detail = "probe container failed: " + exec::Describe(argv, r);
    }
    exec::Options quick;
    quick.timeout = std::chrono::seconds(10);
    exec::Run(RuntimeArgv({runtime, "--root", root, "delete", "-f", id}), quick);
  } catch (const Error& e) {
    res.detail = std::string("probe container: ") + e.what();
  }
  if (mounted) ::umount2(sub.c_str(), MNT_DETACH);
  try {
    fs::RemoveAll(work);
  } catch (const Error&) {
  }
  return res;
}

}  // namespace

std::string FindProbeBinary() {
  if (const char* e = std::getenv("BERTH_RRO_PROBE"); e && *e) return fs::Exists(e) ? e : "";
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = '\0';
    std::string dir = DirOf(self);
    for (const auto& c : {dir + "/berth-rro-probe", dir + "/../libexec/berth/berth-rro-probe"})
      if (::access(c.c_str(), X_OK) == 0) return c;
  }
  auto p = exec::LookPath("berth-rro-probe");
  return p ? *p : "";
}

ProbeResult ProbeRuntimeRRO(const std::string& runtime_binary, const ProbeOptions& opts) {
  struct stat st{};
  if (::stat(runtime_binary.c_str(), &st) != 0) {
    ProbeResult r;
    r.detail = "OCI runtime binary " + runtime_binary + ": " + std::strerror(errno);
    return r;
  }
  const std::string key = runtime_binary + "|" + std::to_string(st.st_mtim.tv_sec) + "." +
                          std::to_string(st.st_mtim.tv_nsec) + "|" + std::to_string(st.st_size) +
                          "|" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + "|" +
                          KernelRelease();
  const std::string disk =
      opts.state_dir.empty() ? "" : fs::Join(fs::Join(opts.state_dir, "rro-probe"), EscapeKey(key) + ".json");
  if (opts.use_cache) {
    std::lock_guard<std::mutex> lock(g_mu);
    if (auto it = g_cache.find(key); it != g_cache.end()) {
      auto r = it->second;
      r.cached = true;
      return r;
    }
    if (!disk.empty() && fs::Exists(disk)) {
      try {
        auto j = nlohmann::json::parse(fs::ReadFile(disk, 1u << 16));
        if (j.value("key", "") == key) {
          ProbeResult r;
          r.ran = true;
          r.supported = j.at("supported").get<bool>();
          r.detail = j.at("detail").get<std::string>();
          g_cache[key] = r;
          r.cached = true;
          return r;
        }
      } catch (const std::exception&) {
        // A damaged cache entry is ignored and rewritten.
      }
    }
  }
  ProbeResult r = RunProbe(runtime_binary, opts);
  if (opts.use_cache && r.ran) {
    std::lock_guard<std::mutex> lock(g_mu);
    g_cache[key] = r;
    if (!disk.empty()) {
      try {
        fs::WriteFileAtomic(disk, nlohmann::json{{"key", key}, {"supported", r.supported}, {"detail", r.detail}}.dump() + "\n", 0600);
      } catch (const Error&) {
      }
    }
  }
  return r;
}

void ClearProbeCache() {
  std::lock_guard<std::mutex> lock(g_mu);
  g_cache.clear();
}

}  // namespace berth::runtime
