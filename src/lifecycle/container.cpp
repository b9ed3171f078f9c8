// Containers: root file system from the snapshotter, OCI spec, berth-monitor, exit handling.
#include "lifecycle/service_impl.h"  // first: its enum Signal names collide with <signal.h> macros

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "monitor/client.h"
#include "mount/rro.h"
#include "oci/spec.h"
#include "snapshot/snapshotter.h"

namespace berth::lifecycle {

std::string NewObjectId();

namespace {

std::string ContainerNameKey(const v1::ContainerMetadata& m, const v1::PodSandboxMetadata& pod) {
  return m.name() + "_" + pod.name() + "_" + pod.namespace_() + "_" + pod.uid() + "_" + std::to_string(m.attempt());
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
  exec::Reap(c.monitor_fd);  // the monitor has exited (callers wait for it)
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
  // The exit is reported first; the runtime's container goes after (still under the container's
  // operation lock, so before a RemoveContainer can proceed).
  DeleteRuntimeContainer(c, handler);
}

void RuntimeService::Impl::DeleteRuntimeContainer(ContainerRecord& c, const std::string& handler) {
  if (c.runtime_gone) return;
  try {
    CliFor(handler).DeleteExited(c.id);  // the monitor has exited, after the container's init
  } catch (...) {
    return;
  }
  c.runtime_gone = true;
  Save(c);
}

void RuntimeService::Impl::CleanupContainer(ContainerRecord& c) {
  CleanupContainerRuntime(c);
  CleanupContainerFiles(c.id, c.dir);
}

void RuntimeService::Impl::CleanupContainerRuntime(ContainerRecord& c) {
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
  exec::Reap(c.monitor_fd);
  if (!c.runtime_gone) {
    try {
      CliFor(handler).DeleteExited(c.id);  // a runc `delete --force` when the init still runs
      c.runtime_gone = true;
    } catch (...) {
    }
  }
}

void RuntimeService::Impl::CleanupContainerFiles(const std::string& id, const std::string& dir) {
  if (!dir.empty()) {
    std::string rootfs = fs::Join(dir, "rootfs");
    if (fs::Exists(rootfs)) {
      try {
        snapshot::UnmountAll(rootfs);
      } catch (...) {
      }
    }
  }
  if (opts.images) {
    try {
      opts.images->snapshotter().Remove(id);
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound) throw;
    }
  }
  mount::CleanupStaged(opts.state_dir, id);
  if (!dir.empty()) fs::RemoveAll(dir);  // last: a container dir left marks unfinished cleanup
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
  auto sb = I.FindSandbox(req.pod_sandbox_id());
  std::string sb_state, sb_netns, sb_dir, sb_handler;
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
  }
  if (sb_state != kReady) {
    throw Error(Code::kFailedPrecondition, "pod sandbox " + sb->id + " is not ready (state " + sb_state + ")");
  }
  if (!I.opts.images) throw Error(Code::kFailedPrecondition, "no image service configured");
  const Handler& handler = I.HandlerFor(sb_handler);

  // What the spec cannot check: the log path, the TARGET container, volume paths to create.
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
  const auto& cns = cfg.linux().security_context().namespace_options();
  int target_pid = 0;
  if (cns.pid() == v1::TARGET) {
    if (cns.target_id().empty()) {
      throw Error(Code::kInvalidArgument, "linux.security_context.namespace_options.target_id: required for the TARGET pid mode");
    }
    auto target = I.FindContainer(cns.target_id());
    std::lock_guard<std::mutex> lock(I.mu);
    if (target->state != kRunning || target->pid <= 0) {
      throw Error(Code::kFailedPrecondition, "target container " + cns.target_id() + " is not running");
    }
    target_pid = target->pid;
  }
  for (int i = 0; i < cfg.mounts_size(); ++i) {
    const auto& m = cfg.mounts(i);
    if (!CleanAbsPath(m.container_path())) {
      throw Error(Code::kInvalidArgument, "mounts[" + std::to_string(i) + "].container_path: \"" + m.container_path() + "\" must be an absolute path without \"..\"");
    }
    if (!CleanAbsPath(m.host_path())) {
      throw Error(Code::kInvalidArgument, "mounts[" + std::to_string(i) + "].host_path: \"" + m.host_path() + "\" must be an absolute path without \"..\"");
    }
  }

