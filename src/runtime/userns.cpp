#include "runtime/userns.h"

#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "runtime/features.h"
#include "runtime/hostcompat.h"
#include "runtime/probe.h"
#include "userns/userns.h"

namespace berth::runtime {

namespace {

constexpr uint32_t kProbeHostId = 2000000000u;  // the probe container's root on the host
std::mutex g_mu;
std::map<std::string, UsernsSupport> g_probe_cache;  // runtime part, by binary key
std::atomic<int> g_counter{0};

std::string BinaryKey(const std::string& binary) {
  struct stat st {};
  if (::stat(binary.c_str(), &st) != 0) return "";
  struct utsname u {};
  ::uname(&u);
  return binary + "|" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec) + "|" + std::to_string(st.st_size) + "|" +
         std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + "|" + u.release;
}

nlohmann::json ProbeSpec(const std::string& deny, const std::string& allow) {
  nlohmann::json map = {{{"containerID", 0}, {"hostID", kProbeHostId}, {"size", 65536}}};
  auto bind = [](const char* dst, const std::string& src) {
    return nlohmann::json{{"destination", dst},
                          {"type", "bind"},
                          {"source", src},
                          {"options", {"rbind", "rprivate"}}};
  };
  return {
      {"ociVersion", "1.0.2"},
      {"process",
       {{"terminal", false},
        {"user", {{"uid", 0}, {"gid", 0}}},
        {"args", {"/probe", "/deny", "/allow"}},
        {"env", {"PATH=/"}},
        {"cwd", "/"},
        {"noNewPrivileges", true}}},
      {"root", {{"path", "rootfs"}, {"readonly", true}}},
      {"hostname", "berth-userns-probe"},
      {"mounts",
       {{{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
        {{"destination", "/dev"},
         {"type", "tmpfs"},
         {"source", "tmpfs"},
         {"options", {"nosuid", "strictatime", "mode=755", "size=64k"}}},
        bind("/deny", deny),
        bind("/allow", allow)}},
      {"linux",
       {{"namespaces",
         {{{"type", "user"}},
          {{"type", "mount"}},
          {{"type", "pid"}},
          {{"type", "ipc"}},
          {{"type", "uts"}}}},
        {"uidMappings", map},
        {"gidMappings", map}}},
  };
}

// Runs the probe container; `ran` false when it could not say anything.
UsernsSupport RunProbe(const std::string& runtime, const std::string& state_dir, bool* ran) {
  UsernsSupport r;
  *ran = false;
  std::string probe = FindProbeBinary();
  if (probe.empty()) {
    r.probe = "berth-rro-probe not found (set BERTH_RRO_PROBE or install it next to berthd)";
    return r;
  }
  std::string work;
  try {
    std::string parent = fs::Join(state_dir, "userns-probe");
    fs::MkdirAll(parent, 0711);
    if (::chmod(parent.c_str(), 0711) != 0) ThrowErrno("chmod " + parent);
    work = fs::Join(parent, "run-XXXXXX");
    if (!::mkdtemp(work.data())) ThrowErrno("mkdtemp below " + parent);
    if (::chmod(work.c_str(), 0711) != 0) ThrowErrno("chmod " + work);
    const std::string rootfs = work + "/bundle/rootfs";
    for (const char* d : {"/deny", "/allow", "/proc", "/dev"}) fs::MkdirAll(rootfs + d, 0755);
    fs::WriteFileAtomic(rootfs + "/probe", fs::ReadFile(probe, 64u << 20), 0755);
    ::chmod((rootfs + "/probe").c_str(), 0755);
    fs::MkdirAll(work + "/deny", 0700);
    fs::MkdirAll(work + "/allow", 0700);
    if (::chown((work + "/allow").c_str(), kProbeHostId, kProbeHostId) != 0)
      ThrowErrno("chown " + work + "/allow");
    fs::WriteFileAtomic(work + "/bundle/config.json",
                        ProbeSpec(work + "/deny", work + "/allow").dump());
    const std::string id =
        "berth-userns-probe-" + std::to_string(::getpid()) + "-" + std::to_string(g_counter++);
    const std::string root = work + "/state";
    std::vector<std::string> argv{runtime, "--root", root, "run", "--bundle", work + "/bundle", id};
    exec::Options eo;
    eo.timeout = std::chrono::seconds(30);
    eo.max_output = 64u << 10;
    auto res = exec::Run(RuntimeArgv(argv), eo);
    std::istringstream lines(res.out);
    std::string line, deny, allow;
    while (std::getline(lines, line)) {
      if (line.rfind("/deny ", 0) == 0) deny = line.substr(6);
      if (line.rfind("/allow ", 0) == 0) allow = line.substr(7);
    }
    if (deny.rfind("ERROR 13 ", 0) == 0 && allow == "WRITABLE") {
      *ran = true;
      r.supported = true;
      r.probe = "a probe container in a new user namespace (root mapped to host uid " +
                std::to_string(kProbeHostId) + ") wrote only where the mapped uid may";
    } else if (!deny.empty() || !allow.empty()) {
      *ran = true;
      r.probe =
          "a probe container in a new user namespace did not run as the mapped uid "
          "(host-root-owned directory: " +
          deny + "; mapped-root-owned directory: " + allow + ")";
    } else {
      r.probe = "the runtime could not run a container in a new user namespace: " +
                exec::Describe(argv, res);
    }
    exec::Options quick;
    quick.timeout = std::chrono::seconds(10);
    exec::Run(RuntimeArgv({runtime, "--root", root, "delete", "-f", id}), quick);
  } catch (const std::exception& e) {
    r.probe = std::string("user namespace probe container: ") + e.what();
  }
  if (!work.empty()) {
    try {
      fs::RemoveAll(work);
    } catch (const Error&) {
    }
  }
  return r;
}

UsernsSupport ProbeRuntime(const std::string& runtime, const std::string& state_dir) {
  const std::string key = BinaryKey(runtime);
  if (key.empty())
    return {false, "", "", "OCI runtime binary " + runtime + ": " + std::strerror(errno), false,
            false, false, ""};
  const std::string disk = fs::Join(fs::Join(state_dir, "userns-probe"), "cache.json");
  std::lock_guard<std::mutex> lock(g_mu);
  if (auto it = g_probe_cache.find(key); it != g_probe_cache.end()) return it->second;
  nlohmann::json cache = nlohmann::json::object();
  try {
    cache = nlohmann::json::parse(fs::ReadFile(disk, 1u << 20));
    if (cache.is_object() && cache.contains(key)) {
      UsernsSupport r;
      r.supported = cache[key].at("supported").get<bool>();
      r.probe = cache[key].at("probe").get<std::string>();
      g_probe_cache[key] = r;
      return r;
    }
  } catch (const std::exception&) {
    cache = nlohmann::json::object();  // missing or damaged: probe and rewrite
  }
  bool ran = false;
  UsernsSupport r = RunProbe(runtime, state_dir, &ran);
  if (ran) {
    g_probe_cache[key] = r;
    try {
      cache[key] = {{"supported", r.supported}, {"probe", r.probe}};
      fs::WriteFileAtomic(disk, cache.dump() + "\n", 0600);
    } catch (const std::exception&) {
    }
  }
  return r;
}

// The first directory from `path` up to / that other users cannot search (no o+x), with its mode;
// "" when there is none. A pod's mapped users reach its bundle and root file system through them.
std::string UnsearchableDir(std::string path) {
  while (!path.empty()) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && !(st.st_mode & S_IXOTH)) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      return path + " has mode " + mode;
    }
    if (path == "/") break;
    auto slash = path.rfind('/');
    path = slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
  }
  return "";
}

}  // namespace

