// Pod sandboxes: berth-pause in the pod's namespaces, started by berthd itself (lifecycle/pause.h)
// or, for a sandbox image, the systemd cgroup driver or a base spec, through berth-monitor and the
// OCI runtime.
#include "lifecycle/service_impl.h"  // first: its enum Signal names collide with <signal.h> macros

#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <random>
#include <set>

#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "lifecycle/compat.h"
#include "lifecycle/pause.h"
#include "lifecycle/procs.h"
#include "lifecycle/steps.h"
#include "lifecycle/userns.h"
#include "monitor/client.h"
#include "mount/rro.h"
#include "network/netns.h"
#include "runtime/rro.h"
#include "snapshot/snapshotter.h"
#include "store/db.h"

#include <spdlog/spdlog.h>

namespace berth::lifecycle {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

std::string NewId() {
  unsigned char buf[32];
  int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  bool ok = fd >= 0 && ::read(fd, buf, sizeof buf) == static_cast<ssize_t>(sizeof buf);
  if (fd >= 0) ::close(fd);
  if (!ok) {
    std::random_device rd;
    for (auto& b : buf) b = static_cast<unsigned char>(rd());
  }
  static const char* d = "0123456789abcdef";
  std::string id;
  for (unsigned char b : buf) {
    id.push_back(d[b >> 4]);
    id.push_back(d[b & 15]);
  }
  return id;
}

std::string SandboxNameKey(const v1::PodSandboxMetadata& m) {
  return m.name() + "_" + m.namespace_() + "_" + m.uid() + "_" + std::to_string(m.attempt());
}

bool ValidName(const std::string& s, size_t max) {
  if (s.size() > max) return false;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f || c == '/') return false;
  }
  return true;
}

std::string HostHostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

std::string ResolvConf(const v1::PodSandboxConfig& cfg) {
  if (!cfg.has_dns_config() || (cfg.dns_config().servers().empty() && cfg.dns_config().searches().empty() &&
                                cfg.dns_config().options().empty())) {
    try {
      return fs::ReadFile("/etc/resolv.conf", 1 << 20);
    } catch (const Error&) {
      return "";
    }
  }
  std::string out;
  const auto& d = cfg.dns_config();
  auto check = [](const std::string& v, const char* what) {
    if (v.empty() || v.size() > 253 || v.find_first_of(" \t\r\n") != std::string::npos) {
      throw Error(Code::kInvalidArgument, std::string("invalid dns_config ") + what + " \"" + v + "\"");
    }
  };
  if (!d.searches().empty()) {
    out += "search";
    for (const auto& s : d.searches()) {
      check(s, "search");
      out += " " + s;
    }
    out += "\n";
  }
  for (const auto& s : d.servers()) {
    check(s, "server");
    out += "nameserver " + s + "\n";
  }
  if (!d.options().empty()) {
    out += "options";
    for (const auto& s : d.options()) {
      check(s, "option");
      out += " " + s;
    }
    out += "\n";
  }
  return out;
}

const char* kDefaultHosts =
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n";

}  // namespace

std::string NewObjectId() { return NewId(); }

// --- events ------------------------------------------------------------------------------------

bool EventBus::Sub::Next(v1::ContainerEventResponse* ev, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu);
  cv.wait_for(lock, timeout, [&] { return closed || !queue.empty(); });
  if (queue.empty()) return false;
  *ev = std::move(queue.front());
  queue.pop_front();
  return true;
}

void EventBus::Sub::Close() {
  std::lock_guard<std::mutex> lock(mu);
  closed = true;
  cv.notify_all();
}

std::unique_ptr<EventSubscription> EventBus::Subscribe() {
  auto h = std::make_unique<Handle>();
  h->sub = std::make_shared<Sub>();
  std::lock_guard<std::mutex> lock(mu_);
  subs_.push_back(h->sub);
  return h;
}

void EventBus::Publish(const v1::ContainerEventResponse& ev) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = subs_.begin(); it != subs_.end();) {
    auto s = it->lock();
    if (!s) {
      it = subs_.erase(it);
      continue;
    }
    {
      std::lock_guard<std::mutex> sl(s->mu);
      if (!s->closed && s->queue.size() < 4096) {
        s->queue.push_back(ev);
        s->cv.notify_one();
      }
    }
    ++it;
  }
}

// --- Impl basics -------------------------------------------------------------------------------

RuntimeService::Impl::Impl(Options o) : opts(std::move(o)) {
  if (opts.state_dir.empty() || opts.root_dir.empty()) {
    throw Error(Code::kInvalidArgument, "lifecycle: root_dir and state_dir are required");
  }
  fs::MkdirAll(opts.root_dir, 0700);
  fs::MkdirAll(opts.state_dir, 0711);  // traversable by the mapped root of user-namespaced pods
  for (const char* d : {"sandboxes", "containers", "netns"}) fs::MkdirAll(fs::Join(opts.state_dir, d), 0711);
  if (!opts.db) opts.db = store::Database::Open(fs::Join(opts.root_dir, "lifecycle.db"));
  records = std::make_unique<RecordStore>(opts.db);
  pauses = std::make_unique<PauseStarter>(opts.pause_path);
  if (opts.handlers.empty()) {
    Handler h;
    h.name = opts.default_handler.empty() ? "runc" : opts.default_handler;
    opts.handlers[h.name] = h;
  }
  if (opts.default_handler.empty()) opts.default_handler = opts.handlers.begin()->first;
  for (auto& [name, h] : opts.handlers)
    if (h.name.empty()) h.name = name;
  node = oci::HostNodeInfo();
  ResolveHandlerRRO();
}

const Handler& RuntimeService::Impl::HandlerFor(const std::string& name) const {
  const std::string& n = name.empty() ? opts.default_handler : name;
  auto it = opts.handlers.find(n);
  if (it == opts.handlers.end()) {
    throw Error(Code::kInvalidArgument, "no runtime for \"" + n + "\" is configured");
  }
  return it->second;
}

runtime::Cli RuntimeService::Impl::CliFor(const std::string& handler) const {
  const Handler& h = HandlerFor(handler);
  runtime::CliOptions co;
  co.binary = h.binary.empty() ? "runc" : h.binary;
  co.root = h.root.empty() ? fs::Join(opts.state_dir, "runtime/" + h.name) : h.root;
  co.systemd_cgroup = h.systemd_cgroup;
  return runtime::Cli(co);
}

