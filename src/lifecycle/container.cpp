// Containers: root file system from the snapshotter, OCI spec, berth-monitor, exit handling.
#include "lifecycle/service_impl.h"  // first: its enum Signal names collide with <signal.h> macros

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/fs.h"
#include "monitor/client.h"
#include "mount/rro.h"
#include "snapshot/snapshotter.h"

namespace berth::lifecycle {

std::string NewObjectId();

namespace {

const char* kDefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

std::vector<std::string> JsonStrings(const nlohmann::json& j, const char* key) {
  std::vector<std::string> out;
  if (j.is_object() && j.contains(key) && j[key].is_array()) {
    for (const auto& v : j[key]) {
      if (v.is_string()) out.push_back(v.get<std::string>());
    }
  }
  return out;
}

std::string JsonString(const nlohmann::json& j, const char* key) {
  if (j.is_object() && j.contains(key) && j[key].is_string()) return j[key].get<std::string>();
  return "";
}

// A path below the container root file system, refusing symlinks on the way (so that image
// content cannot point berthd at host files).
std::string ReadRootfsFile(const std::string& rootfs, const std::string& rel) {
  std::string p = rootfs;
  std::stringstream ss(rel);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    p += "/" + part;
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0 || S_ISLNK(st.st_mode)) return "";
  }
  try {
    return fs::ReadFile(p, 4 << 20);
  } catch (const Error&) {
    return "";
  }
}

struct PasswdEntry {
  std::string name;
  int64_t uid = -1, gid = -1;
};

std::vector<PasswdEntry> ParseColonFile(const std::string& text) {
  std::vector<PasswdEntry> out;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) {
    std::vector<std::string> f;
    std::stringstream ls(line);
    std::string x;
    while (std::getline(ls, x, ':')) f.push_back(x);
    if (f.size() < 3) continue;
    PasswdEntry e;
    e.name = f[0];
    try {
      e.uid = std::stoll(f[2]);
      if (f.size() > 3 && !f[3].empty()) e.gid = std::stoll(f[3]);
    } catch (...) {
      continue;
    }
    out.push_back(e);
  }
  return out;
}

bool IsNumber(const std::string& s) {
  return !s.empty() && s.size() < 12 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string ContainerNameKey(const v1::ContainerMetadata& m, const v1::PodSandboxMetadata& pod) {
  return m.name() + "_" + pod.name() + "_" + pod.namespace_() + "_" + pod.uid() + "_" + std::to_string(m.attempt());
}

std::set<std::string> BoundingCaps() {
  static const char* names[] = {
      "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
      "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
      "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
      "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
      "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
      "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
      "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
      "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"};
  std::set<std::string> out;
  uint64_t bnd = ~0ull;
  try {
    std::string status = fs::ReadFile("/proc/self/status", 1 << 20);
    auto p = status.find("CapBnd:");
    if (p != std::string::npos) bnd = std::stoull(status.substr(p + 7), nullptr, 16);
  } catch (...) {
  }
  for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i) {
    if (bnd & (1ull << i)) out.insert(names[i]);
  }
  return out;
}

std::string Propagation(v1::MountPropagation p) {
  switch (p) {
    case v1::PROPAGATION_HOST_TO_CONTAINER: return "rslave";
    case v1::PROPAGATION_BIDIRECTIONAL: return "rshared";
    default: return "rprivate";
  }
}

bool CleanAbsPath(const std::string& p) {
  if (p.empty() || p[0] != '/' || p.size() > 4096 || p.find('\0') != std::string::npos) return false;
  std::stringstream ss(p);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (part == "..") return false;
  }
  return true;
}

}  // namespace

// --- events and status -------------------------------------------------------------------------

void RuntimeService::Impl::FillStatus(const ContainerRecord& c, v1::ContainerStatus* st) {
  st->set_id(c.id);
  *st->mutable_metadata() = c.config.metadata();
  if (c.state == kCreated || c.state == kCreating) st->set_state(v1::CONTAINER_CREATED);
  else if (c.state == kRunning) st->set_state(v1::CONTAINER_RUNNING);
  else if (c.state == kExited) st->set_state(v1::CONTAINER_EXITED);
  else st->set_state(v1::CONTAINER_UNKNOWN);
  st->set_created_at(c.created_at);
  st->set_started_at(c.started_at);
  st->set_finished_at(c.finished_at);
  st->set_exit_code(c.exit_code);
  *st->mutable_image() = c.config.image();
  st->mutable_image()->set_image(c.image_ref.empty() ? c.config.image().image() : c.image_ref);
  st->set_image_ref(c.image_id);
  st->set_image_id(c.image_id);
  st->set_reason(c.reason);
  st->set_message(c.message);
  *st->mutable_labels() = c.config.labels();
  *st->mutable_annotations() = c.config.annotations();
  for (const auto& m : c.mounts) *st->add_mounts() = m;
  st->set_log_path(c.log_path);
  *st->mutable_resources()->mutable_linux() = c.resources;
  auto* u = st->mutable_user()->mutable_linux();
  u->set_uid(c.uid);
  u->set_gid(c.gid);
  for (auto g : c.groups) u->add_supplemental_groups(g);
  st->set_stop_signal(c.config.stop_signal());
}

