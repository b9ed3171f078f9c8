// Sandbox and container specs from CRI messages.
#include "oci/spec.h"

#include <fnmatch.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <dirent.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/fs.h"
#include "oci/seccomp.h"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include "runtime/v1/api.pb.h"
#pragma GCC diagnostic pop

namespace berth::oci {

namespace {

using nlohmann::json;
namespace cri = ::runtime::v1;

// The deprecated seccomp_profile_path field, still honoured as containerd does.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
template <typename SecurityContext>
std::string LegacySeccompPath(const SecurityContext& sc) {
  return sc.seccomp_profile_path();
}
#pragma GCC diagnostic pop

[[noreturn]] void Invalid(const std::string& msg) { throw Error(Code::kInvalidArgument, msg); }

json& Linux(json& spec) {
  if (!spec.contains("linux") || !spec["linux"].is_object()) spec["linux"] = json::object();
  return spec["linux"];
}
json& Resources(json& spec) {
  json& l = Linux(spec);
  if (!l.contains("resources") || !l["resources"].is_object()) l["resources"] = json::object();
  return l["resources"];
}
json& Process(json& spec) {
  if (!spec.contains("process") || !spec["process"].is_object()) spec["process"] = json::object();
  return spec["process"];
}

// Sets (path given) or removes (remove=true) a namespace of `type`; adds it when missing.
void SetNamespace(json& spec, const std::string& type, const std::string& path, bool remove = false) {
  json& l = Linux(spec);
  if (!l.contains("namespaces") || !l["namespaces"].is_array()) l["namespaces"] = json::array();
  json out = json::array();
  for (const auto& ns : l["namespaces"])
    if (!(ns.is_object() && ns.value("type", "") == type)) out.push_back(ns);
  if (!remove) {
    json ns = {{"type", type}};
    if (!path.empty()) ns["path"] = path;
    out.push_back(ns);
  }
  l["namespaces"] = out;
}

void RemoveMount(json& spec, const std::string& dest) {
  if (!spec.contains("mounts") || !spec["mounts"].is_array()) {
    spec["mounts"] = json::array();
    return;
  }
  json out = json::array();
  for (const auto& m : spec["mounts"])
    if (!(m.is_object() && m.value("destination", "") == dest)) out.push_back(m);
  spec["mounts"] = out;
}

void AddMount(json& spec, json m) {
  RemoveMount(spec, m["destination"].get<std::string>());
  spec["mounts"].push_back(std::move(m));
}

json BindMount(const std::string& dest, const std::string& src, bool ro) {
  return {{"destination", dest},
          {"type", "bind"},
          {"source", src},
          {"options", {"rbind", "rprivate", ro ? "ro" : "rw"}}};
}

// Env: KEY=VALUE entries; later ones replace earlier ones with the same key, order kept.
void MergeEnv(std::vector<std::string>& env, const std::string& kv) {
  std::string key = kv.substr(0, kv.find('='));
  for (auto& e : env)
    if (e.substr(0, e.find('=')) == key) {
      e = kv;
      return;
    }
  env.push_back(kv);
}

bool MatchesAny(const std::vector<std::string>& patterns, const std::string& key) {
  for (const auto& p : patterns)
    if (::fnmatch(p.c_str(), key.c_str(), 0) == 0) return true;
  return false;
}

int ClampOom(int64_t v, const std::string& field, bool restrict, int own) {
  if (v < -1000 || v > 1000)
    Invalid(field + ": " + std::to_string(v) + " is outside [-1000, 1000]");
  if (restrict && v < own) return own;
  return static_cast<int>(v);
}

void ApplySysctls(json& spec, const google::protobuf::Map<std::string, std::string>& sysctls) {
  if (sysctls.empty()) return;
  json& l = Linux(spec);
  if (!l.contains("sysctl") || !l["sysctl"].is_object()) l["sysctl"] = json::object();
  for (const auto& [k, v] : sysctls) {
    if (k.empty() || k.size() > 256 || k.find('/') != std::string::npos || k.find("..") != std::string::npos ||
        k.find_first_of(std::string("\0\n", 2)) != std::string::npos)
      Invalid("linux.sysctls: invalid name \"" + k + "\"");
    if (v.size() > 4096 || v.find_first_of(std::string("\0\n", 2)) != std::string::npos)
      Invalid("linux.sysctls: invalid value for \"" + k + "\"");
    l["sysctl"][k] = v;
  }
}

// Seccomp from a CRI SecurityProfile (or the deprecated path string).
void ApplySeccomp(json& spec, const cri::SecurityProfile* profile, const std::string& legacy,
                  const std::string& unset_profile, bool privileged, const std::string& field) {
  json& l = Linux(spec);
  l.erase("seccomp");
  if (privileged) return;
  std::string kind, ref;
  if (profile != nullptr) {
    switch (profile->profile_type()) {
      case cri::SecurityProfile::RuntimeDefault: kind = "runtime/default"; break;
      case cri::SecurityProfile::Unconfined: kind = "unconfined"; break;
      case cri::SecurityProfile::Localhost:
        kind = "localhost";
        ref = profile->localhost_ref();
        if (ref.empty()) Invalid(field + ".localhost_ref: required for a Localhost profile");
        break;
      default: Invalid(field + ".profile_type: unknown value " + std::to_string(profile->profile_type()));
    }
  } else {
    std::string p = legacy.empty() ? unset_profile : legacy;
    if (p.empty() || p == "unconfined") {
      kind = "unconfined";
    } else if (p == "runtime/default" || p == "docker/default") {
      kind = "runtime/default";
    } else if (p.rfind("localhost/", 0) == 0) {
      kind = "localhost";
      ref = p.substr(10);
    } else {
      Invalid(field + ": unknown seccomp profile \"" + p + "\"");
    }
  }
  if (kind == "unconfined") return;
  if (kind == "localhost") {
    l["seccomp"] = LoadSeccompProfile(ref);
    return;
  }
  std::vector<std::string> bounding;
  const json& proc = Process(spec);
  if (proc.contains("capabilities") && proc["capabilities"].contains("bounding"))
    for (const auto& c : proc["capabilities"]["bounding"])
      if (c.is_string()) bounding.push_back(c);
  l["seccomp"] = DefaultSeccompProfile(bounding);
}

void SetCapabilities(json& spec, const std::vector<std::string>& caps,
                     const std::vector<std::string>& ambient) {
  json c = {{"bounding", caps}, {"effective", caps}, {"permitted", caps}};
  if (!ambient.empty()) {
    c["ambient"] = ambient;
    c["inheritable"] = ambient;
  }
  Process(spec)["capabilities"] = c;
}

std::vector<std::string> CurrentCaps(const json& spec) {
  std::vector<std::string> out;
  const json& p = spec.contains("process") ? spec["process"] : json::object();
  if (p.contains("capabilities") && p["capabilities"].contains("bounding"))
    for (const auto& c : p["capabilities"]["bounding"])
      if (c.is_string()) out.push_back(c);
  return out;
}

void ApplyResources(json& spec, const cri::LinuxContainerResources& r, bool restrict_oom,
                    const NodeInfo& node, const std::string& field) {
  LinuxResources lr = ResourcesFromCri(r, restrict_oom, node, field);
  json& res = Resources(spec);
  for (auto& [k, v] : lr.resources.items()) {
    if (v.is_object() && res.contains(k) && res[k].is_object()) res[k].update(v);
    else res[k] = v;
  }
  if (lr.oom_score_adj) Process(spec)["oomScoreAdj"] = *lr.oom_score_adj;
}

// The capabilities that may be granted: `caps` within berthd's bounding set.
std::vector<std::string> Bounded(const std::vector<std::string>& caps, const NodeInfo& node) {
  if (node.bounding_caps.empty()) return caps;
  std::vector<std::string> out;
  for (const auto& c : caps)
    if (std::find(node.bounding_caps.begin(), node.bounding_caps.end(), c) != node.bounding_caps.end())
      out.push_back(c);
  return out;
}

// Every char/block device under /dev (as containerd's HostDevices), for privileged containers.
void CollectHostDevices(const std::string& dir, json& devices, int depth) {
  if (depth > 8) return;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string p = dir + "/" + name;
    if (depth == 0 && (name == "pts" || name == "shm" || name == "fd" || name == "mqueue" ||
                       name == ".lxc" || name == ".lxd-mounts" || name == ".udev" || name == "console"))
      continue;
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      CollectHostDevices(p, devices, depth + 1);
      continue;
    }
    if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) continue;
    if (S_ISCHR(st.st_mode) && major(st.st_rdev) == 0 && minor(st.st_rdev) == 0) continue;
    devices.push_back({{"path", p},
                       {"type", S_ISCHR(st.st_mode) ? "c" : "b"},
                       {"major", major(st.st_rdev)},
                       {"minor", minor(st.st_rdev)},
                       {"fileMode", st.st_mode & 07777},
                       {"uid", st.st_uid},
                       {"gid", st.st_gid}});
  }
  ::closedir(d);
}

