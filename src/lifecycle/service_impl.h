// The implementation object of RuntimeService, shared by the files of this folder.
#pragma once

#include "lifecycle/internal.h"  // first: see internal.h

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <thread>

#include "lifecycle/pause.h"
#include "lifecycle/service.h"
#include "lifecycle/steps.h"
#include "oci/spec.h"
#include "runtime/cli.h"

namespace berth::lifecycle {

int64_t NowNs();

class EventBus {
 public:
  struct Sub : EventSubscription {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<v1::ContainerEventResponse> queue;
    bool closed = false;
    bool Next(v1::ContainerEventResponse* ev, std::chrono::milliseconds timeout) override;
    void Close() override;
  };
  std::unique_ptr<EventSubscription> Subscribe();
  void Publish(const v1::ContainerEventResponse& ev);

 private:
  struct Handle : EventSubscription {
    std::shared_ptr<Sub> sub;
    bool Next(v1::ContainerEventResponse* ev, std::chrono::milliseconds timeout) override {
      return sub->Next(ev, timeout);
    }
    void Close() override { sub->Close(); }
    ~Handle() override { sub->Close(); }
  };
  std::mutex mu_;
  std::vector<std::weak_ptr<Sub>> subs_;
};

struct CpuSample {
  int64_t ts = 0;
  uint64_t usage = 0;
};

struct RuntimeService::Impl {
  Options opts;
  std::unique_ptr<RecordStore> records;
  std::mutex mu;  // guards the maps and the records' fields
  std::map<std::string, std::shared_ptr<SandboxRecord>> sandboxes;
  std::map<std::string, std::shared_ptr<ContainerRecord>> containers;
  std::map<std::string, std::string> sandbox_names, container_names;  // name key -> id
  oci::NodeInfo node;  // berthd's oom_score_adj, swap accounting, bounding set (read once)
  std::map<std::string, CpuSample> cpu_samples;
  EventBus events;
  std::unique_ptr<PauseStarter> pauses;  // berth-pause for the sandboxes berthd starts itself
  nlohmann::json recovery = nlohmann::json::object();
  std::atomic<bool> stopping{false};
  std::thread watcher;
  // The watcher starts with the first sandbox, container or deferred job (or at construction when
  // records were recovered): an idle berthd without pods keeps no thread for it.
  std::mutex watcher_start_mu;
  std::atomic<bool> watcher_started{false};
  void StartWatcher();
  std::mutex watcher_mu;
  std::condition_variable watcher_cv;
  std::atomic<int> wake_fd{-1};  // eventfd: the watcher rescans the records (or stops)
  // Set by removals: the watcher gives freed memory back to the system (malloc_trim), at most
  // once a second.
  std::atomic<bool> trim_wanted{false};
  void WantTrim() {
    if (!trim_wanted.exchange(true)) WakeWatcher();
  }

  explicit Impl(Options o);

  const Handler& HandlerFor(const std::string& name) const;
  runtime::Cli CliFor(const std::string& handler) const;
  // Node facts for spec generation with the handler's cgroup driver.
  oci::NodeInfo NodeFor(const Handler& h) const;
  // Handlers whose recursive read-only behaviour the caller did not resolve (Options built by
  // hand rather than by OptionsFromRuntimePlugin): resolved here, once, at construction.
  void ResolveHandlerRRO();

  std::shared_ptr<SandboxRecord> FindSandbox(const std::string& id_or_prefix);
  std::shared_ptr<ContainerRecord> FindContainer(const std::string& id_or_prefix);
  std::shared_ptr<SandboxRecord> FindSandboxOrNull(const std::string& id_or_prefix);
  std::shared_ptr<ContainerRecord> FindContainerOrNull(const std::string& id_or_prefix);