  auto image = I.opts.images->Resolve(cfg.image().image());
  if (!image) throw Error(Code::kNotFound, "image \"" + cfg.image().image() + "\" not found");
  auto image_doc = nlohmann::json::parse(image->config_json, nullptr, false);
  if (image_doc.is_discarded()) {
    throw Error(Code::kFailedPrecondition, "image " + image->ref + ": the image config is not JSON");
  }
  oci::ImageConfig icfg = oci::ParseImageConfig(image_doc);
  int stop_signal = oci::StopSignal(cfg.stop_signal(), icfg.stop_signal);

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
  c->resources = cfg.linux().resources();
  c->stop_signal = stop_signal;
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
    // Stored once, created: a restart midway finds the directory without a record and sweeps
    // it (Recover), with the snapshot and mounts it names.
    fs::MkdirAll(c->dir, 0711);
    std::string rootfs = fs::Join(c->dir, "rootfs");
    fs::MkdirAll(rootfs, 0755);
    auto mounts = I.opts.images->snapshotter().Prepare(c->id, image->chain_id);
    c->snapshot_prepared = true;
    snapshot::MountAll(mounts, rootfs);
    c->rootfs_mounted = true;
    // Volume host paths that do not exist yet become directories (as containerd does).
    for (const auto& m : cfg.mounts()) {
      if (!fs::Exists(m.host_path())) fs::MkdirAll(m.host_path(), 0755);
    }

    std::string hostname = fs::ReadFile(fs::Join(sb_dir, "hostname"), 4096);
    while (!hostname.empty() && hostname.back() == '\n') hostname.pop_back();
    oci::ContainerSpecOptions o;
    o.id = c->id;
    o.sandbox_id = sb->id;
    o.sandbox_pid = sb_pid;
    o.netns_path = sb_netns;
    o.hostname = hostname;
    o.target_pid = target_pid;
    o.rootfs = rootfs;
    o.image_name = image->ref;
    o.image = icfg;
    o.base_spec = handler.base_spec;
    o.hosts_path = fs::Join(sb_dir, "hosts");
    o.hostname_path = fs::Join(sb_dir, "hostname");
    o.resolv_conf_path = fs::Join(sb_dir, "resolv.conf");
    o.shm_path = sbcfg.linux().security_context().namespace_options().ipc() == v1::NODE ? "/dev/shm"
                                                                                         : fs::Join(sb_dir, "shm");
    o.rro = handler.rro.value_or(oci::HandlerRRO{});
    o.privileged_without_host_devices = handler.privileged_without_host_devices;
    o.restrict_oom_score_adj = I.opts.restrict_oom_score_adj;
    o.unset_seccomp_profile = I.opts.unset_seccomp_profile;
    o.container_annotation_patterns = handler.container_annotations;
    o.node = I.NodeFor(handler);
    std::vector<oci::MountPlan> plans;
    nlohmann::json spec = oci::ContainerSpec(cfg, sbcfg, o, &plans);

    // Volumes: stage those that only berth's fallback can make recursively read-only, and record
    // each as applied (recursive_read_only = effective).
    for (size_t i = 0; i < plans.size(); ++i) {
      const auto& plan = plans[i];
      v1::Mount applied = cfg.mounts(static_cast<int>(i));
      const auto& mo = plan.mount.options;
      bool rro = plan.stage_read_only || std::find(mo.begin(), mo.end(), "rro") != mo.end();
      if (plan.stage_read_only) {
        std::string staged = mount::StageReadOnly(I.opts.state_dir, c->id, plan.resolved_host_path);
        for (auto& jm : spec["mounts"]) {
          if (jm.value("destination", "") == plan.mount.destination) jm["source"] = staged;
        }
      }
      applied.set_recursive_read_only(rro);
      c->mounts.push_back(applied);
    }
    const auto& user = spec["process"]["user"];
    c->uid = user.value("uid", 0);
    c->gid = user.value("gid", 0);
    if (user.contains("additionalGids")) c->groups = user["additionalGids"].get<std::vector<int64_t>>();
    if (spec["process"].contains("oomScoreAdj")) c->resources.set_oom_score_adj(spec["process"]["oomScoreAdj"].get<int>());
    c->cgroups_path = spec["linux"].value("cgroupsPath", "");