void RuntimeService::Impl::ResolveHandlerRRO() {
  for (auto& [name, h] : opts.handlers) {
    if (h.rro) continue;
    runtime::DetectOptions d;
    d.state_dir = fs::Join(opts.state_dir, "rro-probe");
    auto r = runtime::DetectHandlerRRO(h.name, h.binary.empty() ? "runc" : h.binary, h.treat_ro_mounts_as_rro, d);
    if (!r.resolution.ok()) {
      throw Error(Code::kFailedPrecondition, "runtime handler \"" + name + "\": " + r.resolution.error);
    }
    h.rro = oci::HandlerRRO{r.resolution.enabled, r.resolution.via_fallback, r.SupportedForKEP(), r.KEPViaFallback()};
  }
}

oci::NodeInfo RuntimeService::Impl::NodeFor(const Handler& h) const {
  oci::NodeInfo n = node;
  n.systemd_cgroup = h.systemd_cgroup;
  return n;
}

std::shared_ptr<SandboxRecord> RuntimeService::Impl::FindSandboxOrNull(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu);
  return LookupIdPrefix(sandboxes, id, "pod sandboxes");
}
std::shared_ptr<ContainerRecord> RuntimeService::Impl::FindContainerOrNull(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu);
  return LookupIdPrefix(containers, id, "containers");
}
std::shared_ptr<SandboxRecord> RuntimeService::Impl::FindSandbox(const std::string& id) {
  if (id.empty()) throw Error(Code::kInvalidArgument, "pod sandbox id must not be empty");
  auto s = FindSandboxOrNull(id);
  if (!s) throw Error(Code::kNotFound, "pod sandbox \"" + id + "\" not found");
  return s;
}
std::shared_ptr<ContainerRecord> RuntimeService::Impl::FindContainer(const std::string& id) {
  if (id.empty()) throw Error(Code::kInvalidArgument, "container id must not be empty");
  auto c = FindContainerOrNull(id);
  if (!c) throw Error(Code::kNotFound, "container \"" + id + "\" not found");
  return c;
}

// --- sandbox lifecycle -------------------------------------------------------------------------

// SIGKILLs the pause process itself rather than through `<runtime> kill`, when that is enough
// (nothing else of the sandbox can be left: it has its own pid namespace, whose init the pause
// is, or runs the built-in berth-pause, which starts nothing) and its pid is known to be it: a
// child of the sandbox's live berth-monitor (a subreaper), checked after a pidfd has pinned the
// process. False when the runtime has to do it.
static bool KillPauseDirectly(const SandboxRecord& sb) {
  bool own_pidns = sb.config.linux().security_context().namespace_options().pid() != v1::NODE;
  if (sb.pid <= 0 || !(own_pidns || sb.image.empty())) return false;
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, sb.pid, 0));
  if (fd < 0) return false;
  bool ok = false;
  try {
    std::string stat = fs::ReadFile("/proc/" + std::to_string(sb.pid) + "/stat", 4096);
    // pid (comm) state ppid ...: comm may hold anything, so parse after the last ')'.
    size_t r = stat.rfind(')');
    int ppid = 0;
    if (r != std::string::npos && std::sscanf(stat.c_str() + r + 1, " %*c %d", &ppid) == 1 &&
        ppid == sb.monitor_pid && monitor::IsMonitorAlive(sb.monitor_pid, sb.id)) {
      ok = ::syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0) == 0 || errno == ESRCH;
    }
  } catch (const Error&) {
  }
  ::close(fd);
  return ok;
}

// SIGKILLs berth-pause's waiter of a sandbox berthd started itself (the pause dies with it).
static void KillPauseWaiter(const SandboxRecord& sb) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, sb.monitor_pid, 0));
  if (fd < 0) return;
  if (monitor::IsMonitorAlive(sb.monitor_pid, sb.id)) ::syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0);
  ::close(fd);
}

// Finds the pause's waiter or berth-monitor when the record has no pid for it (a start cut short
// by a restart).
static void FindPauseHelper(SandboxRecord& sb) {
  if (sb.monitor_pid > 0) return;
  auto helpers = ScanHelpers();
  auto it = helpers.find(sb.id);
  if (it != helpers.end()) sb.monitor_pid = it->second.pid;
}

void RuntimeService::Impl::StopPause(SandboxRecord& sb, bool defer_cgroups, bool must) {
  FindPauseHelper(sb);
  if (sb.monitor_pid > 0 && monitor::IsMonitorAlive(sb.monitor_pid, sb.id)) {
    if (!KillPauseDirectly(sb) || !monitor::WaitMonitor(sb.monitor_pid, sb.id, std::chrono::seconds(5))) {
      if (sb.direct) {
        KillPauseWaiter(sb);
      } else {
        try {
          CliFor(sb.handler).Kill(sb.id, SIGKILL, true);
        } catch (const Error& e) {
          spdlog::warn("pod sandbox {}: runtime kill: {}", sb.id, e.what());
        }
      }
      if (!monitor::WaitMonitor(sb.monitor_pid, sb.id, std::chrono::seconds(30)) && must) {
        throw Error(Code::kUnavailable, "pod sandbox " + sb.id + ": its pause (monitor pid " +
                                            std::to_string(sb.monitor_pid) + ") did not exit");
      }
    }
  }
  exec::Reap(sb.pause_fd);
  if (sb.direct && defer_cgroups) {
    // The pause and its waiter are gone: the empty cgroups go after the reply (a removal that
    // fails is repeated by RemovePodSandbox's stop).
    Defer([path = sb.cgroups_path] { RemovePauseCgroups(path); });
  } else if (sb.direct) {
    RemovePauseCgroups(sb.cgroups_path);
  } else if (!sb.runtime_gone) {
    try {
      CliFor(sb.handler).Delete(sb.id, true);
      sb.runtime_gone = true;
    } catch (const Error& e) {
      if (must) throw;
      spdlog::warn("pod sandbox {}: runtime delete: {} (retried at removal)", sb.id, e.what());
    }
  }
}