void AddDevice(json& spec, const cri::Device& dev, size_t index) {
  std::string field = "devices[" + std::to_string(index) + "]";
  if (dev.host_path().empty() || dev.host_path()[0] != '/')
    Invalid(field + ".host_path: \"" + dev.host_path() + "\" is not an absolute path");
  if (dev.container_path().empty() || dev.container_path()[0] != '/')
    Invalid(field + ".container_path: \"" + dev.container_path() + "\" is not an absolute path");
  std::string perms = dev.permissions().empty() ? "rwm" : dev.permissions();
  for (char c : perms)
    if (c != 'r' && c != 'w' && c != 'm') Invalid(field + ".permissions: invalid \"" + perms + "\"");
  struct stat st;
  if (::stat(dev.host_path().c_str(), &st) != 0)
    throw Error(Code::kInvalidArgument, field + ".host_path: " + dev.host_path() + ": " + std::strerror(errno));
  if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode))
    Invalid(field + ".host_path: " + dev.host_path() + " is not a device");
  std::string type = S_ISCHR(st.st_mode) ? "c" : "b";
  json& l = Linux(spec);
  if (!l.contains("devices") || !l["devices"].is_array()) l["devices"] = json::array();
  l["devices"].push_back({{"path", dev.container_path()},
                          {"type", type},
                          {"major", major(st.st_rdev)},
                          {"minor", minor(st.st_rdev)},
                          {"fileMode", st.st_mode & 07777},
                          {"uid", st.st_uid},
                          {"gid", st.st_gid}});
  json& res = Resources(spec);
  if (!res.contains("devices") || !res["devices"].is_array()) res["devices"] = json::array();
  res["devices"].push_back({{"allow", true},
                            {"type", type},
                            {"major", major(st.st_rdev)},
                            {"minor", minor(st.st_rdev)},
                            {"access", perms}});
}