    if (!c->log_path.empty()) fs::MkdirAll(std::filesystem::path(c->log_path).parent_path().string(), 0755);
    fs::WriteFileAtomic(fs::Join(c->dir, "config.json"), spec.dump(), 0600, /*durable=*/false);
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
  so.start = true;  // created and started by one `<runtime> run --detach`
  if (c->config.tty()) {
    // The runtime hands the terminal to berth-monitor over this socket; the bundle path is too
    // long for a unix socket address, so it lives in a short directory of the state dir.
    so.tty = true;
    std::string dir = fs::Join(I.opts.state_dir, "tty");
    fs::MkdirAll(dir, 0700);
    so.console_socket = fs::Join(dir, c->id.substr(0, 16) + ".sock");
    if (so.console_socket.size() > 107) {
      throw Error(Code::kFailedPrecondition, "console socket path " + so.console_socket + " is longer than 107 bytes");
    }
  }
  ::unlink(fs::Join(c->dir, "exit").c_str());
  c->runtime_gone = false;  // stored with the monitor's pid below
  try {
    auto spawned = monitor::Spawn(so);
    {
      std::lock_guard<std::mutex> lock(I.mu);
      c->pid = spawned.container_pid;
      c->monitor_pid = spawned.monitor_pid;
      c->monitor_fd = spawned.monitor_fd;
    }
    I.Save(*c);
  } catch (const Error& e) {
    try {
      cli.Kill(c->id, SIGKILL, true);
    } catch (...) {
    }
    if (c->monitor_pid > 0) monitor::WaitMonitor(c->monitor_pid, c->id, std::chrono::seconds(10));
    try {
      cli.Delete(c->id, true);
      c->runtime_gone = true;
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
  I.WakeWatcher();
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
  CleanupContainerRuntime(*c);
  // Staged read-only volumes are released before the reply: the host may then remove what was
  // mounted below a volume's source (a staged copy would keep its directories busy).
  mount::CleanupStaged(opts.state_dir, c->id);
  records->DeleteContainer(c->id);
  // The rootfs unmount, the snapshot and the container's files go after the reply (as
  // containerd leaves snapshots to its garbage collector); Recover() finishes what a restart
  // interrupted.
  Defer([this, id = c->id, dir = c->dir] { CleanupContainerFiles(id, dir); });
  {
    std::lock_guard<std::mutex> lock(mu);
    containers.erase(c->id);
    container_names.erase(c->name_key);
    cpu_samples.erase(c->id);
  }
  Publish(*c, v1::CONTAINER_DELETED_EVENT);
  WantTrim();
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

void RuntimeService::UpdateContainerResources(const v1::UpdateContainerResourcesRequest& req) {
  auto& I = *impl_;
  auto c = I.FindContainer(req.container_id());
  std::lock_guard<std::mutex> op(*c->op);
  if (c->state == kExited) throw Error(Code::kFailedPrecondition, "container " + c->id + " has exited");
  oci::LinuxResources lr = oci::ResourcesFromCri(req.linux(), I.opts.restrict_oom_score_adj, I.node, "linux");
  nlohmann::json res = lr.resources;
  std::string cfg_path = fs::Join(c->dir, "config.json");
  auto spec = nlohmann::json::parse(fs::ReadFile(cfg_path, 4 << 20));
  // The CRI's resources replace those it controls; the rest (devices, and what the base spec
  // set, e.g. pids) stays.
  nlohmann::json merged = spec["linux"].value("resources", nlohmann::json::object());
  for (const char* k : {"cpu", "memory", "hugepageLimits", "unified"}) merged.erase(k);
  merged.update(res);
  spec["linux"]["resources"] = merged;
  if (c->state == kRunning) {
    std::string handler;
    {
      std::lock_guard<std::mutex> lock(I.mu);
      handler = I.sandboxes.count(c->sandbox_id) ? I.sandboxes[c->sandbox_id]->handler : "";
    }
    I.CliFor(handler).Update(c->id, res.dump());
  }
  fs::WriteFileAtomic(cfg_path, spec.dump(), 0600, /*durable=*/false);
  {
    std::lock_guard<std::mutex> lock(I.mu);
    c->resources = req.linux();
    if (lr.oom_score_adj) c->resources.set_oom_score_adj(*lr.oom_score_adj);
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