void RuntimeService::Impl::Publish(const ContainerRecord& c, v1::ContainerEventType type) {
  v1::ContainerEventResponse ev;
  ev.set_container_id(c.id);
  ev.set_container_event_type(type);
  ev.set_created_at(NowNs());
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = sandboxes.find(c.sandbox_id);
    if (it != sandboxes.end()) FillSandboxStatus(*it->second, ev.mutable_pod_sandbox_status());
    if (type != v1::CONTAINER_DELETED_EVENT) FillStatus(c, ev.add_containers_statuses());
  }
  events.Publish(ev);
}

// --- exits and cleanup -------------------------------------------------------------------------

void RuntimeService::Impl::HandleExit(ContainerRecord& c) {
  std::optional<monitor::ExitInfo> info;
  std::string err;
  try {
    info = monitor::ReadExitFile(fs::Join(c.dir, "exit"));
  } catch (const Error& e) {
    err = e.what();
  }
  std::string handler;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = sandboxes.find(c.sandbox_id);
    if (it != sandboxes.end()) handler = it->second->handler;
  }
  try {
    CliFor(handler).Delete(c.id, true);
  } catch (...) {
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    c.state = kExited;
    if (info) {
      c.exit_code = info->exit_code;
      c.finished_at = info->exited_at_ns;
      c.reason = info->oom_killed ? "OOMKilled" : (info->exit_code == 0 ? "Completed" : "Error");
      c.message = info->error;
    } else {
      c.exit_code = 255;
      c.finished_at = NowNs();
      c.reason = "Unknown";
      c.message = err.empty() ? "berth-monitor exited without writing an exit file" : err;
    }
  }
  Save(c);
  Publish(c, v1::CONTAINER_STOPPED_EVENT);
}

void RuntimeService::Impl::CleanupContainer(ContainerRecord& c) {
  std::string handler;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = sandboxes.find(c.sandbox_id);
    if (it != sandboxes.end()) handler = it->second->handler;
  }
  if (c.monitor_pid > 0 && monitor::IsMonitorAlive(c.monitor_pid, c.id)) {
    try {
      CliFor(handler).Kill(c.id, SIGKILL, true);
    } catch (...) {
    }
    monitor::WaitMonitor(c.monitor_pid, c.id, std::chrono::seconds(30));
  }
  try {
    CliFor(handler).Delete(c.id, true);
  } catch (...) {
  }
  if (!c.dir.empty()) {
    std::string rootfs = fs::Join(c.dir, "rootfs");
    if (fs::Exists(rootfs)) {
      try {
        snapshot::UnmountAll(rootfs);
      } catch (...) {
      }
    }
  }
  if (opts.images) {
    try {
      opts.images->snapshotter().Remove(c.id);
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound) throw;
    }
  }
  mount::CleanupStaged(opts.state_dir, c.id);
  if (!c.dir.empty()) fs::RemoveAll(c.dir);
}

// --- create ------------------------------------------------------------------------------------