  // Sandboxes.
  // The pause (found by its id when the record has no pid), reaped; its cgroups (the built-in
  // pause) or its runtime container deleted. With `must`, what cannot be done throws.
  void StopPause(SandboxRecord& sb, bool defer_cgroups, bool must);
  void UnmountSandboxShm(SandboxRecord& sb);  // throws when it stays mounted
  // RunPodSandbox's steps (lifecycle/steps.h): their journal in the record and their undo.
  StepCalls SandboxSteps(SandboxRecord& sb, const char* call);
  void UndoSandboxStep(SandboxRecord& sb, const std::string& step);
  void RemoveSandboxRootfs(SandboxRecord& sb);  // a sandbox image's snapshot (idempotent)
  // StopPodSandbox's and RemovePodSandbox's steps (a stop inside a removal is not journalled).
  void StopSandboxLocked(SandboxRecord& sb, bool journal = true);
  void StopSandboxContainers(SandboxRecord& sb);
  void RemoveSandboxLocked(const std::shared_ptr<SandboxRecord>& sb);
  void ForgetSandbox(const std::shared_ptr<SandboxRecord>& sb);  // record, maps, files later
  // Network (network.cpp): the CNI step of a sandbox and its undo (DEL with the cached results;
  // throws naming the plugin when one fails, the record kept for a retry).
  network::Cni* CniFor(const std::string& handler) const;
  void SetUpNetwork(SandboxRecord& sb);
  void TearDownNetwork(SandboxRecord& sb);
  void FillNetworkStatus(const SandboxRecord& sb, v1::PodSandboxStatus* st) const;
  // CNI CHECK of a ready sandbox's attachments (verbose status only): "ok", the plugin's error,
  // or why nothing was checked. Called without `mu`; runs the plugins.
  std::string CheckNetwork(const std::string& handler, const nlohmann::json& record,
                           const std::string& netns) const;
  // Containers.
  // StopContainer's steps, recorded in the container's journal unless `journal` is false.
  void StopContainerLocked(ContainerRecord& c, int64_t timeout_s,
                           const std::function<bool()>& cancelled = {}, bool journal = true);
  // CreateContainer's and StartContainer's steps: their journal in the record and their undo.
  StepCalls ContainerSteps(ContainerRecord& c, const char* call);
  void UndoContainerStep(ContainerRecord& c, const std::string& step);
  void StopStartedMonitor(ContainerRecord& c);  // the undo of StartContainer's "monitor"
  void HandleExit(ContainerRecord& c);  // reads the exit file; runtime delete; marks exited
  void DeleteRuntimeContainer(ContainerRecord& c, const std::string& handler);  // once; saved
  void CleanupContainer(ContainerRecord& c);  // runtime, rootfs, snapshot, staging, dirs
  void CleanupContainerRuntime(ContainerRecord& c);  // monitor and runtime container gone
  void CleanupContainerFiles(const std::string& id, const std::string& dir);  // the rest
  void RemoveSandboxFiles(const std::string& id, const std::string& dir, const std::string& image);
  // Work after a removal's reply: run by the exit watcher (inline without one), finished
  // before Close() returns. Errors are dropped: Recover() sweeps what is left.
  void Defer(std::function<void()> job);
  void RunDeferred();
  std::mutex deferred_mu;
  std::condition_variable deferred_cv;
  std::deque<std::function<void()>> deferred;
  int deferred_running = 0;
  void WaitDeferred();  // until every deferred job has run
  void RemoveContainerLocked(const std::shared_ptr<ContainerRecord>& c);  // its steps
  void ForgetContainer(const std::shared_ptr<ContainerRecord>& c);  // record, maps, files later
  void Publish(const ContainerRecord& c, v1::ContainerEventType type);
  void FillStatus(const ContainerRecord& c, v1::ContainerStatus* st);
  void FillSandboxStatus(const SandboxRecord& sb, v1::PodSandboxStatus* st);
  void Recover();  // recover.cpp
  struct Recovery;
  void RecoverSandbox(Recovery& r, std::shared_ptr<SandboxRecord> sb);
  void RecoverContainer(Recovery& r, std::shared_ptr<ContainerRecord> c);
  void RecoverStarted(Recovery& r, ContainerRecord& c);
  void AdoptRunning(Recovery& r, ContainerRecord& c, int monitor_pid);
  void FinishCutCalls(Recovery& r);  // stops and removals cut short, from their journals
  void FinishContainerCall(Recovery& r, const std::shared_ptr<ContainerRecord>& c);
  void FinishSandboxCall(Recovery& r, const std::shared_ptr<SandboxRecord>& sb);
  void RecoverNetworks(Recovery& r);  // DEL of dead pods' attachments, then CNI GC
  void SweepOrphans(Recovery& r);
  void SweepOrphanFiles(Recovery& r);
  // The exit watcher: a pidfd per berth-monitor in an epoll set, so exits are handled as they
  // happen; a sweep every opts.poll_interval is a safety net. WakeWatcher() makes it pick up a
  // container that started or a sandbox that became ready (or stop).
  struct Watch;
  void WatchExits();
  void WakeWatcher();
  bool HandleWatchedExit(Watch& w);  // false: the record is busy, retry
  void Save(const SandboxRecord& s) { records->Save(s); }
  void Save(const ContainerRecord& c) { records->Save(c); }
};

}  // namespace berth::lifecycle
