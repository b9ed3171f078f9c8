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
#include "lifecycle/compat.h"
#include "lifecycle/procs.h"
#include "lifecycle/userns.h"
#include "metrics/metrics.h"
#include "monitor/attach.h"
#include "monitor/client.h"
#include "monitor/loglost.h"
#include "mount/rro.h"
#include "oci/spec.h"
#include "snapshot/snapshotter.h"

#include <spdlog/spdlog.h>

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
  metrics::ContainerEvent(static_cast<int>(type), c.reason);
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
    } catch (const std::exception& e) {
      spdlog::warn("container {}: runtime delete: {}", c.id, e.what());
    }
  }
  // The record names the container's cgroup: it goes before the record, also when the runtime's
  // state was already gone (a delete cut short by a restart).
  if (!c.cgroups_path.empty() && c.cgroups_path[0] == '/') RemovePauseCgroups(c.cgroups_path);
}

void RuntimeService::Impl::CleanupContainerFiles(const std::string& id, const std::string& dir) {
  if (!dir.empty()) {
    std::string rootfs = fs::Join(dir, "rootfs");
    if (fs::Exists(rootfs)) snapshot::UnmountAll(rootfs);  // before anything is deleted below it
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

// --- create: its steps -------------------------------------------------------------------------

namespace {

// The pod as the new container needs it, read under the service lock.
struct PodView {
  std::string state, netns, dir, handler;
  int pid = 0;
  v1::PodSandboxConfig config;
};

// What CreateContainer works from, settled before anything is created.
struct ContainerPlan {
  std::shared_ptr<ContainerRecord> c;
  std::shared_ptr<SandboxRecord> sb;
  PodView pod;
  const Handler* handler = nullptr;
  ImageInfo image;
  oci::ImageConfig icfg;
  int target_pid = 0;
  std::string rootfs;
  std::optional<::berth::userns::Mapping> userns;  // the pod's user namespace (mode POD)
};

void ValidateContainerRequest(const v1::CreateContainerRequest& req) {
  const auto& cfg = req.config();
  if (!req.has_config() || !cfg.has_metadata() || cfg.metadata().name().empty()) {
    throw Error(Code::kInvalidArgument, "container config must include metadata with a name");
  }
  if (cfg.metadata().name().size() > 253 || cfg.metadata().name().find('/') != std::string::npos) {
    throw Error(Code::kInvalidArgument, "invalid container name \"" + cfg.metadata().name() + "\"");
  }
  if (cfg.image().image().empty()) throw Error(Code::kInvalidArgument, "container config must include an image");
  for (int i = 0; i < cfg.mounts_size(); ++i) {
    const auto& m = cfg.mounts(i);
    if (!CleanAbsPath(m.container_path())) {
      throw Error(Code::kInvalidArgument, "mounts[" + std::to_string(i) + "].container_path: \"" + m.container_path() + "\" must be an absolute path without \"..\"");
    }
    if (!CleanAbsPath(m.host_path())) {
      throw Error(Code::kInvalidArgument, "mounts[" + std::to_string(i) + "].host_path: \"" + m.host_path() + "\" must be an absolute path without \"..\"");
    }
  }
}

// log_path is relative to the pod's log_directory.
std::string ContainerLogPath(const v1::ContainerConfig& cfg, const v1::PodSandboxConfig& pod) {
  if (cfg.log_path().empty()) return "";
  if (cfg.log_path()[0] == '/' || cfg.log_path().find("..") != std::string::npos) {
    throw Error(Code::kInvalidArgument, "log_path \"" + cfg.log_path() + "\" must be relative to the pod's log_directory without \"..\"");
  }
  if (pod.log_directory().empty()) {
    throw Error(Code::kInvalidArgument, "log_path \"" + cfg.log_path() + "\" given but the pod sandbox has no log_directory");
  }
  return fs::Join(pod.log_directory(), cfg.log_path());
}

}  // namespace

static PodView ViewPod(RuntimeService::Impl& I, const SandboxRecord& sb) {
  std::lock_guard<std::mutex> lock(I.mu);
  return PodView{sb.state, sb.netns_path, sb.dir, sb.handler, sb.pid, sb.config};
}

// The pid of the TARGET container of the pid namespace mode (0 for the other modes).
static int TargetPid(RuntimeService::Impl& I, const v1::ContainerConfig& cfg) {
  const auto& cns = cfg.linux().security_context().namespace_options();
  if (cns.pid() != v1::TARGET) return 0;
  if (cns.target_id().empty()) {
    throw Error(Code::kInvalidArgument, "linux.security_context.namespace_options.target_id: required for the TARGET pid mode");
  }
  auto target = I.FindContainer(cns.target_id());
  std::lock_guard<std::mutex> lock(I.mu);
  if (target->state != kRunning || target->pid <= 0) {
    throw Error(Code::kFailedPrecondition, "target container " + cns.target_id() + " is not running");
  }
  return target->pid;
}

static ContainerPlan PlanContainer(RuntimeService::Impl& I, const v1::CreateContainerRequest& req) {
  const auto& cfg = req.config();
  ContainerPlan p;
  p.sb = I.FindSandbox(req.pod_sandbox_id());
  p.pod = ViewPod(I, *p.sb);
  if (p.pod.state != kReady) {
    throw Error(Code::kFailedPrecondition, "pod sandbox " + p.sb->id + " is not ready (state " + p.pod.state + ")");
  }
  if (!I.opts.images) throw Error(Code::kFailedPrecondition, "no image service configured");
  p.handler = &I.HandlerFor(p.pod.handler);
  p.userns = PodUserns(p.pod.config);
  ValidateContainerUserns(cfg, p.userns);
  std::string log_path = ContainerLogPath(cfg, p.pod.config);
  p.target_pid = TargetPid(I, cfg);
  auto image = I.opts.images->Resolve(cfg.image().image());
  if (!image) throw Error(Code::kNotFound, "image \"" + cfg.image().image() + "\" not found");
  p.image = *image;
  auto image_doc = nlohmann::json::parse(image->config_json, nullptr, false);
  if (image_doc.is_discarded()) {
    throw Error(Code::kFailedPrecondition, "image " + image->ref + ": the image config is not JSON");
  }
  p.icfg = oci::ParseImageConfig(image_doc);
  auto& c = p.c = std::make_shared<ContainerRecord>();
  c->id = NewObjectId();
  c->sandbox_id = p.sb->id;
  c->name_key = ContainerNameKey(cfg.metadata(), p.pod.config.metadata());
  c->config = cfg;
  c->image_id = image->id;
  c->image_ref = image->ref;
  c->created_at = NowNs();
  c->dir = fs::Join(I.opts.state_dir, "containers/" + c->id);
  c->log_path = log_path;
  c->resources = cfg.linux().resources();
  c->stop_signal = oci::StopSignal(cfg.stop_signal(), p.icfg.stop_signal);
  p.rootfs = fs::Join(c->dir, "rootfs");
  return p;
}

static void ReserveContainer(RuntimeService::Impl& I, const std::shared_ptr<ContainerRecord>& c) {
  std::lock_guard<std::mutex> lock(I.mu);
  auto it = I.container_names.find(c->name_key);
  if (it != I.container_names.end()) {
    throw Error(Code::kAlreadyExists, "container name \"" + c->name_key + "\" is reserved for " + it->second);
  }
  I.container_names[c->name_key] = c->id;
  I.containers[c->id] = c;
}

static oci::ContainerSpecOptions SpecOptions(RuntimeService::Impl& I, const ContainerPlan& p) {
  std::string hostname = fs::ReadFile(fs::Join(p.pod.dir, "hostname"), 4096);
  while (!hostname.empty() && hostname.back() == '\n') hostname.pop_back();
  const auto& h = *p.handler;
  oci::ContainerSpecOptions o;
  o.id = p.c->id;
  o.sandbox_id = p.sb->id;
  o.sandbox_pid = p.pod.pid;
  o.netns_path = p.pod.netns;
  o.hostname = hostname;
  o.target_pid = p.target_pid;
  o.rootfs = p.rootfs;
  o.image_name = p.image.ref;
  o.image = p.icfg;
  o.base_spec = h.base_spec;
  o.hosts_path = fs::Join(p.pod.dir, "hosts");
  o.hostname_path = fs::Join(p.pod.dir, "hostname");
  o.resolv_conf_path = fs::Join(p.pod.dir, "resolv.conf");
  bool host_ipc = p.pod.config.linux().security_context().namespace_options().ipc() == v1::NODE;
  o.shm_path = host_ipc ? "/dev/shm" : fs::Join(p.pod.dir, "shm");
  o.rro = h.rro.value_or(oci::HandlerRRO{});
  o.privileged_without_host_devices = h.privileged_without_host_devices;
  o.restrict_oom_score_adj = I.opts.restrict_oom_score_adj;
  o.unset_seccomp_profile = I.opts.unset_seccomp_profile;
  o.container_annotation_patterns = h.container_annotations;
  o.node = I.NodeFor(h);
  return o;
}

// A volume with uidMappings/gidMappings: a runtime that idmaps mounts itself gets the mappings in
// the OCI mount; otherwise berth stages an idmapped recursive bind (read-only all the way down
// when the volume is recursively read-only through berth's fallback) and the runtime binds that.
static void ApplyIdmappedVolume(RuntimeService::Impl& I, const Handler& h, const std::string& id,
                                const v1::Mount& m, const oci::MountPlan& plan,
                                nlohmann::json& spec) {
  userns::Mapping map;
  for (const auto& r : m.uidmappings())
    map.uids.push_back({r.container_id(), r.host_id(), r.length()});
  for (const auto& r : m.gidmappings())
    map.gids.push_back({r.container_id(), r.host_id(), r.length()});
  for (auto& jm : spec["mounts"]) {
    if (jm.value("destination", "") != plan.mount.destination) continue;
    if (UsernsSupportOf(h, I.opts).runtime_idmap) {
      nlohmann::json tmp = nlohmann::json::object();
      AddUsernsToSpec(tmp, map, "");
      jm["uidMappings"] = tmp["linux"]["uidMappings"];
      jm["gidMappings"] = tmp["linux"]["gidMappings"];
    } else {
      auto ns = userns::NewUsernsFd(map);
      jm["source"] = mount::StageIdmapped(I.opts.state_dir, id, plan.resolved_host_path, ns.get(),
                                          plan.stage_read_only);
    }
  }
}

// Volumes: those only berth's fallback can make recursively read-only are staged; each is
// recorded as applied (recursive_read_only = effective).
static void ApplyVolumes(RuntimeService::Impl& I, const ContainerPlan& p,
                         const std::vector<oci::MountPlan>& plans, nlohmann::json& spec) {
  auto& c = *p.c;
  for (size_t i = 0; i < plans.size(); ++i) {
    const auto& plan = plans[i];
    v1::Mount applied = c.config.mounts(static_cast<int>(i));
    const auto& mo = plan.mount.options;
    bool rro = plan.stage_read_only || std::find(mo.begin(), mo.end(), "rro") != mo.end();
    metrics::VolumeMount(applied.readonly(), rro, plan.stage_read_only);
    if (applied.uidmappings_size() > 0) {
      ApplyIdmappedVolume(I, *p.handler, c.id, applied, plan, spec);
    } else if (plan.stage_read_only) {
      std::string staged = mount::StageReadOnly(I.opts.state_dir, c.id, plan.resolved_host_path);
      for (auto& jm : spec["mounts"]) {
        if (jm.value("destination", "") == plan.mount.destination) jm["source"] = staged;
      }
    }
    applied.set_recursive_read_only(rro);
    c.mounts.push_back(applied);
  }
}

// The OCI spec (with the rro staging of volumes) written as config.json; what it settled (user,
// oom_score_adj, cgroup) kept in the record.
static void WriteContainerSpec(RuntimeService::Impl& I, const ContainerPlan& p) {
  auto& c = *p.c;
  std::vector<oci::MountPlan> plans;
  nlohmann::json spec = oci::ContainerSpec(c.config, p.pod.config, SpecOptions(I, p), &plans);
  if (p.userns) {  // the pod's user namespace, joined by its pinned path
    AddUsernsToSpec(spec, *p.userns, UsernsPath(I.opts, p.sb->id));
    CheckProcessMapped(spec, *p.userns);
  }
  ApplyVolumes(I, p, plans, spec);
  const auto& user = spec["process"]["user"];
  c.uid = user.value("uid", 0);
  c.gid = user.value("gid", 0);
  if (user.contains("additionalGids")) c.groups = user["additionalGids"].get<std::vector<int64_t>>();
  if (spec["process"].contains("oomScoreAdj")) c.resources.set_oom_score_adj(spec["process"]["oomScoreAdj"].get<int>());
  c.cgroups_path = spec["linux"].value("cgroupsPath", "");
  if (!c.log_path.empty()) fs::MkdirAll(std::filesystem::path(c.log_path).parent_path().string(), 0755);
  fs::WriteFileAtomic(fs::Join(c.dir, "config.json"), spec.dump(), 0600, /*durable=*/false);
}

// The image's layers idmapped to the pod's user namespace under a fresh upper directory owned by
// the pod's root: nothing is copied or chown'ed (snapshot::MountAllIdmapped).
static void MountIdmappedRootfs(RuntimeService::Impl& I, const ContainerPlan& p,
                                const std::vector<snapshot::Mount>& mounts) {
  auto ns = userns::OpenNs(UsernsPath(I.opts, p.sb->id));
  auto [uid, gid] = HostRoot(*p.userns);
  snapshot::MountAllIdmapped(mounts, p.rootfs, ns.get(), uid, gid);
}

// The slow path (userns_rootfs, docs/userns.md): overlay over a chown'ed copy of the image, made
// once per image and mapping (snapshot::MountAllShifted).
static void MountCopiedRootfs(const ContainerPlan& p, const std::vector<snapshot::Mount>& mounts) {
  auto copy = snapshot::MountAllShifted(mounts, p.rootfs, *p.userns, p.c->id);
  if (copy.made)
    spdlog::warn("container {}: chown'ed copy of image {} for mapping {} made in {:.0f} ms ({})",
                 p.c->id, p.image.chain_id, snapshot::MappingKey(*p.userns), copy.ms, copy.dir);
  else if (!copy.dir.empty())
    spdlog::info("container {}: chown'ed copy reused: {}", p.c->id, copy.dir);
}

static Step UsernsRootfsStep(RuntimeService::Impl& I, const ContainerPlan& p,
                             const std::vector<snapshot::Mount>& mounts) {
  if (p.handler && UsernsSupportOf(*p.handler, I.opts).rootfs == "copy")
    return {"rootfs-copy", [&p, &mounts] { MountCopiedRootfs(p, mounts); }};
  return {"rootfs-idmapped", [&I, &p, &mounts] { MountIdmappedRootfs(I, p, mounts); }};
}

// What an interrupted copy of the image left (a complete copy stays, for the next pod).
static void RemoveCopyStage(const Options& opts, const std::string& id) {
  if (!opts.images) return;
  std::vector<snapshot::Mount> mounts;
  try {
    mounts = opts.images->snapshotter().Mounts(id);
  } catch (const Error& e) {
    if (e.code() != Code::kNotFound) throw;
    return;
  }
  auto stage = snapshot::ShiftedCopyStage(mounts, id);
  if (!stage.empty()) fs::RemoveAll(stage);
}

// Volume host paths that do not exist yet become directories (as containerd does; they stay).
static void MakeVolumeDirs(const v1::ContainerConfig& cfg) {
  for (const auto& m : cfg.mounts()) {
    if (!fs::Exists(m.host_path())) fs::MkdirAll(m.host_path(), 0755);
  }
}

void RuntimeService::Impl::UndoContainerStep(ContainerRecord& c, const std::string& step) {
  if (step == "dir") {
    CleanupContainerFiles(c.id, c.dir);
  } else if (step == "snapshot") {
    try {
      opts.images->snapshotter().Remove(c.id);
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound) throw;
    }
  } else if (step == "rootfs" || step == "rootfs-idmapped") {
    snapshot::UnmountAll(fs::Join(c.dir, "rootfs"));  // the idmapped layers go with the overlay
  } else if (step == "rootfs-copy") {
    snapshot::UnmountAll(fs::Join(c.dir, "rootfs"));
    RemoveCopyStage(opts, c.id);  // a copy cut short (a complete one stays, for the next pod)
  } else if (step == "spec") {
    mount::CleanupStaged(opts.state_dir, c.id);
  } else if (step == "monitor") {
    StopStartedMonitor(c);
  }
  // "record", "volumes" (host directories stay, as with containerd), "created" and "running"
  // change nothing outside the record.
}

StepCalls RuntimeService::Impl::ContainerSteps(ContainerRecord& c, const char* call) {
  StepCalls s;
  s.call = call;
  s.id = c.id;
  s.record = [this, &c](const std::vector<std::string>& begun) {
    {
      std::lock_guard<std::mutex> lock(mu);
      c.steps = begun;
    }
    Save(c);
  };
  s.undo = [this, &c](const std::string& step) { UndoContainerStep(c, step); };
  return s;
}

// The journal cleared in memory; the caller's next save stores it.
static void ClearSteps(RuntimeService::Impl& I, ContainerRecord& c) {
  std::lock_guard<std::mutex> lock(I.mu);
  c.steps.clear();
}

static void MarkCreated(RuntimeService::Impl& I, ContainerRecord& c) {
  {
    std::lock_guard<std::mutex> lock(I.mu);
    c.state = kCreated;
    c.steps.clear();
  }
  I.Save(c);
}

// After a failed CreateContainer: the record goes unless an undo failed (kept, state creating,
// for RemoveContainer or a restart to retry).
static void DropContainer(RuntimeService::Impl& I, const std::shared_ptr<ContainerRecord>& c, bool keep) {
  if (!keep) I.records->DeleteContainer(c->id);
  std::lock_guard<std::mutex> lock(I.mu);
  if (!keep) I.containers.erase(c->id);
  I.container_names.erase(c->name_key);
}

void RuntimeService::CreateContainer(const v1::CreateContainerRequest& req, v1::CreateContainerResponse* resp) {
  auto& I = *impl_;
  ValidateContainerRequest(req);
  ContainerPlan p = PlanContainer(I, req);
  auto& c = *p.c;
  ReserveContainer(I, p.c);
  std::lock_guard<std::mutex> op(*c.op);
  std::vector<snapshot::Mount> mounts;
  std::vector<Step> steps = {
      {"record", [] {}},
      {"dir", [&] { fs::MkdirAll(p.rootfs, 0755); }},
      {"snapshot", [&] { mounts = I.opts.images->snapshotter().Prepare(c.id, p.image.chain_id); }},
      p.userns ? UsernsRootfsStep(I, p, mounts)
               : Step{"rootfs", [&] { snapshot::MountAll(mounts, p.rootfs); }},
      {"volumes", [&] { MakeVolumeDirs(c.config); }},
      {"spec", [&] { WriteContainerSpec(I, p); }},
      {"created", [&] { MarkCreated(I, c); }},
  };
  bool undo_failed = false;
  try {
    RunSteps(I.ContainerSteps(c, "CreateContainer"), steps, &undo_failed);
  } catch (...) {
    DropContainer(I, p.c, undo_failed);
    throw;
  }
  I.Publish(c, v1::CONTAINER_CREATED_EVENT);
  resp->set_container_id(c.id);
}

// --- start: its steps --------------------------------------------------------------------------

static std::string HandlerOf(RuntimeService::Impl& I, const ContainerRecord& c) {
  std::lock_guard<std::mutex> lock(I.mu);
  auto it = I.sandboxes.find(c.sandbox_id);
  return it == I.sandboxes.end() ? "" : it->second->handler;
}

// As containerd answers: only a created container starts; a running one is left alone.
static void CheckStartable(RuntimeService::Impl& I, const ContainerRecord& c) {
  std::lock_guard<std::mutex> lock(I.mu);
  if (c.state == kCreated) return;
  std::string state = c.state == kRunning ? "CONTAINER_RUNNING" : c.state == kExited ? "CONTAINER_EXITED" : "CONTAINER_UNKNOWN";
  throw Error(Code::kFailedPrecondition,
              "failed to set starting state for container \"" + c.id + "\": container is in " + state + " state");
}

static monitor::SpawnOptions MonitorOptions(RuntimeService::Impl& I, const ContainerRecord& c, const runtime::Cli& cli) {
  monitor::SpawnOptions so;
  so.monitor_path = I.opts.monitor_path;
  so.id = c.id;
  so.bundle = c.dir;
  so.runtime_log = fs::Join(c.dir, "runtime.log");
  so.runtime_argv = cli.Argv({}, so.runtime_log);
  so.log_path = c.log_path.empty() ? "/dev/null" : c.log_path;
  so.max_line = I.opts.max_container_log_line_size;
  so.start = true;  // created and started by one `<runtime> run --detach`
  so.attach_socket = monitor::AttachSocketPath(c.dir);  // Attach reaches the container there
  so.keep_stdin = c.config.stdin();
  so.stdin_once = c.config.stdin_once();
  if (c.config.tty()) {
    // The runtime hands the terminal to berth-monitor over this socket; the bundle path is too
    // long for a unix socket address, so it lives in a short directory of the state dir.
    so.tty = true;
    std::string dir = fs::Join(I.opts.state_dir, "tty");
    fs::MkdirAll(dir, 0700);
    so.console_socket = fs::Join(dir, c.id.substr(0, 16) + ".sock");
    if (so.console_socket.size() > 107) {
      throw Error(Code::kFailedPrecondition, "console socket path " + so.console_socket + " is longer than 107 bytes");
    }
  }
  return so;
}

static void SpawnMonitor(RuntimeService::Impl& I, ContainerRecord& c, const monitor::SpawnOptions& so) {
  ::unlink(fs::Join(c.dir, "exit").c_str());
  c.runtime_gone = false;
  auto spawned = monitor::Spawn(so);
  std::lock_guard<std::mutex> lock(I.mu);
  c.pid = spawned.container_pid;
  c.monitor_pid = spawned.monitor_pid;
  c.monitor_fd = spawned.monitor_fd;
  c.pid_start = ProcStartTicks(c.pid);
}

static void MarkRunning(RuntimeService::Impl& I, ContainerRecord& c) {
  {
    std::lock_guard<std::mutex> lock(I.mu);
    c.state = kRunning;
    c.started_at = NowNs();
    c.steps.clear();
  }
  I.Save(c);
}

// The undo of the "monitor" step: the monitor (found by its id when the record has no pid) and
// the runtime's container are gone afterwards, or this throws.
void RuntimeService::Impl::StopStartedMonitor(ContainerRecord& c) {
  auto cli = CliFor(HandlerOf(*this, c));
  if (c.monitor_pid <= 0) {
    auto helpers = ScanHelpers();
    auto it = helpers.find(c.id);
    if (it != helpers.end()) c.monitor_pid = it->second.pid;
  }
  if (c.monitor_pid > 0 && monitor::IsMonitorAlive(c.monitor_pid, c.id)) {
    try {
      cli.Kill(c.id, SIGKILL, true);
    } catch (const Error& e) {
      spdlog::warn("container {}: runtime kill: {}", c.id, e.what());
    }
    if (!monitor::WaitMonitor(c.monitor_pid, c.id, std::chrono::seconds(10))) {
      throw Error(Code::kUnavailable, "container " + c.id + ": its berth-monitor (pid " + std::to_string(c.monitor_pid) + ") did not exit");
    }
  }
  exec::Reap(c.monitor_fd);
  cli.Delete(c.id, true);
  c.runtime_gone = true;
}

static void MarkStartError(RuntimeService::Impl& I, ContainerRecord& c, const std::string& why) {
  {
    std::lock_guard<std::mutex> lock(I.mu);
    c.state = kExited;
    c.exit_code = 128;
    c.reason = "StartError";
    c.message = why;
    c.finished_at = NowNs();
    c.steps.clear();
  }
  I.Save(c);
  I.Publish(c, v1::CONTAINER_STOPPED_EVENT);
}

void RuntimeService::StartContainer(const v1::StartContainerRequest& req) {
  auto& I = *impl_;
  auto c = I.FindContainer(req.container_id());
  std::lock_guard<std::mutex> op(*c->op);
  CheckStartable(I, *c);
  auto sb = I.FindSandbox(c->sandbox_id);
  {
    std::lock_guard<std::mutex> lock(I.mu);
    if (sb->state != kReady) throw Error(Code::kFailedPrecondition, "pod sandbox " + sb->id + " is not ready");
  }
  auto so = MonitorOptions(I, *c, I.CliFor(sb->handler));
  std::vector<Step> steps = {
      {"monitor", [&] { SpawnMonitor(I, *c, so); }},
      {"running", [&] { MarkRunning(I, *c); }},
  };
  bool undo_failed = false;
  try {
    RunSteps(I.ContainerSteps(*c, "StartContainer"), steps, &undo_failed);
  } catch (const Error& e) {
    MarkStartError(I, *c, e.what());
    throw Error(e.code() == Code::kOk ? Code::kUnknown : e.code(), "failed to start container " + c->id + ": " + e.what());
  }
  I.WakeWatcher();
  I.Publish(*c, v1::CONTAINER_STARTED_EVENT);
}

// The stop signal, then the grace period (the caller may cancel it: the container keeps running).
static void SignalAndWait(ContainerRecord& c, const runtime::Cli& cli, int64_t timeout_s,
                          const std::function<bool()>& cancelled) {
  try {
    cli.Kill(c.id, c.stop_signal);
  } catch (const Error&) {
  }
  auto timeout = std::chrono::seconds(std::min<int64_t>(timeout_s, 365LL * 86400));
  if (WaitForStop(c.monitor_pid, c.id, timeout, cancelled) == StopWait::kCancelled) {
    throw Error(Code::kDeadlineExceeded,
                "stop of container " + c.id +
                    " abandoned: the caller's context ended before it exited "
                    "(not killed; it keeps running)");
  }
}

// SIGKILL through the runtime until the container's berth-monitor is gone.
static void KillUntilGone(ContainerRecord& c, const runtime::Cli& cli) {
  while (c.monitor_pid > 0 && monitor::IsMonitorAlive(c.monitor_pid, c.id)) {
    try {
      cli.Kill(c.id, SIGKILL, true);
    } catch (const Error&) {
    }
    if (monitor::WaitMonitor(c.monitor_pid, c.id, std::chrono::seconds(10))) break;
  }
}

// StopContainer's steps (docs/pods.md): "stop-signal" (with a grace period), "stop-kill",
// "stop-exited" (exit file read, state saved, the journal cleared with it; the runtime's container
// deleted). Without `journal` (inside a removal, whose own journal stands) the same, unrecorded.
void RuntimeService::Impl::StopContainerLocked(ContainerRecord& c, int64_t timeout_s,
                                               const std::function<bool()>& cancelled,
                                               bool journal) {
  if (c.state != kRunning) return;
  auto cli = CliFor(HandlerOf(*this, c));
  std::vector<Step> steps;
  if (timeout_s > 0 && c.stop_signal != SIGKILL)
    steps.push_back({"stop-signal", [&] { SignalAndWait(c, cli, timeout_s, cancelled); }});
  steps.push_back({"stop-kill", [&] { KillUntilGone(c, cli); }});
  steps.push_back({"stop-exited", [&] {
                     if (journal) ClearSteps(*this, c);
                     HandleExit(c);
                   }});
  if (!journal) {
    for (const auto& s : steps) s.run();
    return;
  }
  RunForwardSteps(ContainerSteps(c, "StopContainer"), steps);
}

void RuntimeService::StopContainer(const v1::StopContainerRequest& req,
                                   const std::function<bool()>& cancelled) {
  auto c = impl_->FindContainer(req.container_id());
  std::lock_guard<std::mutex> op(*c->op);
  impl_->StopContainerLocked(*c, req.timeout(), cancelled);
}

// RemoveContainer's steps (docs/pods.md): "remove-stop" (killed if it runs), "remove-runtime"
// (monitor, runtime container, cgroups), "remove-staging" (rro staging released before the
// reply: the host may then remove what was mounted below a volume's source), "remove-record".
// The rootfs unmount, the snapshot and the container's files go after the reply (as containerd
// leaves snapshots to its garbage collector); recovery finishes a removal cut short.
void RuntimeService::Impl::RemoveContainerLocked(const std::shared_ptr<ContainerRecord>& c) {
  std::lock_guard<std::mutex> op(*c->op);
  std::vector<Step> steps = {
      {"remove-stop", [&] { StopContainerLocked(*c, 0, {}, /*journal=*/false); }},
      {"remove-runtime", [&] { CleanupContainerRuntime(*c); }},
      {"remove-staging", [&] { mount::CleanupStaged(opts.state_dir, c->id); }},
      {"remove-record", [&] { ForgetContainer(c); }},
  };
  RunForwardSteps(ContainerSteps(*c, "RemoveContainer"), steps);
}

// The record deleted (its files after the reply); gone from the maps.
void RuntimeService::Impl::ForgetContainer(const std::shared_ptr<ContainerRecord>& c) {
  records->DeleteContainer(c->id);
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

// The CRI log entries berth-monitor had to drop (a full disk), as counted in its log-lost file.
static nlohmann::json LogLostInfo(const std::string& dir) {
  monitor::LogLoss l;
  std::string err = monitor::ReadLogLoss(dir, &l);
  if (!err.empty()) return {{"error", err}};
  return {{"entries", l.entries}, {"bytes", l.bytes}};
}

void RuntimeService::ContainerStatus(const v1::ContainerStatusRequest& req, v1::ContainerStatusResponse* resp) {
  auto& I = *impl_;
  auto c = I.FindContainer(req.container_id());
  std::lock_guard<std::mutex> lock(I.mu);
  I.FillStatus(*c, resp->mutable_status());
  if (req.verbose()) {
    nlohmann::json info = {{"sandboxID", c->sandbox_id}, {"pid", c->pid},           {"monitorPid", c->monitor_pid},
                           {"snapshotKey", c->id},       {"bundle", c->dir},        {"cgroupsPath", c->cgroups_path},
                           {"stopSignal", c->stop_signal}, {"state", c->state}};
    info["logLost"] = LogLostInfo(c->dir);
    try {
      info["runtimeSpec"] = nlohmann::json::parse(fs::ReadFile(fs::Join(c->dir, "config.json"), 1 << 20));
      auto u = UsernsInfo(info["runtimeSpec"], c->state == kRunning ? c->pid : 0);
      if (!u.is_null()) info["userNamespace"] = u;
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

}  // namespace berth::lifecycle
