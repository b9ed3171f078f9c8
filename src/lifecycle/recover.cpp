// Recovery at start: every sandbox and container record is compared with what exists on the host
// (helper processes by id, init pids by start time, exit files, runtime containers, mounts,
// network namespaces, snapshots) and reality wins. Calls cut short are finished or undone from
// their step journal; what belongs to no record in this berthd's own state dir is removed. Each
// decision is logged with its reason and listed in RecoveryReport().
#include "lifecycle/service_impl.h"  // first: its enum Signal names collide with <signal.h> macros

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "lifecycle/procs.h"
#include "lifecycle/userns.h"
#include "monitor/client.h"
#include "mount/rro.h"
#include "network/cni.h"
#include "network/netns.h"
#include "snapshot/snapshotter.h"

namespace berth::lifecycle {

namespace {

// Every step name of the calls, for records written before steps were journalled: undos are
// idempotent, so undoing a step that never ran is harmless.
const std::vector<std::string> kAllSandboxSteps = {
    "record", "dir",   "userns", "snapshot", "pause-binary", "files", "files-owner",
    "shm",    "netns", "spec",   "pause",    "network",      "ready"};
const std::vector<std::string> kAllContainerSteps = {
    "record", "dir", "snapshot", "rootfs", "rootfs-idmapped", "rootfs-copy", "volumes", "spec", "created"};

bool Has(const std::vector<std::string>& v, const char* s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

bool HasPrefix(const std::vector<std::string>& v, const std::string& prefix) {
  return std::any_of(v.begin(), v.end(),
                     [&](const std::string& s) { return s.rfind(prefix, 0) == 0; });
}

// The journal of a creating record, or every step of the call when it names others (a removal
// of a record kept after a failed undo).
std::vector<std::string> CreateJournal(const std::vector<std::string>& steps,
                                       const std::vector<std::string>& all) {
  for (const auto& s : steps)
    if (std::find(all.begin(), all.end(), s) == all.end()) return all;
  return steps.empty() ? all : steps;
}

bool IsObjectId(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

struct RuntimeService::Impl::Recovery {
  Impl& I;
  std::map<std::string, HelperProc> helpers = ScanHelpers();
  nlohmann::json cleaned = nlohmann::json::array(), kept = nlohmann::json::array();
  nlohmann::json decisions = nlohmann::json::array();

  void Decide(const char* kind, const std::string& id, const std::string& what,
              const std::string& why) {
    spdlog::info("recovery: {} {}: {} ({})", kind, id, what, why);
    decisions.push_back({{"id", id}, {"kind", kind}, {"decision", what}, {"reason", why}});
  }
  // The live berth-monitor (or pause waiter) of `id`: the recorded pid when it is that helper,
  // else the one found by its id.
  int LiveHelper(const std::string& id, int recorded) {
    if (recorded > 0 && monitor::IsMonitorAlive(recorded, id)) return recorded;
    auto it = helpers.find(id);
    return it != helpers.end() && monitor::IsMonitorAlive(it->second.pid, id) ? it->second.pid : 0;
  }
};

void RuntimeService::Impl::RecoverSandbox(Recovery& r, std::shared_ptr<SandboxRecord> sb) {
  if (sb->state == kCreating) {
    sb->monitor_pid = r.LiveHelper(sb->id, sb->monitor_pid);
    auto steps = CreateJournal(sb->steps, kAllSandboxSteps);
    auto failed = UndoSteps(SandboxSteps(*sb, "RunPodSandbox"), steps, "cut short by a restart");
    if (failed.empty()) {
      records->DeleteSandbox(sb->id);
      r.cleaned.push_back(sb->id);
      r.Decide("sandbox", sb->id, "removed",
               "RunPodSandbox was cut short after step " + steps.back());
      return;
    }
    r.kept.push_back(sb->id);
    r.Decide("sandbox", sb->id, "kept as creating", "an undo failed: " + failed.front());
    sandboxes[sb->id] = sb;
    return;
  }
  int helper = r.LiveHelper(sb->id, sb->monitor_pid);
  if (sb->state == kReady && helper == 0) {
    sb->state = kNotReady;
    Save(*sb);
    r.Decide("sandbox", sb->id, "NOTREADY", "its pause is gone (no live helper with its id)");
  }
  if (sb->state == kNotReady && sb->direct && helper == 0) {
    // A stop removes the empty cgroups after its reply: a restart may have cut that short.
    try {
      RemovePauseCgroups(sb->cgroups_path);
    } catch (const Error& e) {
      r.Decide("sandbox", sb->id, "cgroups left", e.what());
    }
  } else if (sb->state == kReady) {
    if (helper != sb->monitor_pid) {
      sb->monitor_pid = helper;
      Save(*sb);
    }
    spdlog::debug("recovery: sandbox {}: READY (its pause helper {} runs)", sb->id, helper);
  }
  sandbox_names[sb->name_key] = sb->id;
  sandboxes[sb->id] = sb;
}

// A container whose berth-monitor runs is RUNNING: its init's pid from the record when that
// process still has the recorded start time, else from the monitor's pid file.
void RuntimeService::Impl::AdoptRunning(Recovery& r, ContainerRecord& c, int monitor_pid) {
  bool was_running = c.state == kRunning;
  c.monitor_pid = monitor_pid;
  if (!(c.pid > 0 && ProcAlive(c.pid, c.pid_start))) {
    c.pid = ReadPidFile(fs::Join(c.dir, "init.pid"));
    c.pid_start = ProcStartTicks(c.pid);
  } else if (c.pid_start == 0) {
    c.pid_start = ProcStartTicks(c.pid);
  }
  c.runtime_gone = false;
  c.state = kRunning;
  if (c.started_at == 0) c.started_at = c.pid_start ? ProcStartEpochNs(c.pid_start) : NowNs();
  // The start's steps are through; a stop or removal cut short is finished by FinishCutCalls.
  std::erase_if(c.steps, [](const std::string& s) { return s == "monitor" || s == "running"; });
  Save(c);
  if (was_running) {
    spdlog::debug("recovery: container {}: RUNNING (berth-monitor {} runs, init pid {})", c.id,
                  monitor_pid, c.pid);
  } else {
    r.Decide("container", c.id, "RUNNING, pid " + std::to_string(c.pid),
             "StartContainer was cut short after its berth-monitor " + std::to_string(monitor_pid) +
                 " started the container");
  }
}

// A start cut short may still be under way: the monitor waits for `<runtime> run`, which writes
// the init's pid when the container runs. Waits (up to the monitor's own 60 s) until the pid file
// names a live process or the monitor is gone; false in the second case.
static bool WaitForInit(const ContainerRecord& c, int monitor_pid) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::string pid_file = fs::Join(c.dir, "init.pid");
  while (std::chrono::steady_clock::now() < deadline) {
    if (ProcAlive(ReadPidFile(pid_file), 0)) return true;
    if (!monitor::IsMonitorAlive(monitor_pid, c.id)) return false;
    ::usleep(10000);
  }
  return monitor::IsMonitorAlive(monitor_pid, c.id);
}

void RuntimeService::Impl::RecoverStarted(Recovery& r, ContainerRecord& c) {
  bool cut_short = c.state == kCreated;
  int helper = r.LiveHelper(c.id, c.monitor_pid);
  if (helper > 0 && !(c.pid > 0 && ProcAlive(c.pid, c.pid_start)) && !WaitForInit(c, helper))
    helper = 0;
  if (helper > 0) return AdoptRunning(r, c, helper);
  bool exit_file = fs::Exists(fs::Join(c.dir, "exit"));
  if (exit_file || !cut_short) {
    HandleExit(c);
    r.Decide("container", c.id, "EXITED, code " + std::to_string(c.exit_code),
             exit_file ? "its process ended while berthd was down (exit file)"
                       : "its berth-monitor is gone without an exit file: " + c.message);
    return;
  }
  // The monitor never started the container (or died before it ran): back to created.
  try {
    StopStartedMonitor(c);
    c.monitor_pid = c.pid = 0;
    c.pid_start = 0;
    c.steps.clear();
    Save(c);
    r.Decide("container", c.id, "CREATED",
             "StartContainer was cut short before the container ran; undone");
  } catch (const Error& e) {
    r.kept.push_back(c.id);
    r.Decide("container", c.id, "CREATED, runtime container kept",
             std::string("undoing the start failed: ") + e.what());
  }
}

void RuntimeService::Impl::RecoverContainer(Recovery& r, std::shared_ptr<ContainerRecord> c) {
  bool orphan = !sandboxes.count(c->sandbox_id);
  if (c->state == kCreating || orphan) {
    auto steps = orphan ? kAllContainerSteps : CreateJournal(c->steps, kAllContainerSteps);
    std::vector<std::string> failed;
    try {
      CleanupContainerRuntime(*c);
      failed = UndoSteps(ContainerSteps(*c, "CreateContainer"), steps, "cut short by a restart");
    } catch (const Error& e) {
      failed.push_back(e.what());
    }
    std::string why = orphan ? "its pod sandbox has no record"
                             : "CreateContainer was cut short after step " + steps.back();
    if (failed.empty()) {
      records->DeleteContainer(c->id);
      r.cleaned.push_back(c->id);
      r.Decide("container", c->id, "removed", why);
      return;
    }
    r.kept.push_back(c->id);
    r.Decide("container", c->id, "kept as creating", why + "; an undo failed: " + failed.front());
    if (!orphan) containers[c->id] = c;
    return;
  }
  if (c->state == kRunning ||
      (c->state == kCreated && (Has(c->steps, "monitor") || c->monitor_pid > 0))) {
    RecoverStarted(r, *c);
  }
  container_names[c->name_key] = c->id;
  containers[c->id] = c;
}

// The journal cleared and saved: the call it named is through.
static void ClearJournal(RuntimeService::Impl& I, ContainerRecord& c) {
  c.steps.clear();
  I.Save(c);
}

// A StopContainer or RemoveContainer cut short (docs/pods.md, "Steps"): a removal is finished; a
// stop that reached its kill is finished (the container killed if it still runs); a stop cut
// in its grace period is left to the caller, who repeats it with its own grace period.
void RuntimeService::Impl::FinishContainerCall(Recovery& r,
                                               const std::shared_ptr<ContainerRecord>& c) {
  const std::string why = " was cut short after step " + c->steps.back();
  if (HasPrefix(c->steps, "remove-")) {
    RemoveContainerLocked(c);
    r.cleaned.push_back(c->id);
    return r.Decide("container", c->id, "removed", "RemoveContainer" + why + "; finished");
  }
  if (Has(c->steps, "stop-kill") || Has(c->steps, "stop-exited")) {
    StopContainerLocked(*c, 0);
    ClearJournal(*this, *c);
    return r.Decide("container", c->id, "EXITED, code " + std::to_string(c->exit_code),
                    "StopContainer" + why + "; finished");
  }
  if (Has(c->steps, "stop-signal")) {
    ClearJournal(*this, *c);
    return r.Decide("container", c->id, c->state == kRunning ? "RUNNING" : "EXITED",
                    "StopContainer" + why + " (its grace period): left to the caller's retry");
  }
}

// A StopPodSandbox or RemovePodSandbox cut short is finished (every step is idempotent).
void RuntimeService::Impl::FinishSandboxCall(Recovery& r,
                                             const std::shared_ptr<SandboxRecord>& sb) {
  const std::string why = " was cut short after step " + sb->steps.back() + "; finished";
  if (HasPrefix(sb->steps, "remove-")) {
    RemoveSandboxLocked(sb);
    r.cleaned.push_back(sb->id);
    return r.Decide("sandbox", sb->id, "removed", "RemovePodSandbox" + why);
  }
  if (HasPrefix(sb->steps, "stop-")) {
    StopSandboxLocked(*sb);
    r.Decide("sandbox", sb->id, "NOTREADY", "StopPodSandbox" + why);
  }
}

// Stops and removals cut short, from their journals, once every record is loaded: containers
// first (a pod's stop or removal then finds them done).
void RuntimeService::Impl::FinishCutCalls(Recovery& r) {
  std::vector<std::shared_ptr<ContainerRecord>> ctrs;
  std::vector<std::shared_ptr<SandboxRecord>> sbs;
  for (auto& [id, c] : containers)
    if (c->state != kCreating && !c->steps.empty()) ctrs.push_back(c);
  for (auto& [id, sb] : sandboxes)
    if (sb->state != kCreating && !sb->steps.empty()) sbs.push_back(sb);
  for (auto& c : ctrs) {
    try {
      FinishContainerCall(r, c);
    } catch (const std::exception& e) {
      r.kept.push_back(c->id);
      r.Decide("container", c->id, "call left unfinished",
               std::string("finishing it failed: ") + e.what());
    }
  }
  for (auto& sb : sbs) {
    try {
      FinishSandboxCall(r, sb);
    } catch (const std::exception& e) {
      r.kept.push_back(sb->id);
      r.Decide("sandbox", sb->id, "call left unfinished",
               std::string("finishing it failed: ") + e.what());
    }
  }
}

// What lives in this berthd's state dir (and its runtime roots) without a record: helper
// processes, runtime containers, container and sandbox directories with their mounts and
// snapshots, network namespace files, rro staging. Nothing outside the state dir is looked at.
void RuntimeService::Impl::SweepOrphans(Recovery& r) {
  auto owned = [&](const std::string& id) { return containers.count(id) || sandboxes.count(id); };
  for (const auto& [id, h] : r.helpers) {
    bool ours = !h.bundle.empty() && h.bundle.rfind(opts.state_dir + "/", 0) == 0;
    if (!ours && h.pause) ours = fs::Exists(fs::Join(opts.state_dir, "sandboxes/" + id));
    if (!ours || owned(id)) continue;
    for (auto& [name, hd] : opts.handlers) {
      try {
        CliFor(name).Kill(id, SIGKILL, true);
      } catch (const Error&) {
      }
    }
    if (::kill(h.pid, SIGKILL) != 0 && errno != ESRCH)
      spdlog::warn("recovery: kill {}: {}", h.pid, std::strerror(errno));
    monitor::WaitMonitor(h.pid, id, std::chrono::seconds(10));
    r.Decide("process", id, "killed pid " + std::to_string(h.pid),
             "a helper of this state dir with no record");
  }
  for (auto& [name, h] : opts.handlers) {
    std::string root = h.root.empty() ? fs::Join(opts.state_dir, "runtime/" + name) : h.root;
    if (root.rfind(opts.state_dir + "/", 0) != 0)
      continue;  // a root shared with others: not ours to sweep
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(root, ec)) {
      std::string id = e.path().filename().string();
      if (!IsObjectId(id) || owned(id)) continue;
      try {
        CliFor(name).Delete(id, true);
        r.Decide("runtime container", id, "deleted", "in runtime root " + root + " with no record");
      } catch (const Error& ex) {
        r.Decide("runtime container", id, "left", std::string("delete failed: ") + ex.what());
      }
    }
  }
  SweepOrphanFiles(r);
}

void RuntimeService::Impl::SweepOrphanFiles(Recovery& r) {
  // Files of removed containers and sandboxes whose work after the reply a restart interrupted.
  auto sweep = [&](const char* sub, const auto& recs,
                   const std::function<void(const std::string&, const std::string&)>& clean) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(fs::Join(opts.state_dir, sub), ec)) {
      std::string id = e.path().filename().string();
      if (recs.count(id) || !e.is_directory()) continue;
      try {
        clean(id, e.path().string());
        r.cleaned.push_back(id);
        r.Decide(sub, id, "directory removed", "no record owns it");
      } catch (const std::exception& ex) {
        r.Decide(sub, id, "directory left", std::string("removal failed: ") + ex.what());
      }
    }
  };
  sweep("containers", containers,
        [&](const std::string& id, const std::string& dir) { CleanupContainerFiles(id, dir); });
  sweep("sandboxes", sandboxes, [&](const std::string& id, const std::string& dir) {
    RemoveSandboxFiles(id, dir, "(unknown: its snapshot is removed if there is one)");
  });
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(fs::Join(opts.state_dir, "netns"), ec)) {
    std::string id = e.path().filename().string();
    if (sandboxes.count(id)) continue;
    try {
      network::RemoveNetns(e.path().string());
      r.Decide("netns", id, "removed", "no sandbox record names it");
    } catch (const Error& ex) {
      r.Decide("netns", id, "left", ex.what());
    }
  }
  SweepUsernsOrphans(opts, sandboxes,
                     [&](const std::string& id, const std::string& what, const std::string& why) {
                       r.Decide("userns", id, what, why);
                     });
  if (opts.images) {
    try {
      for (const auto& s : opts.images->snapshotter().List()) {
        if (s.kind != snapshot::Kind::kActive || !IsObjectId(s.name) || containers.count(s.name) ||
            sandboxes.count(s.name))
          continue;
        opts.images->snapshotter().Remove(s.name);
        r.Decide("snapshot", s.name, "removed", "an active snapshot no record owns");
      }
    } catch (const Error& e) {
      spdlog::warn("recovery: snapshots: {}", e.what());
    }
  }
  std::set<std::string> live;
  for (auto& [id, c] : containers) live.insert(id);
  try {
    for (const auto& id : mount::CleanupOrphans(opts.state_dir, live))
      r.Decide("rro staging", id, "removed", "no container record");
  } catch (const Error& e) {
    spdlog::warn("recovery: rro staging: {}", e.what());
  }
}