void RuntimeService::CreateContainer(const v1::CreateContainerRequest& req, v1::CreateContainerResponse* resp) {
  auto& I = *impl_;
  const auto& cfg = req.config();
  if (!req.has_config() || !cfg.has_metadata() || cfg.metadata().name().empty()) {
    throw Error(Code::kInvalidArgument, "container config must include metadata with a name");
  }
  if (cfg.metadata().name().size() > 253 || cfg.metadata().name().find('/') != std::string::npos) {
    throw Error(Code::kInvalidArgument, "invalid container name \"" + cfg.metadata().name() + "\"");
  }
  if (cfg.image().image().empty()) throw Error(Code::kInvalidArgument, "container config must include an image");
  if (cfg.tty()) throw Error(Code::kInvalidArgument, "tty containers are not supported yet");
  auto sb = I.FindSandbox(req.pod_sandbox_id());
  std::string sb_state, sb_netns, sb_dir, sb_handler, sb_cg;
  int sb_pid = 0;
  v1::PodSandboxConfig sbcfg;
  {
    std::lock_guard<std::mutex> lock(I.mu);
    sb_state = sb->state;
    sb_netns = sb->netns_path;
    sb_dir = sb->dir;
    sb_handler = sb->handler;
    sb_pid = sb->pid;
    sbcfg = sb->config;
    sb_cg = sb->cgroups_path.substr(0, sb->cgroups_path.rfind('/'));
  }
  if (sb_state != kReady) {
    throw Error(Code::kFailedPrecondition, "pod sandbox " + sb->id + " is not ready (state " + sb_state + ")");
  }
  if (!I.opts.images) throw Error(Code::kFailedPrecondition, "no image service configured");

  // Security context checks that need nothing but the request.
  const auto& sc = cfg.linux().security_context();
  if (sc.privileged() && !sbcfg.linux().security_context().privileged()) {
    throw Error(Code::kInvalidArgument, "no privileged container allowed in sandbox " + sb->id);
  }
  if (sc.has_run_as_group() && !sc.has_run_as_user() && sc.run_as_username().empty()) {
    throw Error(Code::kInvalidArgument, "run_as_group is set without run_as_user or run_as_username");
  }
  if (sc.has_run_as_user() && !sc.run_as_username().empty()) {
    throw Error(Code::kInvalidArgument, "run_as_user and run_as_username are mutually exclusive");
  }
  if (sc.has_run_as_user() && (sc.run_as_user().value() < 0 || sc.run_as_user().value() > 0xfffffffe)) {
    throw Error(Code::kInvalidArgument, "run_as_user " + std::to_string(sc.run_as_user().value()) + " is out of range");
  }
  if (sc.has_run_as_group() && (sc.run_as_group().value() < 0 || sc.run_as_group().value() > 0xfffffffe)) {
    throw Error(Code::kInvalidArgument, "run_as_group " + std::to_string(sc.run_as_group().value()) + " is out of range");
  }
  const auto& cns = sc.namespace_options();
  if (cns.pid() == v1::TARGET && cns.target_id().empty()) {
    throw Error(Code::kInvalidArgument, "namespace mode TARGET requires target_id");
  }
  std::set<std::string> caps_add, caps_drop;
  bool add_all = false, drop_all = false;
  for (const auto& c : sc.capabilities().add_capabilities()) {
    if (c == "ALL" || c == "all") add_all = true;
    else caps_add.insert(NormalizeCapability(c));
  }
  for (const auto& c : sc.capabilities().drop_capabilities()) {
    if (c == "ALL" || c == "all") drop_all = true;
    else caps_drop.insert(NormalizeCapability(c));
  }
  auto bounding = BoundingCaps();
  for (const auto& c : caps_add) {
    if (!bounding.count(c)) {
      throw Error(Code::kInvalidArgument, "capability " + c + " is not in berthd's bounding set and cannot be granted");
    }
  }
  for (const auto& m : cfg.mounts()) {
    if (!CleanAbsPath(m.container_path())) {
      throw Error(Code::kInvalidArgument, "mount container_path \"" + m.container_path() + "\" must be an absolute path without \"..\"");
    }
    if (!CleanAbsPath(m.host_path())) {
      throw Error(Code::kInvalidArgument, "mount host_path \"" + m.host_path() + "\" must be an absolute path without \"..\"");
    }
    if (m.recursive_read_only()) {
      if (!m.readonly()) {
        throw Error(Code::kInvalidArgument, "mount " + m.container_path() + ": recursive_read_only requires readonly");
      }
      if (m.propagation() != v1::PROPAGATION_PRIVATE) {
        throw Error(Code::kInvalidArgument, "mount " + m.container_path() + ": recursive_read_only requires PROPAGATION_PRIVATE, got " + v1::MountPropagation_Name(m.propagation()));
      }
    }
  }
  std::string log_path;
  if (!cfg.log_path().empty()) {
    if (cfg.log_path()[0] == '/' || cfg.log_path().find("..") != std::string::npos) {
      throw Error(Code::kInvalidArgument, "log_path \"" + cfg.log_path() + "\" must be relative to the pod's log_directory without \"..\"");
    }
    if (sbcfg.log_directory().empty()) {
      throw Error(Code::kInvalidArgument, "log_path \"" + cfg.log_path() + "\" given but the pod sandbox has no log_directory");
    }
    log_path = fs::Join(sbcfg.log_directory(), cfg.log_path());
  }
  std::string seccomp_json;
  if (sc.seccomp().profile_type() == v1::SecurityProfile::Localhost) {
    const auto& ref = sc.seccomp().localhost_ref();
    if (!CleanAbsPath(ref)) {
      throw Error(Code::kInvalidArgument, "seccomp localhost_ref \"" + ref + "\" must be an absolute path");
    }
    try {
      seccomp_json = fs::ReadFile(ref, 4 << 20);
    } catch (const Error& e) {
      throw Error(Code::kInvalidArgument, std::string("failed to load seccomp profile: ") + e.what());
    }
    if (nlohmann::json::parse(seccomp_json, nullptr, false).is_discarded()) {
      throw Error(Code::kInvalidArgument, "seccomp profile " + ref + " is not JSON");
    }
  }

  auto image = I.opts.images->Resolve(cfg.image().image());
  if (!image) throw Error(Code::kNotFound, "image \"" + cfg.image().image() + "\" not found");
  auto image_cfg_doc = nlohmann::json::parse(image->config_json, nullptr, false);
  nlohmann::json icfg = image_cfg_doc.is_object() && image_cfg_doc.contains("config") ? image_cfg_doc["config"] : nlohmann::json::object();

  // Command line.
  std::vector<std::string> args;
  if (!cfg.command().empty()) {
    args.assign(cfg.command().begin(), cfg.command().end());
    args.insert(args.end(), cfg.args().begin(), cfg.args().end());
  } else {
    args = JsonStrings(icfg, "Entrypoint");
    if (!cfg.args().empty()) args.insert(args.end(), cfg.args().begin(), cfg.args().end());
    else {
      auto cmd = JsonStrings(icfg, "Cmd");
      args.insert(args.end(), cmd.begin(), cmd.end());
    }
  }
  if (args.empty()) throw Error(Code::kInvalidArgument, "no command specified for container " + cfg.metadata().name());

  auto c = std::make_shared<ContainerRecord>();
  c->id = NewObjectId();
  c->sandbox_id = sb->id;
  c->name_key = ContainerNameKey(cfg.metadata(), sbcfg.metadata());
  c->config = cfg;
  c->image_id = image->id;
  c->image_ref = image->ref;
  c->created_at = NowNs();
  c->dir = fs::Join(I.opts.state_dir, "containers/" + c->id);
  c->log_path = log_path;
  c->cgroups_path = sb_cg + "/" + c->id;
  c->resources = cfg.linux().resources();
  if (cfg.stop_signal() != v1::RUNTIME_DEFAULT) c->stop_signal = ParseSignal(SignalProtoToName(cfg.stop_signal()));
  else if (int s = ParseSignal(JsonString(icfg, "StopSignal")); s > 0) c->stop_signal = s;
  if (c->stop_signal <= 0) c->stop_signal = SIGTERM;
  {
    std::lock_guard<std::mutex> lock(I.mu);
    auto it = I.container_names.find(c->name_key);
    if (it != I.container_names.end()) {
      throw Error(Code::kAlreadyExists, "container name \"" + c->name_key + "\" is reserved for " + it->second);
    }
    I.container_names[c->name_key] = c->id;
    I.containers[c->id] = c;
  }
  std::lock_guard<std::mutex> op(*c->op);
  try {
    I.Save(*c);
    fs::MkdirAll(c->dir, 0711);
    std::string rootfs = fs::Join(c->dir, "rootfs");
    fs::MkdirAll(rootfs, 0755);
    auto mounts = I.opts.images->snapshotter().Prepare(c->id, image->chain_id);
    c->snapshot_prepared = true;
    snapshot::MountAll(mounts, rootfs);
    c->rootfs_mounted = true;
    I.Save(*c);

    nlohmann::json spec = DefaultSpec();
    spec["root"] = {{"path", rootfs}, {"readonly", sc.readonly_rootfs()}};
    auto& proc = spec["process"];
    proc["args"] = args;
    // Environment: image, then the request, then HOSTNAME.
    std::vector<std::string> env = JsonStrings(icfg, "Env");
    auto set_env = [&](const std::string& kv) {
      auto key = kv.substr(0, kv.find('='));
      auto it = std::find_if(env.begin(), env.end(), [&](const std::string& e) { return e.substr(0, e.find('=')) == key; });
      if (it != env.end()) *it = kv;
      else env.push_back(kv);
    };
    if (std::none_of(env.begin(), env.end(), [](const std::string& e) { return e.rfind("PATH=", 0) == 0; })) {
      env.insert(env.begin(), kDefaultPath);
    }
    for (const auto& kv : cfg.envs()) set_env(kv.key() + "=" + kv.value());
    std::string hostname = fs::ReadFile(fs::Join(sb_dir, "hostname"), 4096);
    while (!hostname.empty() && hostname.back() == '\n') hostname.pop_back();
    set_env("HOSTNAME=" + hostname);
    proc["env"] = env;
    std::string cwd = !cfg.working_dir().empty() ? cfg.working_dir() : JsonString(icfg, "WorkingDir");
    proc["cwd"] = cwd.empty() ? "/" : cwd;
    if (cwd.size() && cwd[0] != '/') throw Error(Code::kInvalidArgument, "working_dir \"" + cwd + "\" must be absolute");

    // User.
    auto passwd = ParseColonFile(ReadRootfsFile(rootfs, "etc/passwd"));
    auto groupf = ParseColonFile(ReadRootfsFile(rootfs, "etc/group"));
    auto by_name = [&](const std::string& n) -> const PasswdEntry* {
      for (const auto& e : passwd) if (e.name == n) return &e;
      return nullptr;
    };
    auto by_uid = [&](int64_t uid) -> const PasswdEntry* {
      for (const auto& e : passwd) if (e.uid == uid) return &e;
      return nullptr;
    };
    int64_t uid = 0, gid = 0;
    if (sc.has_run_as_user()) {
      uid = sc.run_as_user().value();
      auto* e = by_uid(uid);
      gid = e && e->gid >= 0 ? e->gid : 0;
    } else if (!sc.run_as_username().empty()) {
      auto* e = by_name(sc.run_as_username());
      if (!e) throw Error(Code::kInvalidArgument, "user \"" + sc.run_as_username() + "\" not found in the image's /etc/passwd");
      uid = e->uid;
      gid = e->gid >= 0 ? e->gid : 0;
    } else {
      std::string user = JsonString(icfg, "User");
      if (!user.empty()) {
        std::string u = user.substr(0, user.find(':'));
        std::string g = user.find(':') == std::string::npos ? "" : user.substr(user.find(':') + 1);
        if (IsNumber(u)) {
          uid = std::stoll(u);
          auto* e = by_uid(uid);
          gid = e && e->gid >= 0 ? e->gid : 0;
        } else {
          auto* e = by_name(u);
          if (!e) throw Error(Code::kInvalidArgument, "image user \"" + u + "\" not found in the image's /etc/passwd");
          uid = e->uid;
          gid = e->gid >= 0 ? e->gid : 0;
        }
        if (!g.empty()) {
          if (IsNumber(g)) gid = std::stoll(g);
          else {
            auto it = std::find_if(groupf.begin(), groupf.end(), [&](const PasswdEntry& e) { return e.name == g; });
            if (it == groupf.end()) throw Error(Code::kInvalidArgument, "image group \"" + g + "\" not found in the image's /etc/group");
            gid = it->uid;  // group files: name:x:gid
          }
        }
      }
    }
    if (sc.has_run_as_group()) gid = sc.run_as_group().value();
    c->uid = uid;
    c->gid = gid;
    for (auto g : sc.supplemental_groups()) c->groups.push_back(g);
    proc["user"] = {{"uid", uid}, {"gid", gid}};
    if (!c->groups.empty()) proc["user"]["additionalGids"] = c->groups;

    // Capabilities.
    std::vector<std::string> caps;
    if (sc.privileged()) {
      caps.assign(bounding.begin(), bounding.end());
    } else {
      std::set<std::string> set;
      if (!drop_all) {
        auto def = DefaultSpec()["process"]["capabilities"]["bounding"].get<std::vector<std::string>>();
        set.insert(def.begin(), def.end());
      }
      if (add_all) set.insert(bounding.begin(), bounding.end());
      for (const auto& x : caps_drop) set.erase(x);
      set.insert(caps_add.begin(), caps_add.end());
      caps.assign(set.begin(), set.end());
    }
    proc["capabilities"] = {{"bounding", caps}, {"effective", caps}, {"permitted", caps}};
    proc["noNewPrivileges"] = sc.no_new_privs();
    int oom = 0;
    nlohmann::json res = OciResources(c->resources, I.opts.restrict_oom_score_adj, OwnOomScoreAdj(), &oom);
    proc["oomScoreAdj"] = oom;
    c->resources.set_oom_score_adj(oom);

    auto& lx = spec["linux"];
    res["devices"] = sc.privileged() ? nlohmann::json::array({{{"allow", true}, {"access", "rwm"}}})
                                     : lx["resources"]["devices"];
    lx["resources"] = res;
    lx["cgroupsPath"] = c->cgroups_path;
    if (sc.privileged()) {
      lx.erase("maskedPaths");
      lx.erase("readonlyPaths");
      for (auto& m : spec["mounts"]) {
        if (m["destination"] == "/sys" || m["destination"] == "/sys/fs/cgroup") {
          auto opts = m["options"].get<std::vector<std::string>>();
          opts.erase(std::remove(opts.begin(), opts.end(), "ro"), opts.end());
          opts.push_back("rw");
          m["options"] = opts;
        }
      }
    } else {
      if (!sc.masked_paths().empty()) lx["maskedPaths"] = std::vector<std::string>(sc.masked_paths().begin(), sc.masked_paths().end());
      if (!sc.readonly_paths().empty()) lx["readonlyPaths"] = std::vector<std::string>(sc.readonly_paths().begin(), sc.readonly_paths().end());
    }
    if (!seccomp_json.empty()) lx["seccomp"] = nlohmann::json::parse(seccomp_json);

    // Namespaces.
    const auto& pns = sbcfg.linux().security_context().namespace_options();
    auto& nss = lx["namespaces"];
    std::string pause_ns = "/proc/" + std::to_string(sb_pid) + "/ns/";
    if (pns.network() != v1::NODE) {
      nss.push_back({{"type", "network"}, {"path", sb_netns}});
      nss.push_back({{"type", "uts"}, {"path", pause_ns + "uts"}});
    }
    if (pns.ipc() != v1::NODE) nss.push_back({{"type", "ipc"}, {"path", pause_ns + "ipc"}});
    switch (cns.pid()) {
      case v1::NODE: break;
      case v1::CONTAINER: nss.push_back({{"type", "pid"}}); break;
      case v1::TARGET: {
        auto target = I.FindContainer(cns.target_id());
        std::lock_guard<std::mutex> lock(I.mu);
        if (target->state != kRunning || target->pid <= 0) {
          throw Error(Code::kFailedPrecondition, "target container " + cns.target_id() + " is not running");
        }
        nss.push_back({{"type", "pid"}, {"path", "/proc/" + std::to_string(target->pid) + "/ns/pid"}});
        break;
      }
      default:  // POD
        if (pns.pid() != v1::NODE) nss.push_back({{"type", "pid"}, {"path", pause_ns + "pid"}});
        break;
    }

    // Mounts: defaults, the pod's files, then volumes (a volume replaces a default at its path).
    std::set<std::string> user_dests;
    for (const auto& m : cfg.mounts()) user_dests.insert(m.container_path());
    nlohmann::json mounts_json = nlohmann::json::array();
    for (auto& m : spec["mounts"]) {
      if (!user_dests.count(m["destination"].get<std::string>())) mounts_json.push_back(m);
    }
    auto bind = [&](const std::string& dest, const std::string& src, bool ro) {
      if (user_dests.count(dest)) return;
      nlohmann::json o = {"rbind", "rprivate", ro ? "ro" : "rw"};
      mounts_json.push_back({{"destination", dest}, {"type", "bind"}, {"source", src}, {"options", o}});
    };
    bind("/etc/hosts", fs::Join(sb_dir, "hosts"), sc.readonly_rootfs());
    bind("/etc/hostname", fs::Join(sb_dir, "hostname"), sc.readonly_rootfs());
    bind("/etc/resolv.conf", fs::Join(sb_dir, "resolv.conf"), sc.readonly_rootfs());
    if (pns.ipc() == v1::NODE) bind("/dev/shm", "/dev/shm", false);
    else bind("/dev/shm", fs::Join(sb_dir, "shm"), false);

    bool want_rro = false;
    for (const auto& m : cfg.mounts()) want_rro |= m.readonly();
    const runtime::HandlerRRO* rro = want_rro ? &I.RROFor(sb_handler) : nullptr;
    for (const auto& m : cfg.mounts()) {
      if (!fs::Exists(m.host_path())) fs::MkdirAll(m.host_path(), 0755);
      v1::Mount applied = m;
      std::string source = m.host_path();
      std::vector<std::string> o = {"rbind", Propagation(m.propagation())};
      bool make_rro = false, via_fallback = false;
      if (m.readonly()) {
        if (m.recursive_read_only()) {
          if (!rro->SupportedForKEP()) {
            throw Error(Code::kInvalidArgument, "mount " + m.container_path() + ": recursive read-only mounts are not supported by runtime handler \"" + sb_handler + "\": " + rro->runtime.detail);
          }
          make_rro = true;
          via_fallback = rro->KEPViaFallback();
        } else if (rro->resolution.enabled && m.propagation() == v1::PROPAGATION_PRIVATE) {
          make_rro = true;
          via_fallback = rro->resolution.via_fallback;
        }
      }
      if (make_rro && via_fallback) {
        source = mount::StageReadOnly(I.opts.state_dir, c->id, m.host_path());
        o.push_back("ro");
      } else if (make_rro) {
        o.push_back("rro");
      } else {
        o.push_back(m.readonly() ? "ro" : "rw");
      }
      applied.set_recursive_read_only(make_rro);
      c->mounts.push_back(applied);
      mounts_json.push_back({{"destination", m.container_path()}, {"type", "bind"}, {"source", source}, {"options", o}});
    }
    spec["mounts"] = mounts_json;
    if (!c->log_path.empty()) fs::MkdirAll(std::filesystem::path(c->log_path).parent_path().string(), 0755);
    fs::WriteFileAtomic(fs::Join(c->dir, "config.json"), spec.dump(), 0600);
    {
      std::lock_guard<std::mutex> lock(I.mu);
      c->state = kCreated;
    }
    I.Save(*c);
  } catch (...) {
    try {
      I.CleanupContainer(*c);
      I.records->DeleteContainer(c->id);
    } catch (...) {
    }
    std::lock_guard<std::mutex> lock(I.mu);
    I.containers.erase(c->id);
    I.container_names.erase(c->name_key);
    throw;
  }
  I.Publish(*c, v1::CONTAINER_CREATED_EVENT);
  resp->set_container_id(c->id);
}