void RuntimeService::Impl::UnmountSandboxShm(SandboxRecord& sb) {
  std::string shm = fs::Join(sb.dir, "shm");
  if (!sb.shm_mounted && !fs::Exists(shm)) return;
  if (::umount2(shm.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    ThrowErrno("failed to unmount /dev/shm of pod sandbox " + sb.id + " at " + shm);
  }
  sb.shm_mounted = false;
}

void RuntimeService::Impl::RemoveSandboxRootfs(SandboxRecord& sb) { RemoveSandboxFiles(sb.id, "", sb.image); }

// A sandbox image's snapshot (its rootfs unmounted first), then the sandbox dir (when given).
void RuntimeService::Impl::RemoveSandboxFiles(const std::string& id, const std::string& dir, const std::string& image) {
  std::string sdir = dir.empty() ? fs::Join(opts.state_dir, "sandboxes/" + id) : dir;
  std::string rootfs = fs::Join(sdir, "rootfs");
  if (!image.empty() && fs::Exists(rootfs)) snapshot::UnmountAll(rootfs);
  if (!image.empty() && opts.images) {
    try {
      opts.images->snapshotter().Remove(id);
    } catch (const Error& e) {
      if (e.code() != Code::kNotFound) throw;
    }
  }
  if (!dir.empty()) {
    std::string shm = fs::Join(dir, "shm");
    if (fs::Exists(shm)) ::umount2(shm.c_str(), MNT_DETACH);
    fs::RemoveAll(dir);
  }
}

void RuntimeService::Impl::Defer(std::function<void()> job) {
  StartWatcher();
  if (!watcher_started || stopping) {
    try {
      job();
    } catch (...) {
    }
    return;
  }
  {
    std::lock_guard<std::mutex> lock(deferred_mu);
    deferred.push_back(std::move(job));
  }
  WakeWatcher();
}

void RuntimeService::Impl::RunDeferred() {
  for (;;) {
    std::function<void()> job;
    {
      std::lock_guard<std::mutex> lock(deferred_mu);
      if (deferred.empty()) break;
      job = std::move(deferred.front());
      deferred.pop_front();
      ++deferred_running;
    }
    try {
      job();
    } catch (...) {
    }
    std::lock_guard<std::mutex> lock(deferred_mu);
    --deferred_running;
    deferred_cv.notify_all();
    if (deferred.empty()) trim_wanted = true;  // what the removals freed goes back to the system
  }
}

void RuntimeService::Impl::WaitDeferred() {
  std::unique_lock<std::mutex> lock(deferred_mu);
  deferred_cv.wait(lock, [&] { return deferred.empty() && deferred_running == 0; });
}

// StopPodSandbox's steps (docs/pods.md): "stop-containers" (killed at once, as containerd does;
// each through its own StopContainer journal), "stop-pause" (its cgroups removed after the
// reply), "stop-shm", "stop-network" (CNI DEL; a failure keeps the netns and the journal),
// "stop-netns", "stop-notready" (saved with the journal cleared). Without `journal` (inside a
// removal, whose own journal stands) the same, unrecorded.
void RuntimeService::Impl::StopSandboxLocked(SandboxRecord& sb, bool journal) {
  std::vector<Step> steps = {
      {"stop-containers", [&] { StopSandboxContainers(sb); }},
      {"stop-pause", [&] { StopPause(sb, /*defer_cgroups=*/true, /*must=*/false); }},
      {"stop-shm", [&] { UnmountSandboxShm(sb); }},
      {"stop-network", [&] { TearDownNetwork(sb); }},
      {"stop-netns",
       [&] {
         if (!sb.netns_path.empty()) network::RemoveNetns(sb.netns_path);
         userns::RemovePinned(UsernsPath(opts, sb.id));  // the pod's user namespace, if it has one
       }},
      {"stop-notready",
       [&] {
         {
           std::lock_guard<std::mutex> lock(mu);
           sb.state = kNotReady;
           if (journal) sb.steps.clear();
         }
         Save(sb);
       }},
  };
  if (!journal) {
    for (const auto& s : steps) s.run();
    return;
  }
  RunForwardSteps(SandboxSteps(sb, "StopPodSandbox"), steps);
}

// An exited container has nothing to stop (exited is final): its lock, which the exit watcher
// may hold while it deletes the runtime's container, is not waited for.
void RuntimeService::Impl::StopSandboxContainers(SandboxRecord& sb) {
  std::vector<std::shared_ptr<ContainerRecord>> ctrs;
  {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [id, c] : containers) {
      if (c->sandbox_id == sb.id && c->state != kExited) ctrs.push_back(c);
    }
  }
  for (auto& c : ctrs) {
    std::lock_guard<std::mutex> op(*c->op);
    StopContainerLocked(*c, 0);
  }
}

// --- RunPodSandbox: its steps ------------------------------------------------------------------

