// Internal types of berth_lifecycle: records kept in memory and in SQLite.
#pragma once

// The generated CRI header comes first: its enum Signal has values named SIGTERM, SIGKILL...,
// which <signal.h> defines as macros. Files of this folder include this header (or
// service_impl.h) before anything else.
#include "runtime/v1/api.pb.h"

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace berth::store {
class Database;
}

namespace berth::lifecycle {

namespace v1 = ::runtime::v1;

// Record states as stored.
inline constexpr const char* kCreating = "creating";
inline constexpr const char* kReady = "ready";        // sandbox
inline constexpr const char* kNotReady = "notready";  // sandbox
inline constexpr const char* kCreated = "created";    // container
inline constexpr const char* kRunning = "running";    // container
inline constexpr const char* kExited = "exited";      // container

struct SandboxRecord {
  std::string id, name_key, handler, state = kCreating;
  std::string requested_handler;  // RunPodSandbox's runtime_handler as named ("" = the default)
  v1::PodSandboxConfig config;
  int64_t created_at = 0;
  int pid = 0, monitor_pid = 0;
  std::string netns_path;  // "" for host network
  std::string cgroups_path;
  std::string dir;         // <state>/sandboxes/<id>
  std::string image;       // "" = built-in berth-pause
  // The built-in pause started by berthd (lifecycle/pause.h), not through the OCI runtime:
  // monitor_pid is berth-pause's waiter, and the cgroups are berthd's to remove.
  bool direct = false;
  // pidfd of the berth-pause waiter or berth-monitor berthd started and has to reap (not stored:
  // after a restart they are not berthd's children).
  int pause_fd = -1;
  bool shm_mounted = false;
  bool runtime_gone = false;  // the runtime's container has been deleted
  uint64_t pid_start = 0;     // start time of the pause (ProcStartTicks), 0 = not known
  // The steps of RunPodSandbox begun, while it runs (lifecycle/steps.h); cleared once ready.
  std::vector<std::string> steps;
  std::shared_ptr<std::mutex> op = std::make_shared<std::mutex>();
};

struct ContainerRecord {
  std::string id, sandbox_id, name_key, state = kCreating;
  v1::ContainerConfig config;
  std::string image_id, image_ref;  // resolved id, the name or digest reference
  int64_t created_at = 0, started_at = 0, finished_at = 0;
  int exit_code = 0;
  std::string reason, message;
  int pid = 0, monitor_pid = 0;
  int monitor_fd = -1;    // pidfd of the berth-monitor berthd started and reaps (not stored)
  std::string dir;        // bundle: <state>/containers/<id>
  std::string log_path;   // absolute, "" = none
  std::string cgroups_path;
  int stop_signal = 15;
  bool rootfs_mounted = false, snapshot_prepared = false;
  // The runtime's container does not exist: not created yet (it is created by StartContainer)
  // or deleted after the exit. Records stored without the flag load as false.
  bool runtime_gone = true;
  uint64_t pid_start = 0;  // start time of the init (ProcStartTicks), 0 = not known
  // The steps of the CreateContainer or StartContainer in progress (lifecycle/steps.h); cleared
  // when the call is through.
  std::vector<std::string> steps;
  std::vector<v1::Mount> mounts;  // as applied (recursive_read_only = effective)
  v1::LinuxContainerResources resources;
  int64_t uid = 0, gid = 0;
  std::vector<int64_t> groups;
  std::shared_ptr<std::mutex> op = std::make_shared<std::mutex>();
  // The serialized runtime.v1.Container of ListContainers, valid while the state is `wire_state`
  // (everything else in the entry is fixed at creation). Guarded by RuntimeService::Impl::mu.
  std::string wire;
  int wire_state = -1;
};

// Persistence (one SQLite transaction per change).
class RecordStore {
 public:
  explicit RecordStore(std::shared_ptr<store::Database> db);
  void Save(const SandboxRecord& s);
  void Save(const ContainerRecord& c);
  void DeleteSandbox(const std::string& id);
  void DeleteContainer(const std::string& id);
  std::vector<SandboxRecord> LoadSandboxes();
  std::vector<ContainerRecord> LoadContainers();
  // Records the loads could not read ("<kind> <id>: <why>"): left in the database, not served.
  const std::vector<std::string>& set_aside() const { return set_aside_; }

 private:
  void SetAside(const std::string& kind, const std::string& id, const std::string& why);
  std::shared_ptr<store::Database> db_;
  std::vector<std::string> set_aside_;
};

}  // namespace berth::lifecycle