void SetMountOption(json& spec, const std::string& dest, const std::string& from, const std::string& to) {
  for (auto& m : spec["mounts"])
    if (m.value("destination", "") == dest && m.contains("options"))
      for (auto& o : m["options"])
        if (o == from) o = to;
}

std::string NsPath(int pid, const char* ns) {
  return "/proc/" + std::to_string(pid) + "/ns/" + ns;
}

}  // namespace

std::string CgroupsPath(const std::string& parent, const std::string& id, const NodeInfo& node) {
  if (node.systemd_cgroup) {
    // "slice:prefix:name"; the parent must be a slice.
    std::string slice = parent.empty() ? "system.slice" : parent;
    if (slice.find('/') != std::string::npos || slice.size() < 7 ||
        slice.substr(slice.size() - 6) != ".slice")
      Invalid("linux.cgroup_parent: \"" + parent + "\" is not a systemd slice");
    return slice + ":berth:" + id;
  }
  std::string p = parent.empty() ? "/berth" : parent;
  if (p[0] != '/') Invalid("linux.cgroup_parent: \"" + parent + "\" is not an absolute cgroup path");
  if (p.find("..") != std::string::npos)
    Invalid("linux.cgroup_parent: \"" + parent + "\" must not contain \"..\"");
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return (p == "/" ? "" : p) + "/berth-" + id;
}

LinuxResources ResourcesFromCri(const cri::LinuxContainerResources& r, bool restrict_oom,
                                const NodeInfo& node, const std::string& field) {
  LinuxResources out;
  out.resources = json::object();
  json& res = out.resources;
  if (r.cpu_shares() < 0) Invalid(field + ".cpu_shares: negative value " + std::to_string(r.cpu_shares()));
  if (r.cpu_period() < 0) Invalid(field + ".cpu_period: negative value " + std::to_string(r.cpu_period()));
  if (r.cpu_quota() < -1) Invalid(field + ".cpu_quota: invalid value " + std::to_string(r.cpu_quota()));
  if (r.memory_limit_in_bytes() < 0)
    Invalid(field + ".memory_limit_in_bytes: negative value " + std::to_string(r.memory_limit_in_bytes()));
  if (r.memory_swap_limit_in_bytes() < -1)
    Invalid(field + ".memory_swap_limit_in_bytes: invalid value " + std::to_string(r.memory_swap_limit_in_bytes()));
  json cpu = json::object();
  if (r.cpu_shares() > 0) cpu["shares"] = r.cpu_shares();
  if (r.cpu_quota() != 0) cpu["quota"] = r.cpu_quota();
  if (r.cpu_period() > 0) cpu["period"] = r.cpu_period();
  auto cpuset = [&](const std::string& v, const char* key, const char* name) {
    if (v.empty()) return;
    for (char c : v)
      if (!(c >= '0' && c <= '9') && c != ',' && c != '-')
        Invalid(field + "." + name + ": invalid cpuset \"" + v + "\"");
    cpu[key] = v;
  };
  cpuset(r.cpuset_cpus(), "cpus", "cpuset_cpus");
  cpuset(r.cpuset_mems(), "mems", "cpuset_mems");
  if (!cpu.empty()) res["cpu"] = cpu;
  if (r.memory_limit_in_bytes() > 0) {
    json mem = json::object();
    mem["limit"] = r.memory_limit_in_bytes();
    if (node.swap_accounting) {
      if (r.memory_swap_limit_in_bytes() != 0) mem["swap"] = r.memory_swap_limit_in_bytes();
      else mem["swap"] = r.memory_limit_in_bytes();  // no swap beyond the limit
    }
    res["memory"] = mem;
  }
  if (r.hugepage_limits_size() > 0) {
    json hp = json::array();
    for (int i = 0; i < r.hugepage_limits_size(); ++i) {
      const auto& h = r.hugepage_limits(i);
      const std::string& ps = h.page_size();
      if (ps.size() < 3 || !(ps.back() == 'B') || !std::isdigit(static_cast<unsigned char>(ps[0])))
        Invalid(field + ".hugepage_limits[" + std::to_string(i) + "].page_size: invalid \"" + ps + "\"");
      hp.push_back({{"pageSize", ps}, {"limit", h.limit()}});
    }
    res["hugepageLimits"] = hp;
  }
  if (!r.unified().empty()) {
    json u = json::object();
    for (const auto& [k, v] : r.unified()) {
      if (k.empty() || k.find('/') != std::string::npos || k.find("..") != std::string::npos)
        Invalid(field + ".unified: invalid key \"" + k + "\"");
      u[k] = v;
    }
    res["unified"] = u;
  }
  if (r.oom_score_adj() != 0)
    out.oom_score_adj = ClampOom(r.oom_score_adj(), field + ".oom_score_adj", restrict_oom, node.own_oom_score_adj);
  else if (restrict_oom && node.own_oom_score_adj > 0)
    out.oom_score_adj = node.own_oom_score_adj;
  return out;
}