namespace {

// What RunPodSandbox works from, settled before anything is created.
struct SandboxPlan {
  std::shared_ptr<SandboxRecord> sb;
  const Handler* handler = nullptr;
  std::optional<ImageInfo> image;  // the pinned sandbox image, when it runs
  oci::SandboxSpecOptions so;
  nlohmann::json spec;
  std::string rootfs, hostname, resolv, pause_user;
  bool host_net = false;
  std::optional<::berth::userns::Mapping> userns;  // the pod's own user namespace (mode POD)
  std::string userns_path;                         // where it is pinned
};

void ValidateSandboxRequest(const v1::RunPodSandboxRequest& req) {
  const auto& cfg = req.config();
  if (!req.has_config() || !cfg.has_metadata() || cfg.metadata().name().empty()) {
    throw Error(Code::kInvalidArgument, "pod sandbox config must include metadata with a name");
  }
  const auto& md = cfg.metadata();
  if (!ValidName(md.name(), 253) || !ValidName(md.namespace_(), 253) || !ValidName(md.uid(), 253)) {
    throw Error(Code::kInvalidArgument, "invalid pod sandbox metadata: name, namespace and uid must be printable, without '/', at most 253 bytes");
  }
  if (!ValidName(cfg.hostname(), 64)) {
    throw Error(Code::kInvalidArgument, "invalid hostname \"" + cfg.hostname() + "\"");
  }
  if (!cfg.log_directory().empty() && cfg.log_directory()[0] != '/') {
    throw Error(Code::kInvalidArgument, "log_directory \"" + cfg.log_directory() + "\" must be an absolute path");
  }
  CheckHostNetworkHostname(cfg);
}

// The pause process: the pinned sandbox image when it is present locally (pulled first unless it
// is Kubernetes' own pause image), else berth-pause.
std::optional<ImageInfo> SandboxImage(const Options& opts) {
  if (opts.sandbox_image.empty() || !opts.images) return std::nullopt;
  auto image = opts.images->Resolve(opts.sandbox_image);
  if (!image && opts.pull_sandbox_image) {
    try {
      image = opts.images->Pull(opts.sandbox_image);
    } catch (const Error& e) {
      throw Error(e.code(), "sandbox image " + opts.sandbox_image + " (pinned_images.sandbox): " + e.what());
    }
  }
  return image;
}

// The image's entrypoint and cmd as the pause process.
void ApplySandboxImage(SandboxPlan& p) {
  auto doc = nlohmann::json::parse(p.image->config_json, nullptr, false);
  if (doc.is_discarded()) {
    throw Error(Code::kFailedPrecondition, "sandbox image " + p.image->ref + ": the image config is not JSON");
  }
  oci::ImageConfig ic = oci::ParseImageConfig(doc);
  std::vector<std::string> argv = ic.entrypoint;
  argv.insert(argv.end(), ic.cmd.begin(), ic.cmd.end());
  if (argv.empty()) {
    throw Error(Code::kFailedPrecondition, "sandbox image " + p.image->ref + " has neither Entrypoint nor Cmd");
  }
  p.so.pause_args = argv;
  p.so.pause_env = ic.env;
  p.pause_user = ic.user;
  if (!ic.working_dir.empty()) p.so.pause_cwd = ic.working_dir;
}

void MakeSandboxSpec(SandboxPlan& p) {
  p.spec = oci::SandboxSpec(p.sb->config, p.so);
  if (!p.host_net) p.spec["hostname"] = p.hostname;
  if (p.userns) AddUsernsToSpec(p.spec, *p.userns, p.userns_path);
}

}  // namespace

// The record and the spec: a bad request is refused before anything is created.
static SandboxPlan PlanSandbox(RuntimeService::Impl& I, const v1::RunPodSandboxRequest& req) {
  const auto& cfg = req.config();
  SandboxPlan p;
  p.handler = &I.HandlerFor(req.runtime_handler());
  const auto& ns = cfg.linux().security_context().namespace_options();
  p.resolv = ResolvConf(cfg);
  p.host_net = ns.network() == v1::NODE;
  ValidatePodUserns(cfg, *p.handler, I.opts);
  p.userns = PodUserns(cfg);
  p.image = SandboxImage(I.opts);
  auto& sb = p.sb = std::make_shared<SandboxRecord>();
  sb->id = NewId();
  sb->name_key = SandboxNameKey(cfg.metadata());
  sb->handler = p.handler->name;
  sb->requested_handler = req.runtime_handler();  // echoed as named: "" for the default
  sb->config = cfg;
  sb->created_at = NowNs();
  sb->dir = fs::Join(I.opts.state_dir, "sandboxes/" + sb->id);
  if (p.image) sb->image = p.image->ref;
  if (p.userns) p.userns_path = UsernsPath(I.opts, sb->id);
  p.rootfs = fs::Join(sb->dir, "rootfs");
  p.so.id = sb->id;
  p.so.pause_rootfs = p.rootfs;
  if (p.image) ApplySandboxImage(p);
  if (!p.host_net) p.so.netns_path = fs::Join(I.opts.state_dir, "netns/" + sb->id);
  if (ns.ipc() != v1::NODE) p.so.shm_path = fs::Join(sb->dir, "shm");
  p.so.base_spec = p.handler->base_spec;
  p.so.restrict_oom_score_adj = I.opts.restrict_oom_score_adj;
  p.so.unset_seccomp_profile = I.opts.unset_seccomp_profile;
  p.so.pod_annotation_patterns = p.handler->pod_annotations;
  p.so.node = I.NodeFor(*p.handler);
  p.hostname = cfg.hostname().empty() || p.host_net ? HostHostname() : cfg.hostname();
  MakeSandboxSpec(p);
  sb->cgroups_path = p.spec["linux"].value("cgroupsPath", "");
  // berthd starts the built-in pause itself unless the sandbox needs the OCI runtime: a sandbox
  // image, the systemd cgroup driver (cgroups through systemd) or a base spec (which may carry
  // hooks or settings meant for the sandbox).
  sb->direct = !p.image && !p.handler->systemd_cgroup && !p.handler->base_spec;
  sb->runtime_gone = sb->direct;
  sb->netns_path = p.so.netns_path;
  return p;
}

static void ReserveSandbox(RuntimeService::Impl& I, const std::shared_ptr<SandboxRecord>& sb) {
  std::lock_guard<std::mutex> lock(I.mu);
  auto it = I.sandbox_names.find(sb->name_key);
  if (it != I.sandbox_names.end()) {
    throw Error(Code::kAlreadyExists, "pod sandbox name \"" + sb->name_key + "\" is reserved for " + it->second);
  }
  I.sandbox_names[sb->name_key] = sb->id;
  I.sandboxes[sb->id] = sb;
}

// A sandbox image's snapshot, mounted as the read-only root; its User resolved in it.
static void MountSandboxSnapshot(RuntimeService::Impl& I, SandboxPlan& p) {
  auto mounts = I.opts.images->snapshotter().Prepare(p.sb->id, p.image->chain_id);
  snapshot::MountAll(mounts, p.rootfs);
  if (p.pause_user.empty()) return;
  p.so.pause_user = oci::ResolveUser(p.rootfs, p.pause_user, "sandbox image config User");
  MakeSandboxSpec(p);
}