// --- start, stop, remove -----------------------------------------------------------------------

void RuntimeService::StartContainer(const v1::StartContainerRequest& req) {
  auto& I = *impl_;
  auto c = I.FindContainer(req.container_id());
  std::lock_guard<std::mutex> op(*c->op);
  if (c->state != kCreated) {
    throw Error(Code::kFailedPrecondition, "container " + c->id + " is in " + c->state + " state, not created");
  }
  auto sb = I.FindSandbox(c->sandbox_id);
  {
    std::lock_guard<std::mutex> lock(I.mu);
    if (sb->state != kReady) throw Error(Code::kFailedPrecondition, "pod sandbox " + sb->id + " is not ready");
  }
  auto cli = I.CliFor(sb->handler);
  monitor::SpawnOptions so;
  so.monitor_path = I.opts.monitor_path;
  so.id = c->id;
  so.bundle = c->dir;
  so.runtime_log = fs::Join(c->dir, "runtime.log");
  so.runtime_argv = cli.Argv({}, so.runtime_log);
  so.log_path = c->log_path.empty() ? "/dev/null" : c->log_path;
  so.max_line = I.opts.max_container_log_line_size;
  ::unlink(fs::Join(c->dir, "exit").c_str());
  try {
    auto spawned = monitor::Spawn(so);
    {
      std::lock_guard<std::mutex> lock(I.mu);
      c->pid = spawned.container_pid;
      c->monitor_pid = spawned.monitor_pid;
    }
    I.Save(*c);
    cli.Start(c->id);
  } catch (const Error& e) {
    try {
      cli.Kill(c->id, SIGKILL, true);
    } catch (...) {
    }
    if (c->monitor_pid > 0) monitor::WaitMonitor(c->monitor_pid, c->id, std::chrono::seconds(10));
    try {
      cli.Delete(c->id, true);
    } catch (...) {
    }
    {
      std::lock_guard<std::mutex> lock(I.mu);
      c->state = kExited;
      c->exit_code = 128;
      c->reason = "StartError";
      c->message = e.what();
      c->finished_at = NowNs();
    }
    I.Save(*c);
    I.Publish(*c, v1::CONTAINER_STOPPED_EVENT);
    throw Error(e.code() == Code::kOk ? Code::kUnknown : e.code(), "failed to start container " + c->id + ": " + e.what());
  }
  {
    std::lock_guard<std::mutex> lock(I.mu);
    c->state = kRunning;
    c->started_at = NowNs();
  }
  I.Save(*c);
  I.Publish(*c, v1::CONTAINER_STARTED_EVENT);
}