// CNI attachments of pods whose pause is gone are released from their cached results (the only
// record of them after a restart); then each network's GC (CNI 1.1) is told which attachments
// still live. A DEL that fails keeps the attachment record, for the pod's stop to retry.
void RuntimeService::Impl::RecoverNetworks(Recovery& r) {
  std::vector<nlohmann::json> live;
  for (auto& [id, sb] : sandboxes) {
    if (sb->network.is_null()) continue;
    if (sb->state == kReady) {
      live.push_back(sb->network);
      continue;
    }
    try {
      TearDownNetwork(*sb);
      r.cleaned.push_back(id + " (network)");
      r.Decide("network", id, "released (CNI DEL)", "its pod's pause is gone");
    } catch (const std::exception& e) {
      live.push_back(sb->network);
      r.Decide("network", id, "kept", std::string("CNI DEL failed: ") + e.what());
    }
  }
  std::set<network::Cni*> done;
  for (const auto& [name, h] : opts.handlers) {
    network::Cni* cni = CniFor(name);
    if (!cni || !done.insert(cni).second) continue;
    for (auto& e : cni->GC(live)) r.Decide("network", name, "CNI GC failed", e);
  }
}

void RuntimeService::Impl::Recover() {
  Recovery r{*this};
  for (auto& s : records->LoadSandboxes())
    RecoverSandbox(r, std::make_shared<SandboxRecord>(std::move(s)));
  for (auto& c : records->LoadContainers())
    RecoverContainer(r, std::make_shared<ContainerRecord>(std::move(c)));
  FinishCutCalls(r);
  RecoverNetworks(r);
  SweepOrphans(r);
  recovery = {{"sandboxes", sandboxes.size()},
              {"containers", containers.size()},
              {"cleaned", r.cleaned},
              {"kept", r.kept},
              {"set_aside", records->set_aside()},
              {"decisions", r.decisions}};
}

}  // namespace berth::lifecycle