// The built-in pause through the OCI runtime: a root with only `pause`.
static void CopyPauseBinary(RuntimeService::Impl& I, const SandboxPlan& p) {
  for (const char* d : {"proc", "dev", "sys", "etc", "tmp"}) fs::MkdirAll(fs::Join(p.rootfs, d), 0755);
  if (I.opts.pause_path.empty() || !fs::Exists(I.opts.pause_path)) {
    throw Error(Code::kFailedPrecondition, "berth-pause binary \"" + I.opts.pause_path + "\" not found");
  }
  std::filesystem::copy_file(I.opts.pause_path, fs::Join(p.rootfs, "pause"),
                             std::filesystem::copy_options::overwrite_existing);
  ::chmod(fs::Join(p.rootfs, "pause").c_str(), 0755);
}

static void WriteSandboxFiles(const SandboxPlan& p) {
  const std::string& dir = p.sb->dir;
  fs::WriteFileAtomic(fs::Join(dir, "hostname"), p.hostname + "\n", 0644, /*durable=*/false);
  std::string hosts = kDefaultHosts;
  if (p.host_net) {
    try {
      hosts = fs::ReadFile("/etc/hosts", 1 << 20);
    } catch (const Error&) {
    }
  }
  fs::WriteFileAtomic(fs::Join(dir, "hosts"), hosts, 0644, /*durable=*/false);
  fs::WriteFileAtomic(fs::Join(dir, "resolv.conf"), p.resolv, 0644, /*durable=*/false);
}

// The pod's user namespace, pinned at <state>/userns/<id> (containers join it by that path), and
// the pod's network namespace, owned by it, pinned where the "netns" step expects it: both from
// one clone(CLONE_NEWUSER|CLONE_NEWNET).
static void PinPodUserns(RuntimeService::Impl& I, const SandboxPlan& p) {
  std::string dir = fs::Join(I.opts.state_dir, "userns");
  fs::MkdirAll(dir, 0711);
  userns::CreatePinnedWithNetns(p.userns_path, p.sb->netns_path, *p.userns);
}

// hostname, hosts and resolv.conf belong to the pod's root, who may rewrite them as in a pod
// without a user namespace.
static void GivePodFiles(const SandboxPlan& p) {
  auto [uid, gid] = HostRoot(*p.userns);
  for (const char* f : {"hostname", "hosts", "resolv.conf"}) {
    std::string path = fs::Join(p.sb->dir, f);
    if (::chown(path.c_str(), uid, gid) != 0) ThrowErrno("chown " + path + " to the pod's root");
  }
}

static void MountSandboxShm(RuntimeService::Impl& I, SandboxPlan& p) {
  fs::MkdirAll(p.so.shm_path, 0755);
  std::string data = "mode=1777,size=65536k";
  if (p.userns) {  // owned by the pod's root
    auto [uid, gid] = HostRoot(*p.userns);
    data += ",uid=" + std::to_string(uid) + ",gid=" + std::to_string(gid);
  }
  if (::mount("shm", p.so.shm_path.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              data.c_str()) != 0) {
    ThrowErrno("failed to mount /dev/shm of pod sandbox " + p.sb->id + " at " + p.so.shm_path);
  }
  std::lock_guard<std::mutex> lock(I.mu);
  p.sb->shm_mounted = true;
}

static void MakeSandboxNetns(const SandboxPlan& p) {
  if (p.userns) {
    // Made and pinned with the pod's user namespace, which owns it (step "userns").
    if (!userns::IsPinned(p.sb->netns_path))
      throw Error(Code::kInternal, "network namespace " + p.sb->netns_path + " is not pinned");
  } else if (p.sb->direct) {
    network::CreateNetnsFile(p.sb->netns_path);  // berth-pause makes the namespace and mounts it
  } else {
    network::CreateNetns(p.sb->netns_path);
  }
}

static void StartSandboxPause(RuntimeService::Impl& I, SandboxPlan& p) {
  auto& sb = *p.sb;
  int pid = 0, monitor_pid = 0, fd = -1;
  if (sb.direct) {
    auto pause =
        I.pauses->Start(sb.id, p.spec, p.rootfs, /*create_netns=*/!p.host_net && !p.userns);
    pid = pause.pause_pid;
    monitor_pid = pause.waiter_pid;
    fd = pause.waiter_fd;
  } else {
    monitor::SpawnOptions so;
    so.monitor_path = I.opts.monitor_path;
    so.id = sb.id;
    so.bundle = sb.dir;
    so.runtime_log = fs::Join(sb.dir, "runtime.log");
    so.runtime_argv = I.CliFor(sb.handler).Argv({}, so.runtime_log);
    so.log_path = "/dev/null";
    so.start = true;  // created and started by one `<runtime> run --detach`
    auto spawned = monitor::Spawn(so);
    pid = spawned.container_pid;
    monitor_pid = spawned.monitor_pid;
    fd = spawned.monitor_fd;
  }
  std::lock_guard<std::mutex> lock(I.mu);
  sb.pid = pid;
  sb.monitor_pid = monitor_pid;
  sb.pause_fd = fd;
  sb.pid_start = ProcStartTicks(pid);
}

static void MarkSandboxReady(RuntimeService::Impl& I, SandboxRecord& sb) {
  {
    std::lock_guard<std::mutex> lock(I.mu);
    sb.state = kReady;
    sb.steps.clear();
  }
  I.Save(sb);
  I.WakeWatcher();
  if (sb.direct) I.Defer([&I] { I.pauses->Refill(); });  // the next sandbox's berth-pause
}

// The undo of each step of RunPodSandbox, by name (also after a restart: from the record alone).
void RuntimeService::Impl::UndoSandboxStep(SandboxRecord& sb, const std::string& step) {
  if (step == "dir") {
    RemoveSandboxFiles(sb.id, sb.dir, "");
  } else if (step == "snapshot") {
    RemoveSandboxRootfs(sb);
  } else if (step == "shm") {
    UnmountSandboxShm(sb);
  } else if (step == "netns") {
    if (!sb.network.is_null()) {  // a failed DEL: the namespace stays for its retry
      throw Error(Code::kFailedPrecondition, "network namespace " + sb.netns_path +
                                                 " kept: its CNI attachments are not released");
    }
    if (!sb.netns_path.empty()) network::RemoveNetns(sb.netns_path);
  } else if (step == "pause") {
    StopPause(sb, /*defer_cgroups=*/false, /*must=*/true);
  } else if (step == "network") {
    TearDownNetwork(sb);  // CNI DEL from the attachment record (saved before the first ADD)
  } else if (step == "userns") {  // its network namespace too, kept while CNI holds it (as "netns")
    if (!sb.network.is_null()) {
      throw Error(Code::kFailedPrecondition, "network namespace " + sb.netns_path +
                                                 " kept: its CNI attachments are not released");
    }
    if (!sb.netns_path.empty()) network::RemoveNetns(sb.netns_path);
    userns::RemovePinned(UsernsPath(opts, sb.id));
  }
  // "record", "pause-binary", "files", "spec" and "ready" leave nothing outside the directory.
}