int StopSignal(int cri_stop_signal, const std::string& image_stop_signal) {
  if (cri_stop_signal != 0) {
    if (!cri::Signal_IsValid(cri_stop_signal))
      Invalid("stop_signal: invalid value " + std::to_string(cri_stop_signal));
    // The enum names the signal: SIGRTMINPLUS3 -> SIGRTMIN+3, SIGRTMAXMINUS1 -> SIGRTMAX-1.
    std::string name = cri::Signal_Name(static_cast<cri::Signal>(cri_stop_signal));
    if (auto p = name.find("PLUS"); p != std::string::npos) name = name.substr(0, p) + "+" + name.substr(p + 4);
    if (auto p = name.find("MINUS"); p != std::string::npos) name = name.substr(0, p) + "-" + name.substr(p + 5);
    int s = ParseSignal(name);
    if (s < 0) Invalid("stop_signal: unsupported signal " + name);
    return s;
  }
  if (image_stop_signal.empty()) return ParseSignal("TERM");
  int s = ParseSignal(image_stop_signal);
  if (s < 0) Invalid("image config StopSignal: unknown signal \"" + image_stop_signal + "\"");
  return s;
}

// --- sandbox ---------------------------------------------------------------------------------

json SandboxSpec(const cri::PodSandboxConfig& config, const SandboxSpecOptions& o) {
  if (o.id.empty()) Invalid("sandbox id is empty");
  if (o.pause_rootfs.empty()) Invalid("sandbox " + o.id + ": no pause rootfs");
  if (!config.has_metadata() || config.metadata().name().empty())
    Invalid("metadata.name: required");
  json spec = BaseSpec(o.base_spec, o.base_spec_path);
  const auto& lx = config.linux();
  const auto& sc = lx.security_context();
  const auto& ns = sc.namespace_options();
  const std::string nsf = "linux.security_context.namespace_options";
  auto pod_mode = [&](int mode, const char* name, bool container_ok) {
    if (mode == cri::NODE || mode == cri::POD || (container_ok && mode == cri::CONTAINER)) return;
    Invalid(nsf + "." + name + ": mode " + cri::NamespaceMode_Name(static_cast<cri::NamespaceMode>(mode)) +
            " is not allowed for a pod sandbox");
  };
  pod_mode(ns.network(), "network", false);
  pod_mode(ns.ipc(), "ipc", false);
  pod_mode(ns.pid(), "pid", true);
  // Mode POD is the lifecycle's (a pinned user namespace added to this spec: docs/userns.md).
  if (ns.has_userns_options() && ns.userns_options().mode() != cri::NODE &&
      ns.userns_options().mode() != cri::POD)
    Invalid(nsf + ".userns_options.mode: " + cri::NamespaceMode_Name(ns.userns_options().mode()) +
            " is not supported");

  spec["root"] = {{"path", o.pause_rootfs}, {"readonly", true}};
  json& proc = Process(spec);
  if (o.pause_args.empty()) Invalid("sandbox " + o.id + ": no pause command");
  proc["args"] = o.pause_args;
  if (o.pause_cwd.empty() || o.pause_cwd[0] != '/') Invalid("sandbox " + o.id + ": pause working dir \"" + o.pause_cwd + "\" is not absolute");
  proc["cwd"] = o.pause_cwd;
  if (!o.pause_env.empty()) {
    std::vector<std::string> env;
    if (proc.contains("env") && proc["env"].is_array())
      for (const auto& e : proc["env"])
        if (e.is_string()) env.push_back(e);
    for (const auto& e : o.pause_env) MergeEnv(env, e);
    proc["env"] = env;
  }
  proc["terminal"] = false;
  proc["user"] = {{"uid", 0}, {"gid", 0}};
  if (o.pause_user) {
    proc["user"] = {{"uid", o.pause_user->uid}, {"gid", o.pause_user->gid}};
    if (!o.pause_user->additional_gids.empty()) proc["user"]["additionalGids"] = o.pause_user->additional_gids;
  }
  if (sc.has_run_as_user()) {
    if (sc.run_as_user().value() < 0 || sc.run_as_user().value() > 0xFFFFFFFFLL)
      Invalid("linux.security_context.run_as_user: invalid uid " + std::to_string(sc.run_as_user().value()));
    proc["user"]["uid"] = sc.run_as_user().value();
  }
  if (sc.has_run_as_group()) {
    if (!sc.has_run_as_user())
      Invalid("linux.security_context.run_as_group: requires run_as_user");
    if (sc.run_as_group().value() < 0 || sc.run_as_group().value() > 0xFFFFFFFFLL)
      Invalid("linux.security_context.run_as_group: invalid gid " + std::to_string(sc.run_as_group().value()));
    proc["user"]["gid"] = sc.run_as_group().value();
  }
  if (sc.supplemental_groups_size() > 0) {
    json g = json::array();
    for (auto v : sc.supplemental_groups()) {
      if (v < 0 || v > 0xFFFFFFFFLL)
        Invalid("linux.security_context.supplemental_groups: invalid gid " + std::to_string(v));
      g.push_back(v);
    }
    proc["user"]["additionalGids"] = g;
  }
  proc["noNewPrivileges"] = true;
  // The sandbox is never killed first by the OOM killer (containerd: -998).
  proc["oomScoreAdj"] = o.restrict_oom_score_adj ? std::max(-998, o.node.own_oom_score_adj) : -998;

  // Namespaces.
  bool host_net = ns.network() == cri::NODE;
  if (host_net) {
    SetNamespace(spec, "network", "", true);
    SetNamespace(spec, "uts", "", true);
  } else {
    SetNamespace(spec, "network", o.netns_path);
    SetNamespace(spec, "uts", "");
    if (!config.hostname().empty()) spec["hostname"] = config.hostname();
  }
  if (ns.ipc() == cri::NODE) SetNamespace(spec, "ipc", "", true);
  else SetNamespace(spec, "ipc", "");
  if (ns.pid() == cri::NODE) SetNamespace(spec, "pid", "", true);
  else SetNamespace(spec, "pid", "");
  SetNamespace(spec, "mount", "");

  // /dev/shm: the host's for host IPC, else the sandbox's own tmpfs (shared with its containers).
  if (ns.ipc() == cri::NODE) AddMount(spec, BindMount("/dev/shm", "/dev/shm", false));
  else if (!o.shm_path.empty()) AddMount(spec, BindMount("/dev/shm", o.shm_path, false));

  if (sc.privileged()) {
    SetCapabilities(spec, Bounded(AllCapabilities(), o.node), {});
    Linux(spec).erase("maskedPaths");
    Linux(spec).erase("readonlyPaths");
    SetMountOption(spec, "/sys", "ro", "rw");
    SetMountOption(spec, "/sys/fs/cgroup", "ro", "rw");
  }
  Linux(spec)["cgroupsPath"] = CgroupsPath(lx.cgroup_parent(), o.id, o.node);
  json& res = Resources(spec);
  // Pod-level limits (linux.resources/overhead) belong to the pod's cgroup parent, which the
  // caller manages; the pause process itself only gets a small cpu share.
  res["cpu"] = {{"shares", 2}};
  ApplySysctls(spec, lx.sysctls());
  ApplySeccomp(spec, sc.has_seccomp() ? &sc.seccomp() : nullptr, LegacySeccompPath(sc),
               o.unset_seccomp_profile, sc.privileged(), "linux.security_context.seccomp");
  if (sc.readonly_rootfs()) spec["root"]["readonly"] = true;

  json ann = spec.contains("annotations") && spec["annotations"].is_object() ? spec["annotations"] : json::object();
  for (const auto& [k, v] : config.annotations())
    if (MatchesAny(o.pod_annotation_patterns, k)) ann[k] = v;
  ann[kAnnContainerType] = "sandbox";
  ann[kAnnSandboxId] = o.id;
  ann[kAnnSandboxName] = config.metadata().name();
  ann[kAnnSandboxNamespace] = config.metadata().namespace_();
  ann[kAnnSandboxUid] = config.metadata().uid();
  ann[kAnnSandboxLogDir] = config.log_directory();
  spec["annotations"] = ann;
  return spec;
}