void RuntimeService::Impl::StopContainerLocked(ContainerRecord& c, int64_t timeout_s) {
  if (c.state != kRunning) return;
  std::string handler;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = sandboxes.find(c.sandbox_id);
    if (it != sandboxes.end()) handler = it->second->handler;
  }
  auto cli = CliFor(handler);
  if (timeout_s > 0 && c.stop_signal != SIGKILL) {
    try {
      cli.Kill(c.id, c.stop_signal);
    } catch (const Error&) {
    }
    monitor::WaitMonitor(c.monitor_pid, c.id, std::chrono::seconds(std::min<int64_t>(timeout_s, 365LL * 86400)));
  }
  while (c.monitor_pid > 0 && monitor::IsMonitorAlive(c.monitor_pid, c.id)) {
    try {
      cli.Kill(c.id, SIGKILL, true);
    } catch (const Error&) {
    }
    if (monitor::WaitMonitor(c.monitor_pid, c.id, std::chrono::seconds(10))) break;
  }
  HandleExit(c);
}

void RuntimeService::StopContainer(const v1::StopContainerRequest& req) {
  auto c = impl_->FindContainer(req.container_id());
  std::lock_guard<std::mutex> op(*c->op);
  impl_->StopContainerLocked(*c, req.timeout());
}