StepCalls RuntimeService::Impl::SandboxSteps(SandboxRecord& sb, const char* call) {
  StepCalls c;
  c.call = call;
  c.id = sb.id;
  c.record = [this, &sb](const std::vector<std::string>& begun) {
    {
      std::lock_guard<std::mutex> lock(mu);
      sb.steps = begun;
    }
    Save(sb);
  };
  c.undo = [this, &sb](const std::string& step) { UndoSandboxStep(sb, step); };
  return c;
}

// After a failed RunPodSandbox: the record goes unless an undo failed (kept, state creating, for
// RemovePodSandbox or a restart to retry).
static void DropSandbox(RuntimeService::Impl& I, const std::shared_ptr<SandboxRecord>& sb, bool keep) {
  if (!keep) I.records->DeleteSandbox(sb->id);
  std::lock_guard<std::mutex> lock(I.mu);
  if (!keep) I.sandboxes.erase(sb->id);
  I.sandbox_names.erase(sb->name_key);
}

void RuntimeService::RunPodSandbox(const v1::RunPodSandboxRequest& req, v1::RunPodSandboxResponse* resp) {
  auto& I = *impl_;
  ValidateSandboxRequest(req);
  SandboxPlan p = PlanSandbox(I, req);
  auto& sb = *p.sb;
  ReserveSandbox(I, p.sb);
  std::lock_guard<std::mutex> op(*sb.op);
  std::vector<Step> steps = {{"record", [] {}}, {"dir", [&] { fs::MkdirAll(p.rootfs, 0755); }}};
  if (p.userns)
    steps.push_back({"userns", [&] { PinPodUserns(I, p); }});  // before the netns it owns
  if (p.image) steps.push_back({"snapshot", [&] { MountSandboxSnapshot(I, p); }});
  if (!p.image && !sb.direct) steps.push_back({"pause-binary", [&] { CopyPauseBinary(I, p); }});
  steps.push_back({"files", [&] { WriteSandboxFiles(p); }});
  if (p.userns) steps.push_back({"files-owner", [&] { GivePodFiles(p); }});
  if (!p.so.shm_path.empty()) steps.push_back({"shm", [&] { MountSandboxShm(I, p); }});
  if (!p.host_net) steps.push_back({"netns", [&] { MakeSandboxNetns(p); }});
  steps.push_back({"spec", [&] { fs::WriteFileAtomic(fs::Join(sb.dir, "config.json"), p.spec.dump(), 0600, false); }});
  steps.push_back({"pause", [&] { StartSandboxPause(I, p); }});
  // CNI ADD in the pod's netns, which exists now (docs/networking.md).
  if (!p.host_net) steps.push_back({"network", [&] { I.SetUpNetwork(sb); }});
  steps.push_back({"ready", [&] { MarkSandboxReady(I, sb); }});
  bool undo_failed = false;
  try {
    RunSteps(I.SandboxSteps(sb, "RunPodSandbox"), steps, &undo_failed);
  } catch (...) {
    DropSandbox(I, p.sb, undo_failed);
    throw;
  }
  resp->set_pod_sandbox_id(sb.id);
}

void RuntimeService::StopPodSandbox(const v1::StopPodSandboxRequest& req) {
  auto sb = impl_->FindSandbox(req.pod_sandbox_id());
  std::lock_guard<std::mutex> op(*sb->op);
  impl_->StopSandboxLocked(*sb);
}

// RemovePodSandbox's steps (docs/pods.md): "remove-stop" (the stop's steps, unrecorded),
// "remove-cgroups" (the pause's, which the record names: a stop removes them after its reply,
// which a restart may have cut), "remove-containers" (each through its own RemoveContainer
// journal), "remove-record"; the sandbox's files go after the reply. Recovery finishes a removal
// cut short.
void RuntimeService::Impl::RemoveSandboxLocked(const std::shared_ptr<SandboxRecord>& sb) {
  std::vector<Step> steps = {
      {"remove-stop", [&] { StopSandboxLocked(*sb, /*journal=*/false); }},
      {"remove-cgroups",
       [&] {
         if (sb->direct) RemovePauseCgroups(sb->cgroups_path);
       }},
      {"remove-containers",
       [&] {
         std::vector<std::shared_ptr<ContainerRecord>> ctrs;
         {
           std::lock_guard<std::mutex> lock(mu);
           for (auto& [id, c] : containers) {
             if (c->sandbox_id == sb->id) ctrs.push_back(c);
           }
         }
         for (auto& c : ctrs) RemoveContainerLocked(c);
       }},
      {"remove-record", [&] { ForgetSandbox(sb); }},
  };
  RunForwardSteps(SandboxSteps(*sb, "RemovePodSandbox"), steps);
}

void RuntimeService::Impl::ForgetSandbox(const std::shared_ptr<SandboxRecord>& sb) {
  records->DeleteSandbox(sb->id);
  Defer([this, id = sb->id, dir = sb->dir, image = sb->image] {
    RemoveSandboxFiles(id, dir, image);
  });
  {
    std::lock_guard<std::mutex> lock(mu);
    sandboxes.erase(sb->id);
    sandbox_names.erase(sb->name_key);
  }
  WantTrim();
}

void RuntimeService::RemovePodSandbox(const v1::RemovePodSandboxRequest& req) {
  auto& I = *impl_;
  if (req.pod_sandbox_id().empty()) throw Error(Code::kInvalidArgument, "pod sandbox id must not be empty");
  auto sb = I.FindSandboxOrNull(req.pod_sandbox_id());
  if (!sb) return;  // already removed
  std::lock_guard<std::mutex> op(*sb->op);
  I.RemoveSandboxLocked(sb);
}

