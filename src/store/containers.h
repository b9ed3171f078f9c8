// Sandbox and container records in the metadata database (tables "sandboxes" and "containers",
// migration component "containers"). Every change runs in its own transaction.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace berth::store {

class Database;

// Lifecycle states, stored as text.
inline constexpr const char* kSandboxReady = "ready";
inline constexpr const char* kSandboxNotReady = "notready";
inline constexpr const char* kContainerCreated = "created";
inline constexpr const char* kContainerRunning = "running";
inline constexpr const char* kContainerExited = "exited";
inline constexpr const char* kContainerUnknown = "unknown";

struct SandboxRecord {
  std::string id;
  std::string name, namespace_, uid;  // CRI metadata
  uint32_t attempt = 0;
  std::string state = kSandboxNotReady;
  int pid = 0;          // pause process
  int monitor_pid = 0;  // its berth-monitor
  int64_t created_at = 0;  // ns since the epoch
  std::string runtime_handler;
  std::string netns_path;  // "" for host network
  std::string ip;
  std::string log_directory;
  std::string state_dir;  // bundle and sandbox files (hosts, resolv.conf, shm)
  std::map<std::string, std::string> labels, annotations;
  std::string config;  // serialized runtime.v1.PodSandboxConfig
};

struct ContainerRecord {
  std::string id;
  std::string sandbox_id;
  std::string name;
  uint32_t attempt = 0;
  std::string state = kContainerCreated;
  int pid = 0;
  int monitor_pid = 0;
  int64_t created_at = 0, started_at = 0, finished_at = 0;  // ns since the epoch, 0 = not yet
  int exit_code = 0;
  std::string reason, message;
  std::map<std::string, std::string> labels, annotations;
  std::string config;  // serialized runtime.v1.ContainerConfig
  std::string runtime_handler;
  std::string log_path;
  std::string image_ref, image_id;
  std::string mounts_json = "[]";  // the mounts as given to the runtime
  std::string bundle;
};

class ContainerStore {
 public:
  explicit ContainerStore(std::shared_ptr<Database> db);  // applies the "containers" migrations

  // AlreadyExists when the id, or the name (name, namespace, uid, attempt), is taken.
  void CreateSandbox(const SandboxRecord& r);
  // Replaces every field of an existing record; NotFound otherwise.
  void UpdateSandbox(const SandboxRecord& r);
  std::optional<SandboxRecord> GetSandbox(const std::string& id);
  std::vector<SandboxRecord> ListSandboxes();  // by creation time
  // NotFound when missing; FailedPrecondition while it still has containers.
  void DeleteSandbox(const std::string& id);
  void SetSandboxState(const std::string& id, const std::string& state);

  // AlreadyExists when the id or (sandbox, name, attempt) is taken; NotFound without the sandbox.
  void CreateContainer(const ContainerRecord& r);
  void UpdateContainer(const ContainerRecord& r);
  std::optional<ContainerRecord> GetContainer(const std::string& id);
  // All containers, or those of one sandbox; by creation time.
  std::vector<ContainerRecord> ListContainers(const std::string& sandbox_id = "");
  void DeleteContainer(const std::string& id);  // NotFound when missing
  // created -> running.
  void MarkContainerStarted(const std::string& id, int pid, int64_t started_at);
  // -> exited, with exit code, time, reason ("Completed", "Error", "OOMKilled") and message.
  void MarkContainerExited(const std::string& id, int exit_code, int64_t finished_at,
                           const std::string& reason, const std::string& message);

  // The full id of the only sandbox/container whose id starts with `prefix` (crictl style).
  // NotFound when none, InvalidArgument when several match.
  std::string ResolveSandboxId(const std::string& prefix);
  std::string ResolveContainerId(const std::string& prefix);

 private:
  std::shared_ptr<Database> db_;
};

}  // namespace berth::store