UsernsSupport DetectUserns(const std::string& runtime_binary, const std::string& root_dir,
                           const std::string& state_dir) {
  UsernsSupport out;
  for (const auto& dir : {root_dir, state_dir}) {
    if (auto bad = UnsearchableDir(dir); !bad.empty()) {
      out.reason = "the pods' mapped users cannot reach " + dir + ": " + bad +
                   " (user namespaces need every directory above berth's root and state to be "
                   "searchable by others: chmod o+x it)";
      return out;
    }
  }
  auto k = userns::ProbeIdmap(root_dir);
  out.kernel_idmap = k.supported;
  out.kernel = k.supported ? k.reason
                           : "the kernel cannot idmap a mount on the file system of " + root_dir +
                                 ": " + k.reason;
  UsernsSupport p = ProbeRuntime(runtime_binary, state_dir);
  out.probe = p.probe;
  out.runtime_ok = p.supported;
  out.supported = p.supported && k.supported;
  out.rootfs = out.supported ? "idmap" : "";
  out.reason = !p.supported  ? p.probe
               : k.supported ? "proven: " + k.reason + "; " + p.probe
                             : out.kernel;
  try {
    auto q = QueryFeatures(runtime_binary, std::chrono::seconds(10), fs::Join(state_dir, "probes"));
    out.runtime_idmap = q.features && q.features->idmap_enabled.value_or(false);
  } catch (const std::exception&) {
  }
  return out;
}

UsernsSupport ApplyRootfsMode(UsernsSupport u, const std::string& mode) {
  if (!u.runtime_ok) {
    u.supported = false;
    u.rootfs.clear();
    return u;
  }
  if (mode == "idmap" || (mode != "copy" && u.kernel_idmap)) {
    u.supported = u.kernel_idmap;
    u.rootfs = u.supported ? "idmap" : "";
    u.reason = u.supported ? "proven: " + u.kernel + "; " + u.probe
                           : u.kernel + " (userns_rootfs = \"idmap\": no chown'ed copies)";
    return u;
  }
  u.supported = true;
  u.rootfs = "copy";
  u.reason = "proven: " + u.probe + "; root file systems are chown'ed copies of the image, made " +
             "once per image and mapping (slow: " +
             (mode == "copy" ? std::string("userns_rootfs = \"copy\"") : u.kernel) + ")";
  return u;
}

}  // namespace berth::runtime