void RuntimeService::Impl::FillSandboxStatus(const SandboxRecord& sb, v1::PodSandboxStatus* st) {
  st->set_id(sb.id);
  *st->mutable_metadata() = sb.config.metadata();
  st->set_state(sb.state == kReady ? v1::SANDBOX_READY : v1::SANDBOX_NOTREADY);
  st->set_created_at(sb.created_at);
  FillNetworkStatus(sb, st);
  auto* nso = st->mutable_linux()->mutable_namespaces()->mutable_options();
  const auto& req_ns = sb.config.linux().security_context().namespace_options();
  nso->set_network(req_ns.network());
  nso->set_pid(req_ns.pid());
  nso->set_ipc(req_ns.ipc());
  if (req_ns.has_userns_options()) *nso->mutable_userns_options() = req_ns.userns_options();
  *st->mutable_labels() = sb.config.labels();
  *st->mutable_annotations() = sb.config.annotations();
  st->set_runtime_handler(sb.requested_handler);
}

void RuntimeService::PodSandboxStatus(const v1::PodSandboxStatusRequest& req, v1::PodSandboxStatusResponse* resp) {
  auto& I = *impl_;
  auto sb = I.FindSandbox(req.pod_sandbox_id());
  std::unique_lock<std::mutex> lock(I.mu);
  I.FillSandboxStatus(*sb, resp->mutable_status());
  resp->set_timestamp(NowNs());
  if (req.verbose()) {
    nlohmann::json info = {{"pid", sb->pid},
                           {"monitorPid", sb->monitor_pid},
                           {"netNamespacePath", sb->netns_path},
                           {"cgroupsPath", sb->cgroups_path},
                           {"runtimeHandler", sb->handler},
                           {"sandboxDir", sb->dir},
                           {"image", sb->image.empty() ? "berth-pause (built in)" : sb->image},
                           {"pauseStartedBy", sb->direct ? "berthd" : "runtime"},
                           {"state", sb->state},
                           {"cni", sb->network}};
    try {
      info["runtimeSpec"] = nlohmann::json::parse(fs::ReadFile(fs::Join(sb->dir, "config.json"), 1 << 20));
    } catch (...) {
    }
    if (sb->state == kReady) {  // CNI CHECK, for people who inspect a pod (docs/networking.md)
      std::string handler = sb->handler, netns = sb->netns_path;
      nlohmann::json record = sb->network;
      lock.unlock();
      info["cniCheck"] = I.CheckNetwork(handler, record, netns);
    }
    (*resp->mutable_info())["info"] = info.dump();
  }
}

void RuntimeService::ListPodSandbox(const v1::ListPodSandboxRequest& req, v1::ListPodSandboxResponse* resp) {
  auto& I = *impl_;
  const auto& f = req.filter();
  std::lock_guard<std::mutex> lock(I.mu);
  for (const auto& [id, sb] : I.sandboxes) {
    if (sb->state == kCreating) continue;
    if (!f.id().empty() && id.compare(0, f.id().size(), f.id()) != 0) continue;
    auto state = sb->state == kReady ? v1::SANDBOX_READY : v1::SANDBOX_NOTREADY;
    if (f.has_state() && f.state().state() != state) continue;
    bool match = true;
    for (const auto& [k, v] : f.label_selector()) {
      auto it = sb->config.labels().find(k);
      if (it == sb->config.labels().end() || it->second != v) {
        match = false;
        break;
      }
    }
    if (!match) continue;
    auto* item = resp->add_items();
    item->set_id(id);
    *item->mutable_metadata() = sb->config.metadata();
    item->set_state(state);
    item->set_created_at(sb->created_at);
    *item->mutable_labels() = sb->config.labels();
    *item->mutable_annotations() = sb->config.annotations();
    item->set_runtime_handler(sb->requested_handler);
  }
}

// --- the exit watcher -------------------------------------------------------------

void RuntimeService::Impl::StartWatcher() {
  if (watcher_started || !opts.watch_exits) return;
  std::lock_guard<std::mutex> lock(watcher_start_mu);
  if (watcher_started || stopping || wake_fd.load() < 0) return;
  watcher = std::thread([this] { WatchExits(); });
  watcher_started = true;
}

void RuntimeService::Impl::WakeWatcher() {
  StartWatcher();
  int fd = wake_fd.load();
  if (fd < 0) return;
  uint64_t one = 1;
  (void)!::write(fd, &one, sizeof one);
}

// One berth-monitor being watched: a container that runs or a sandbox that is ready. Its pidfd
// becomes readable when the monitor exits (berthd need not be its parent: after a restart it is
// not), which happens right after the monitor has written the exit file.
struct RuntimeService::Impl::Watch {
  std::shared_ptr<ContainerRecord> c;
  std::shared_ptr<SandboxRecord> s;
  int monitor_pid = 0;
  int fd = -1;         // pidfd, -1 once fired
  bool fired = false;  // the monitor has exited: the exit is to be handled
};

bool RuntimeService::Impl::HandleWatchedExit(Watch& w) {
  if (w.c) {
    auto& c = *w.c;
    std::unique_lock<std::mutex> op(*c.op, std::try_to_lock);
    if (!op.owns_lock()) return false;  // an operation runs: retried shortly
    if (c.state != kRunning || c.monitor_pid != w.monitor_pid) return true;
    // The monitor writes the exit file and then exits.
    monitor::WaitMonitor(c.monitor_pid, c.id, std::chrono::seconds(5));
    HandleExit(c);
    return true;
  }
  auto& s = *w.s;
  std::unique_lock<std::mutex> op(*s.op, std::try_to_lock);
  if (!op.owns_lock()) return false;
  if (s.state != kReady || s.monitor_pid != w.monitor_pid) return true;
  monitor::WaitMonitor(s.monitor_pid, s.id, std::chrono::seconds(5));
  exec::Reap(s.pause_fd);
  {
    std::lock_guard<std::mutex> lock(mu);
    s.state = kNotReady;
  }
  Save(s);
  return true;
}