void RuntimeService::Impl::RemoveContainerLocked(const std::shared_ptr<ContainerRecord>& c) {
  std::lock_guard<std::mutex> op(*c->op);
  StopContainerLocked(*c, 0);
  CleanupContainer(*c);
  records->DeleteContainer(c->id);
  {
    std::lock_guard<std::mutex> lock(mu);
    containers.erase(c->id);
    container_names.erase(c->name_key);
    cpu_samples.erase(c->id);
  }
  Publish(*c, v1::CONTAINER_DELETED_EVENT);
}

void RuntimeService::RemoveContainer(const v1::RemoveContainerRequest& req) {
  if (req.container_id().empty()) throw Error(Code::kInvalidArgument, "container id must not be empty");
  auto c = impl_->FindContainerOrNull(req.container_id());
  if (!c) return;  // already removed
  impl_->RemoveContainerLocked(c);
}

// --- queries -----------------------------------------------------------------------------------

void RuntimeService::ContainerStatus(const v1::ContainerStatusRequest& req, v1::ContainerStatusResponse* resp) {
  auto& I = *impl_;
  auto c = I.FindContainer(req.container_id());
  std::lock_guard<std::mutex> lock(I.mu);
  I.FillStatus(*c, resp->mutable_status());
  if (req.verbose()) {
    nlohmann::json info = {{"sandboxID", c->sandbox_id}, {"pid", c->pid},           {"monitorPid", c->monitor_pid},
                           {"snapshotKey", c->id},       {"bundle", c->dir},        {"cgroupsPath", c->cgroups_path},
                           {"stopSignal", c->stop_signal}, {"state", c->state}};
    try {
      info["runtimeSpec"] = nlohmann::json::parse(fs::ReadFile(fs::Join(c->dir, "config.json"), 1 << 20));
    } catch (...) {
    }
    (*resp->mutable_info())["info"] = info.dump();
  }
}

