// The built-in pause started by berthd itself: berth-pause --sandbox sets the pod's namespaces,
// cgroups, sysctls and user up as the sandbox spec says and runs the pause, without the OCI
// runtime (a pod sandbox then costs a few milliseconds instead of a runtime container).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace berth::lifecycle {

struct PauseProcess {
  int waiter_pid = 0;  // berth-pause's waiter: the pause's parent, exits with it (watched)
  int pause_pid = 0;   // the pause: PID 1 of the pod's PID namespace (its namespaces are joined)
  int waiter_fd = -1;  // pidfd of the waiter, berthd's child: exec::Reap() once it has exited
};

// Starts `berth-pause --sandbox` processes for sandbox specs (oci::SandboxSpec: namespaces,
// hostname, linux.sysctl, process.oomScoreAdj and user, linux.cgroupsPath and cpu shares), and
// keeps one started ahead (a spare, which has also made a network namespace already): a sandbox
// then waits only for its own set-up, not for a process to start. Thread-safe.
class PauseStarter {
 public:
  explicit PauseStarter(std::string pause_binary);
  ~PauseStarter();  // Close()
  PauseStarter(const PauseStarter&) = delete;
  PauseStarter& operator=(const PauseStarter&) = delete;

  // The pause of sandbox `id` with `root` (an empty directory) as its read-only root. Creates the
  // cgroup directories. With `create_netns`, the spec's network namespace path is an empty file
  // where berth-pause bind-mounts the pod's new network namespace (loopback up). Throws Error:
  // kInvalidArgument naming the sysctl the kernel refused, kFailedPrecondition without the
  // binary, kInternal otherwise; what was created (cgroups, the netns bind mount) is left for
  // RemovePauseCgroups and the caller's teardown.
  PauseProcess Start(const std::string& id, const nlohmann::json& spec, const std::string& root, bool create_netns);
  // Starts a spare when there is none. Off the request path: it costs a process start.
  void Refill();
  // Ends the spare (it exits on end of file) and waits for it.
  void Close();

 private:
  struct Pending;
  Pending Spawn(bool prepare_net, const std::string& id) const;
  static void End(Pending& p);

  std::string binary_;
  std::mutex mu_;
  std::unique_ptr<Pending> spare_;
};

// The cgroup directories of a cgroupfs cgroupsPath, one per mounted hierarchy (cgroup v1
// controllers, named hierarchies, cgroup2).
std::vector<std::string> CgroupDirs(const std::string& cgroups_path);

// Removes the sandbox's cgroup directories (not its parents); waits up to `timeout_ms` for the
// processes in them to be gone. Throws Error naming the directory that stays busy.
void RemovePauseCgroups(const std::string& cgroups_path, int timeout_ms = 2000);

}  // namespace berth::lifecycle