void RuntimeService::Impl::WatchExits() {
  using Clock = std::chrono::steady_clock;
  // The work after removals (unmounts, rm -rf of snapshots) runs on this thread, at berthd's own
  // priority: at a lower one, on a busy machine, it was preempted while holding what request
  // threads need as well (the allocator's arena locks among them) and stalled them by tens of
  // milliseconds.
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  int wfd = wake_fd.load();
  if (ep >= 0 && wfd >= 0) {
    struct epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, wfd, &ev) != 0) {
      ::close(ep);
      ep = -1;
    }
  }
  std::map<std::string, Watch> watches;  // "c<id>" / "s<id>"
  auto unwatch = [&](Watch& w) {
    if (w.fd >= 0) {
      if (ep >= 0) ::epoll_ctl(ep, EPOLL_CTL_DEL, w.fd, nullptr);
      ::close(w.fd);
      w.fd = -1;
    }
  };
  auto fire = [&](Watch& w) {
    unwatch(w);
    w.fired = true;
  };
  bool rescan = true;
  auto next_sweep = Clock::now() + opts.poll_interval;
  auto last_trim = Clock::now() - std::chrono::seconds(1);
  while (!stopping) {
    bool sweep = Clock::now() >= next_sweep;
    if (sweep) {
      next_sweep = Clock::now() + opts.poll_interval;
      rescan = true;
    }
    if (rescan) {
      // Bring the watches in line with the records: running containers, ready sandboxes.
      rescan = false;
      std::map<std::string, Watch> want;
      {
        std::lock_guard<std::mutex> lock(mu);
        for (auto& [id, c] : containers) {
          if (c->state == kRunning) want["c" + id] = Watch{c, nullptr, c->monitor_pid};
        }
        for (auto& [id, s] : sandboxes) {
          if (s->state == kReady) want["s" + id] = Watch{nullptr, s, s->monitor_pid};
        }
      }
      for (auto it = watches.begin(); it != watches.end();) {
        auto w = want.find(it->first);
        if (w == want.end() || w->second.monitor_pid != it->second.monitor_pid) {
          unwatch(it->second);
          it = watches.erase(it);
        } else {
          ++it;
        }
      }
      for (auto& [key, nw] : want) {
        auto [it, added] = watches.emplace(key, nw);
        Watch& w = it->second;
        const std::string& id = w.c ? w.c->id : w.s->id;
        if (added) {
          w.fd = w.monitor_pid > 0 ? static_cast<int>(::syscall(SYS_pidfd_open, w.monitor_pid, 0)) : -1;
          // Opened before the check, so a pid reused after it cannot be mistaken for the monitor.
          if (w.fd < 0 || !monitor::IsMonitorAlive(w.monitor_pid, id)) {
            fire(w);
            continue;
          }
          struct epoll_event ev = {};
          ev.events = EPOLLIN;
          ev.data.ptr = &w;
          if (ep < 0 || ::epoll_ctl(ep, EPOLL_CTL_ADD, w.fd, &ev) != 0) unwatch(w);  // sweep only
        } else if (sweep && !w.fired) {
          // Safety net: an exit the pidfd did not report (or a watch without one).
          if (fs::Exists(fs::Join(w.c ? w.c->dir : w.s->dir, "exit")) ||
              !monitor::IsMonitorAlive(w.monitor_pid, id))
            fire(w);
        }
      }
    }
    RunDeferred();
    bool pending = false;
    for (auto it = watches.begin(); it != watches.end();) {
      if (it->second.fired) {
        if (HandleWatchedExit(it->second)) {
          it = watches.erase(it);
          continue;
        }
        pending = true;
      }
      ++it;
    }
    if (stopping) break;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(next_sweep - Clock::now()).count();
    int timeout = static_cast<int>(std::clamp<int64_t>(left, 0, 1 << 30));
    if (pending) timeout = std::min(timeout, 5);
    if (trim_wanted) {
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(last_trim + std::chrono::seconds(1) -
                                                                        Clock::now())
                      .count();
      if (wait <= 0) {
        trim_wanted = false;
        opts.db->ReleaseMemory();
        ::malloc_trim(0);
        last_trim = Clock::now();
      } else {
        timeout = std::min(timeout, static_cast<int>(wait));
      }
    }
    if (ep < 0) {
      std::unique_lock<std::mutex> lock(watcher_mu);
      watcher_cv.wait_for(lock, std::chrono::milliseconds(std::min(timeout, 50)), [&] { return stopping.load(); });
      rescan = true;
      continue;
    }
    struct epoll_event evs[64];
    int n = ::epoll_wait(ep, evs, 64, timeout);
    for (int i = 0; i < n; ++i) {
      if (evs[i].data.ptr == nullptr) {
        uint64_t v;
        (void)!::read(wfd, &v, sizeof v);
        rescan = true;
      } else {
        fire(*static_cast<Watch*>(evs[i].data.ptr));
      }
    }
  }
  for (auto& [key, w] : watches) unwatch(w);
  if (ep >= 0) ::close(ep);
  RunDeferred();
}

RuntimeService::RuntimeService(Options opts) : impl_(std::make_unique<Impl>(std::move(opts))) {
  impl_->Recover();
  if (impl_->opts.watch_exits) {
    impl_->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    bool recovered;
    {
      std::lock_guard<std::mutex> lock(impl_->mu);
      recovered = !impl_->sandboxes.empty() || !impl_->containers.empty();
    }
    if (recovered) impl_->StartWatcher();  // else with the first sandbox
  }
}

RuntimeService::~RuntimeService() { Close(); }

void RuntimeService::Close() {
  {
    std::lock_guard<std::mutex> lock(impl_->watcher_start_mu);
    impl_->stopping = true;
  }
  impl_->watcher_cv.notify_all();
  impl_->WakeWatcher();
  if (impl_->watcher.joinable()) impl_->watcher.join();
  impl_->RunDeferred();  // a job queued while the watcher was finishing
  impl_->pauses->Close();
  int fd = impl_->wake_fd.exchange(-1);
  if (fd >= 0) ::close(fd);
}

void RuntimeService::WaitDeferred() { impl_->WaitDeferred(); }

std::string RuntimeService::RecoveryReport() const { return impl_->recovery.dump(); }

std::unique_ptr<EventSubscription> RuntimeService::SubscribeEvents() { return impl_->events.Subscribe(); }

}  // namespace berth::lifecycle