void RuntimeService::ListContainers(const v1::ListContainersRequest& req, v1::ListContainersResponse* resp) {
  auto& I = *impl_;
  const auto& f = req.filter();
  std::lock_guard<std::mutex> lock(I.mu);
  for (const auto& [id, c] : I.containers) {
    if (c->state == kCreating) continue;
    if (!f.id().empty() && id.compare(0, f.id().size(), f.id()) != 0) continue;
    if (!f.pod_sandbox_id().empty() && c->sandbox_id.compare(0, f.pod_sandbox_id().size(), f.pod_sandbox_id()) != 0) continue;
    v1::ContainerState state = c->state == kRunning ? v1::CONTAINER_RUNNING
                               : c->state == kExited ? v1::CONTAINER_EXITED
                                                     : v1::CONTAINER_CREATED;
    if (f.has_state() && f.state().state() != state) continue;
    bool match = true;
    for (const auto& [k, v] : f.label_selector()) {
      auto it = c->config.labels().find(k);
      if (it == c->config.labels().end() || it->second != v) {
        match = false;
        break;
      }
    }
    if (!match) continue;
    auto* item = resp->add_containers();
    item->set_id(id);
    item->set_pod_sandbox_id(c->sandbox_id);
    *item->mutable_metadata() = c->config.metadata();
    *item->mutable_image() = c->config.image();
    item->mutable_image()->set_image(c->image_ref.empty() ? c->config.image().image() : c->image_ref);
    item->set_image_ref(c->image_id);
    item->set_image_id(c->image_id);
    item->set_state(state);
    item->set_created_at(c->created_at);
    *item->mutable_labels() = c->config.labels();
    *item->mutable_annotations() = c->config.annotations();
  }
}