// --- container -------------------------------------------------------------------------------

json ContainerSpec(const cri::ContainerConfig& config, const cri::PodSandboxConfig& sandbox,
                   const ContainerSpecOptions& o, std::vector<MountPlan>* volumes) {
  if (o.id.empty()) Invalid("container id is empty");
  if (o.rootfs.empty()) Invalid("container " + o.id + ": no rootfs");
  if (!config.has_metadata() || config.metadata().name().empty()) Invalid("metadata.name: required");
  json spec = BaseSpec(o.base_spec, o.base_spec_path);
  const auto& lx = config.linux();
  const auto& sc = lx.security_context();
  const auto& psc = sandbox.linux().security_context();
  const auto& ns = sc.namespace_options();
  const std::string scf = "linux.security_context";

  spec["root"] = {{"path", o.rootfs}, {"readonly", sc.readonly_rootfs()}};
  json& proc = Process(spec);

  // Command line: CRI command replaces the image Entrypoint, CRI args replace the image Cmd.
  std::vector<std::string> command(config.command().begin(), config.command().end());
  std::vector<std::string> args(config.args().begin(), config.args().end());
  if (command.empty()) {
    if (args.empty()) args = o.image.cmd;
    if (!(o.image.entrypoint.size() == 1 && o.image.entrypoint[0].empty())) command = o.image.entrypoint;
  }
  std::vector<std::string> argv = command;
  argv.insert(argv.end(), args.begin(), args.end());
  if (argv.empty()) Invalid("command: no command specified (neither in the config nor in the image)");
  proc["args"] = argv;

  std::string cwd = !config.working_dir().empty() ? config.working_dir()
                    : !o.image.working_dir.empty() ? o.image.working_dir : "/";
  if (cwd[0] != '/') Invalid("working_dir: \"" + cwd + "\" is not an absolute path");
  proc["cwd"] = cwd;
  proc["terminal"] = config.tty();

  // Environment: default PATH, HOSTNAME, the image's, then the CRI's.
  std::vector<std::string> env;
  if (proc.contains("env") && proc["env"].is_array())
    for (const auto& e : proc["env"])
      if (e.is_string()) env.push_back(e);
  const std::string& hostname = !o.hostname.empty() ? o.hostname : sandbox.hostname();
  if (!hostname.empty()) MergeEnv(env, "HOSTNAME=" + hostname);
  for (const auto& e : o.image.env) MergeEnv(env, e);
  for (int i = 0; i < config.envs_size(); ++i) {
    const auto& kv = config.envs(i);
    if (kv.key().empty()) Invalid("envs[" + std::to_string(i) + "].key: empty");
    if (kv.key().find('=') != std::string::npos)
      Invalid("envs[" + std::to_string(i) + "].key: \"" + kv.key() + "\" contains '='");
    MergeEnv(env, kv.key() + "=" + kv.value());
  }
  proc["env"] = env;

  // Privileges.
  if (sc.privileged() && !psc.privileged())
    Invalid(scf + ".privileged: a privileged container needs a privileged sandbox");
  std::vector<std::string> caps = CurrentCaps(spec);
  std::vector<std::string> ambient;
  if (sc.privileged()) {
    caps = Bounded(AllCapabilities(), o.node);
  } else if (sc.has_capabilities()) {
    const auto& c = sc.capabilities();
    auto norm = [&](const std::string& name, const char* list) {
      std::string n = NormalizeCapability(name);
      if (n.empty()) Invalid(scf + ".capabilities." + list + ": unknown capability \"" + name + "\"");
      if (std::string(list) != "drop_capabilities" && Bounded({n}, o.node).empty())
        Invalid(scf + ".capabilities." + list + ": " + n + " is not in berthd's bounding set and cannot be granted");
      return n;
    };
    auto has_all = [](const auto& list) {
      for (const auto& s : list)
        if (s == "ALL" || s == "all") return true;
      return false;
    };
    if (has_all(c.add_capabilities())) caps = Bounded(AllCapabilities(), o.node);
    if (has_all(c.drop_capabilities())) caps.clear();
    for (const auto& a : c.add_capabilities()) {
      if (a == "ALL" || a == "all") continue;
      std::string n = norm(a, "add_capabilities");
      if (std::find(caps.begin(), caps.end(), n) == caps.end()) caps.push_back(n);
    }
    for (const auto& d : c.drop_capabilities()) {
      if (d == "ALL" || d == "all") continue;
      std::string n = norm(d, "drop_capabilities");
      caps.erase(std::remove(caps.begin(), caps.end(), n), caps.end());
    }
    for (const auto& a : c.add_ambient_capabilities()) {
      std::string n = norm(a, "add_ambient_capabilities");
      if (std::find(ambient.begin(), ambient.end(), n) == ambient.end()) ambient.push_back(n);
      if (std::find(caps.begin(), caps.end(), n) == caps.end()) caps.push_back(n);
    }
  }
  SetCapabilities(spec, caps, ambient);
  proc["noNewPrivileges"] = sc.no_new_privs();

  // User.
  ResolvedUser user;
  if (sc.has_run_as_user() && !sc.run_as_username().empty())
    Invalid(scf + ".run_as_username: mutually exclusive with run_as_user");
  if (sc.has_run_as_user()) {
    int64_t uid = sc.run_as_user().value();
    if (uid < 0 || uid > 0xFFFFFFFFLL) Invalid(scf + ".run_as_user: invalid uid " + std::to_string(uid));
    user = ResolveUser(o.rootfs, std::to_string(uid), scf + ".run_as_user");
  } else if (!sc.run_as_username().empty()) {
    if (sc.run_as_username().find(':') != std::string::npos)
      Invalid(scf + ".run_as_username: \"" + sc.run_as_username() + "\" contains ':'");
    user = ResolveUser(o.rootfs, sc.run_as_username(), scf + ".run_as_username");
  } else if (!o.image.user.empty()) {
    user = ResolveUser(o.rootfs, o.image.user, "image config User");
  } else if (!o.rootfs.empty()) {
    user = ResolveUser(o.rootfs, "0", "image config User");  // root, whose groups count too
  }
  if (sc.has_run_as_group()) {
    if (!sc.has_run_as_user() && sc.run_as_username().empty())
      Invalid(scf + ".run_as_group: requires run_as_user or run_as_username");
    int64_t gid = sc.run_as_group().value();
    if (gid < 0 || gid > 0xFFFFFFFFLL) Invalid(scf + ".run_as_group: invalid gid " + std::to_string(gid));
    user.gid = static_cast<uint32_t>(gid);
  }
  std::vector<uint32_t> requested;
  for (auto g : sc.supplemental_groups()) {
    if (g < 0 || g > 0xFFFFFFFFLL) Invalid(scf + ".supplemental_groups: invalid gid " + std::to_string(g));
    requested.push_back(static_cast<uint32_t>(g));
  }
  if (sc.supplemental_groups_policy() != cri::Merge && sc.supplemental_groups_policy() != cri::Strict)
    Invalid(scf + ".supplemental_groups_policy: unknown policy " + std::to_string(sc.supplemental_groups_policy()));
  proc["user"] = {{"uid", user.uid}, {"gid", user.gid},
                  {"additionalGids", AdditionalGids(user, requested, sc.supplemental_groups_policy() == cri::Strict)}};

  // Namespaces of the pod.
  if (ns.network() == cri::NODE) {
    SetNamespace(spec, "network", "", true);
    SetNamespace(spec, "uts", "", true);
  } else {
    if (o.sandbox_pid <= 0) Invalid("container " + o.id + ": sandbox pid unknown");
    SetNamespace(spec, "network", !o.netns_path.empty() ? o.netns_path : NsPath(o.sandbox_pid, "net"));
    SetNamespace(spec, "uts", NsPath(o.sandbox_pid, "uts"));
  }
  if (ns.ipc() == cri::NODE) {
    SetNamespace(spec, "ipc", "", true);
  } else {
    if (o.sandbox_pid <= 0) Invalid("container " + o.id + ": sandbox pid unknown");
    SetNamespace(spec, "ipc", NsPath(o.sandbox_pid, "ipc"));
  }
  switch (ns.pid()) {
    case cri::NODE: SetNamespace(spec, "pid", "", true); break;
    case cri::CONTAINER: SetNamespace(spec, "pid", ""); break;
    case cri::POD:
      if (o.sandbox_pid <= 0) Invalid("container " + o.id + ": sandbox pid unknown");
      SetNamespace(spec, "pid", NsPath(o.sandbox_pid, "pid"));
      break;
    case cri::TARGET:
      if (o.target_pid <= 0)
        Invalid(scf + ".namespace_options.target_id: target container \"" + ns.target_id() + "\" is not running");
      SetNamespace(spec, "pid", NsPath(o.target_pid, "pid"));
      break;
    default: Invalid(scf + ".namespace_options.pid: unknown mode " + std::to_string(ns.pid()));
  }
  SetNamespace(spec, "mount", "");
  spec.erase("hostname");

  // Mounts: sandbox files, /dev/shm, then the volumes (which win over everything at their path).
  std::vector<std::string> volume_paths;
  for (const auto& m : config.mounts()) volume_paths.push_back(m.container_path());
  auto has_volume = [&](const std::string& p) {
    return std::find(volume_paths.begin(), volume_paths.end(), p) != volume_paths.end();
  };
  bool ro = sc.readonly_rootfs();
  if (!o.hosts_path.empty() && !has_volume("/etc/hosts")) AddMount(spec, BindMount("/etc/hosts", o.hosts_path, ro));
  if (!o.hostname_path.empty() && !has_volume("/etc/hostname"))
    AddMount(spec, BindMount("/etc/hostname", o.hostname_path, ro));
  if (!o.resolv_conf_path.empty() && !has_volume("/etc/resolv.conf"))
    AddMount(spec, BindMount("/etc/resolv.conf", o.resolv_conf_path, ro));
  if (!has_volume("/dev/shm")) {
    if (ns.ipc() == cri::NODE) AddMount(spec, BindMount("/dev/shm", "/dev/shm", false));
    else if (!o.shm_path.empty()) AddMount(spec, BindMount("/dev/shm", o.shm_path, false));
  }
  bool shared_rootfs = false, slave_rootfs = false;
  for (int i = 0; i < config.mounts_size(); ++i) {
    const auto& m = config.mounts(i);
    VolumeMount v;
    v.container_path = m.container_path();
    v.host_path = m.host_path();
    v.readonly = m.readonly();
    v.selinux_relabel = m.selinux_relabel();
    v.recursive_read_only = m.recursive_read_only();
    switch (m.propagation()) {
      case cri::PROPAGATION_PRIVATE: v.propagation = Propagation::kPrivate; break;
      case cri::PROPAGATION_HOST_TO_CONTAINER: v.propagation = Propagation::kHostToContainer; break;
      case cri::PROPAGATION_BIDIRECTIONAL: v.propagation = Propagation::kBidirectional; break;
      default: Invalid("mounts[" + std::to_string(i) + "].propagation: unknown value " + std::to_string(m.propagation()));
    }
    if (m.has_image() && !m.image().image().empty())
      throw Error(Code::kUnimplemented, "mounts[" + std::to_string(i) + "].image: image volumes are not supported");
    MountPlan plan = PlanVolumeMount(v, o.rro);
    shared_rootfs |= plan.needs_shared_rootfs;
    slave_rootfs |= plan.needs_slave_rootfs;
    AddMount(spec, MountToJson(plan.mount));
    if (volumes) volumes->push_back(std::move(plan));
  }
  if (shared_rootfs) Linux(spec)["rootfsPropagation"] = "rshared";
  else if (slave_rootfs && Linux(spec).value("rootfsPropagation", "") != "rshared")
    Linux(spec)["rootfsPropagation"] = "rslave";

  // Privileged: all devices, no masked paths, writable /sys.
  if (sc.privileged()) {
    Linux(spec).erase("maskedPaths");
    Linux(spec).erase("readonlyPaths");
    SetMountOption(spec, "/sys", "ro", "rw");
    SetMountOption(spec, "/sys/fs/cgroup", "ro", "rw");
    Resources(spec)["devices"] = json::array({{{"allow", true}, {"access", "rwm"}}});
    if (!o.privileged_without_host_devices) {
      json devices = json::array();
      CollectHostDevices("/dev", devices, 0);
      Linux(spec)["devices"] = devices;
    }
  } else {
    if (sc.masked_paths_size() > 0 || sc.readonly_paths_size() > 0) {
      // The CRI lists replace the defaults (kubelet sends the whole list, empty for Unmasked).
      json mp = json::array(), rp = json::array();
      for (const auto& p : sc.masked_paths()) {
        if (p.empty() || p[0] != '/') Invalid(scf + ".masked_paths: \"" + p + "\" is not an absolute path");
        mp.push_back(p);
      }
      for (const auto& p : sc.readonly_paths()) {
        if (p.empty() || p[0] != '/') Invalid(scf + ".readonly_paths: \"" + p + "\" is not an absolute path");
        rp.push_back(p);
      }
      Linux(spec)["maskedPaths"] = mp;
      Linux(spec)["readonlyPaths"] = rp;
    }
  }
  for (int i = 0; i < config.devices_size(); ++i) AddDevice(spec, config.devices(i), static_cast<size_t>(i));

  // Resources, cgroup, sysctls, seccomp.
  Linux(spec)["cgroupsPath"] = CgroupsPath(sandbox.linux().cgroup_parent(), o.id, o.node);
  if (lx.has_resources()) {
    ApplyResources(spec, lx.resources(), o.restrict_oom_score_adj, o.node, "linux.resources");
  } else if (o.restrict_oom_score_adj && o.node.own_oom_score_adj > 0) {
    proc["oomScoreAdj"] = o.node.own_oom_score_adj;
  }
  ApplySysctls(spec, sandbox.linux().sysctls());
  ApplySeccomp(spec, sc.has_seccomp() ? &sc.seccomp() : nullptr, LegacySeccompPath(sc),
               o.unset_seccomp_profile, sc.privileged(), scf + ".seccomp");

  // Annotations.
  json ann = spec.contains("annotations") && spec["annotations"].is_object() ? spec["annotations"] : json::object();
  for (const auto& [k, v] : config.annotations())
    if (MatchesAny(o.container_annotation_patterns, k)) ann[k] = v;
  ann[kAnnContainerType] = "container";
  ann[kAnnSandboxId] = o.sandbox_id;
  ann[kAnnSandboxName] = sandbox.metadata().name();
  ann[kAnnSandboxNamespace] = sandbox.metadata().namespace_();
  ann[kAnnSandboxUid] = sandbox.metadata().uid();
  ann[kAnnContainerName] = config.metadata().name();
  ann[kAnnImageName] = o.image_name;
  spec["annotations"] = ann;
  return spec;
}

}  // namespace berth::oci