void RuntimeService::UpdateContainerResources(const v1::UpdateContainerResourcesRequest& req) {
  auto& I = *impl_;
  auto c = I.FindContainer(req.container_id());
  std::lock_guard<std::mutex> op(*c->op);
  if (c->state == kExited) throw Error(Code::kFailedPrecondition, "container " + c->id + " has exited");
  int oom = 0;
  nlohmann::json res = OciResources(req.linux(), I.opts.restrict_oom_score_adj, OwnOomScoreAdj(), &oom);
  std::string cfg_path = fs::Join(c->dir, "config.json");
  auto spec = nlohmann::json::parse(fs::ReadFile(cfg_path, 4 << 20));
  auto devices = spec["linux"]["resources"].value("devices", nlohmann::json::array());
  nlohmann::json merged = res;
  merged["devices"] = devices;
  spec["linux"]["resources"] = merged;
  if (c->state == kRunning) {
    std::string handler;
    {
      std::lock_guard<std::mutex> lock(I.mu);
      handler = I.sandboxes.count(c->sandbox_id) ? I.sandboxes[c->sandbox_id]->handler : "";
    }
    I.CliFor(handler).Update(c->id, res.dump());
  }
  fs::WriteFileAtomic(cfg_path, spec.dump(), 0600);
  {
    std::lock_guard<std::mutex> lock(I.mu);
    c->resources = req.linux();
    c->resources.set_oom_score_adj(oom);
  }
  I.Save(*c);
}

void RuntimeService::ReopenContainerLog(const v1::ReopenContainerLogRequest& req) {
  auto c = impl_->FindContainer(req.container_id());
  if (c->state != kRunning) throw Error(Code::kFailedPrecondition, "container " + c->id + " is not running");
  monitor::ReopenLog(c->monitor_pid, c->id);
}

void RuntimeService::ExecSync(const v1::ExecSyncRequest& req, v1::ExecSyncResponse* resp) {
  auto& I = *impl_;
  auto c = I.FindContainer(req.container_id());
  if (req.cmd().empty()) throw Error(Code::kInvalidArgument, "exec command must not be empty");
  if (req.timeout() < 0) throw Error(Code::kInvalidArgument, "exec timeout must not be negative");
  std::string handler;
  {
    std::lock_guard<std::mutex> lock(I.mu);
    if (c->state != kRunning) throw Error(Code::kFailedPrecondition, "container " + c->id + " is not running");
    handler = I.sandboxes.count(c->sandbox_id) ? I.sandboxes[c->sandbox_id]->handler : "";
  }
  auto spec = nlohmann::json::parse(fs::ReadFile(fs::Join(c->dir, "config.json"), 4 << 20));
  nlohmann::json process = spec["process"];
  process["args"] = std::vector<std::string>(req.cmd().begin(), req.cmd().end());
  process["terminal"] = false;
  process.erase("oomScoreAdj");
  runtime::ExecOptions eo;
  eo.process_json = process.dump();
  eo.timeout = req.timeout() > 0 ? std::chrono::milliseconds(std::min<int64_t>(req.timeout(), 86400LL * 365) * 1000)
                                 : std::chrono::milliseconds(86400LL * 365 * 1000);
  eo.max_output = 4u << 20;
  auto r = I.CliFor(handler).Exec(c->id, eo);
  if (r.timed_out) {
    throw Error(Code::kDeadlineExceeded, "command " + req.cmd(0) + " in container " + c->id + " timed out after " +
                                             std::to_string(req.timeout()) + "s");
  }
  resp->set_stdout(r.out);
  resp->set_stderr(r.err);
  resp->set_exit_code(r.exit_code);
}

}  // namespace berth::lifecycle
