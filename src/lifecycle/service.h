// Pods and containers: the CRI RuntimeService of berth. Pod sandboxes (berth-pause run through
// berth-monitor and the OCI runtime, network namespace, /dev/shm, hosts/hostname/resolv.conf),
// containers (snapshot rootfs, OCI spec, volumes with the recursive read-only rules, berth-monitor
// for stdio, CRI logs and exit codes), ExecSync, stats from cgroup v1, container events, and
// state kept in SQLite so that berthd recovers everything after a restart.
//
// Every method throws berth::Error whose Code is the gRPC status of the answer. Requests are
// untrusted: bad input gets InvalidArgument/NotFound/AlreadyExists/FailedPrecondition naming the
// object and the cause, and leaves the service and its state intact. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "oci/mounts.h"
#include "streaming/process.h"

namespace runtime::v1 {
class RunPodSandboxRequest;
class RunPodSandboxResponse;
class StopPodSandboxRequest;
class RemovePodSandboxRequest;
class PodSandboxStatusRequest;
class PodSandboxStatusResponse;
class ListPodSandboxRequest;
class ListPodSandboxResponse;
class CreateContainerRequest;
class CreateContainerResponse;
class StartContainerRequest;
class StopContainerRequest;
class RemoveContainerRequest;
class ListContainersRequest;
class ListContainersResponse;
class ContainerStatusRequest;
class ContainerStatusResponse;
class UpdateContainerResourcesRequest;
class ReopenContainerLogRequest;
class ExecSyncRequest;
class ExecSyncResponse;
class ExecRequest;
class AttachRequest;
class PortForwardRequest;
class ContainerStatsRequest;
class ContainerStatsResponse;
class ListContainerStatsRequest;
class ListContainerStatsResponse;
class PodSandboxStatsRequest;
class PodSandboxStatsResponse;
class ListPodSandboxStatsRequest;
class ListPodSandboxStatsResponse;
class ContainerEventResponse;
}  // namespace runtime::v1

namespace berth::snapshot {
class Snapshotter;
}
namespace berth::image {
class ImageService;
}
namespace berth::store {
class Database;
}
namespace berth::criplugins {
class CRIRuntimePlugin;
}
namespace berth::network {
class Cni;
}

namespace berth::lifecycle {

// An image as containers need it.
struct ImageInfo {
  std::string id;           // config digest
  std::string ref;          // the name it was found by, normalized (repo tag or digest)
  std::vector<std::string> repo_tags, repo_digests;
  std::string chain_id;     // parent snapshot of container root file systems
  std::string config_json;  // OCI image config
};

// Where images and snapshots come from (the ImageService in berthd; a fixture in tests).
class ImageProvider {
 public:
  virtual ~ImageProvider() = default;
  // nullopt when the image is not present locally.
  virtual std::optional<ImageInfo> Resolve(const std::string& ref_or_id) = 0;
  virtual snapshot::Snapshotter& snapshotter() = 0;
  // Pulls the image (without credentials: the registry's hosts configuration applies) and
  // returns it. Throws Error;
  // this default: kFailedPrecondition, the provider cannot pull.
  virtual ImageInfo Pull(const std::string& ref);
};
std::unique_ptr<ImageProvider> NewImageServiceProvider(image::ImageService& images);

// Whether `ref` names Kubernetes' own pause image (registry.k8s.io/pause or k8s.gcr.io/pause, any
// tag or digest), which berth-pause stands in for when it is not present: such a
// pinned_images.sandbox is not pulled. Any other sandbox image is.
bool IsStockPauseImage(const std::string& ref);

// What a runtime handler proved about user namespaces for pods (runtime/userns.h).
struct HandlerUserns {
  bool supported = false;
  std::string reason;
  bool runtime_idmap = false;  // the runtime idmaps mounts itself (`idmap` among its features)
  std::string rootfs = "idmap";  // "idmap": idmapped layers; "copy": chown'ed copies
};

// One runtime handler.
struct Handler {
  std::string name;
  std::string binary = "runc";          // OCI runtime (path or name)
  std::string root;                     // --root; "" = <state_dir>/runtime/<name>
  bool systemd_cgroup = false;
  std::string treat_ro_mounts_as_rro;   // "", "Enabled", "IfPossible", "Disabled"
  // Recursive read-only behaviour as the CRI runtime plugin resolved it at init. Unset: the
  // RuntimeService resolves it once at construction (kernel probe, runtime features) from
  // treat_ro_mounts_as_rro, and refuses to start when the value cannot be honoured.
  std::optional<oci::HandlerRRO> rro;
  // User namespace support as the CRI runtime plugin proved it at init. Unset: proven on the
  // first pod that asks for a user namespace.
  std::optional<HandlerUserns> userns;
  // The parsed base_runtime_spec (read once by the plugin); null = oci::DefaultSpec().
  std::shared_ptr<const nlohmann::json> base_spec;
  bool privileged_without_host_devices = false;
  std::vector<std::string> pod_annotations, container_annotations;  // globs passed to the spec
  // The handler's own CNI networks (cni_conf_dir); null: Options::cni.
  std::shared_ptr<network::Cni> cni;
};

struct Options {
  std::string root_dir;   // persistent: the metadata database
  std::string state_dir;  // sandboxes/, containers/, netns/, rro/, runtime roots
  std::string monitor_path;  // berth-monitor
  std::string pause_path;    // berth-pause (static)
  std::map<std::string, Handler> handlers;
  std::string default_handler = "runc";
  bool restrict_oom_score_adj = false;
  std::string unset_seccomp_profile;  // seccomp profile when the CRI gives none ("" = unconfined)
  long max_container_log_line_size = 16 * 1024;
  // pinned_images.sandbox: when this image is present locally, sandboxes run its entrypoint (and
  // cmd) as the pause process on a snapshot of it. When it is not: pulled first with
  // pull_sandbox_image (as containerd does), else the built-in berth-pause runs.
  std::string sandbox_image;
  bool pull_sandbox_image = false;
  std::shared_ptr<ImageProvider> images;       // required for containers
  std::shared_ptr<store::Database> db;         // null: <root_dir>/lifecycle.db
  // Exits are seen through pidfds at once; this is the exit watcher's safety-net sweep.
  std::chrono::milliseconds poll_interval{2000};
  bool watch_exits = true;
  // Pod networking through CNI (docs/networking.md); null: pods get only a loopback interface.
  std::shared_ptr<network::Cni> cni;
  // After an ExecSync's process exited, how long its output is read while other processes still
  // hold it (drain_exec_sync_io_timeout; 0 = until the call's timeout).
  std::chrono::milliseconds drain_exec_sync_io_timeout{0};
  // userns_rootfs ("auto", "idmap", "copy"), for handlers proven here rather than by the plugin.
  std::string userns_rootfs = "auto";
};

// Options from the CRI runtime plugin's validated configuration (handlers with their resolved
// recursive read-only behaviour and parsed base specs, restrict_oom_score_adj,
// unset_seccomp_profile, max_container_log_line_size, root/state dirs). monitor/pause paths,
// sandbox_image and images are left for the caller.
Options OptionsFromRuntimePlugin(const criplugins::CRIRuntimePlugin& plugin);

// Path of a program shipped with berth ("berth-monitor", "berth-pause"): the environment variable
// BERTH_MONITOR_PATH / BERTH_PAUSE_PATH when set, else next to the running executable, else in
// the build tree beside it (../<name>/<name>), else in PATH. "" when not found.
std::string FindHelper(const std::string& name);

// A subscription to container events (GetContainerEvents).
class EventSubscription {
 public:
  virtual ~EventSubscription() = default;
  // Waits up to `timeout` for the next event; false when none arrived (or Close() was called).
  virtual bool Next(runtime::v1::ContainerEventResponse* event, std::chrono::milliseconds timeout) = 0;
  virtual void Close() = 0;
};

class RuntimeService {
 public:
  // Opens the database and recovers sandboxes and containers (see docs/pods.md).
  explicit RuntimeService(Options opts);
  ~RuntimeService();
  RuntimeService(const RuntimeService&) = delete;
  RuntimeService& operator=(const RuntimeService&) = delete;

  void RunPodSandbox(const runtime::v1::RunPodSandboxRequest& req, runtime::v1::RunPodSandboxResponse* resp);
  void StopPodSandbox(const runtime::v1::StopPodSandboxRequest& req);
  void RemovePodSandbox(const runtime::v1::RemovePodSandboxRequest& req);
  void PodSandboxStatus(const runtime::v1::PodSandboxStatusRequest& req, runtime::v1::PodSandboxStatusResponse* resp);
  void ListPodSandbox(const runtime::v1::ListPodSandboxRequest& req, runtime::v1::ListPodSandboxResponse* resp);

  void CreateContainer(const runtime::v1::CreateContainerRequest& req, runtime::v1::CreateContainerResponse* resp);
  void StartContainer(const runtime::v1::StartContainerRequest& req);
  // The container's stop signal, up to req.timeout() seconds, then SIGKILL. When `cancelled`
  // (the caller's context has ended) turns true during that wait, the stop is abandoned: no
  // SIGKILL, the state unchanged, Error(kDeadlineExceeded).
  void StopContainer(const runtime::v1::StopContainerRequest& req,
                     const std::function<bool()>& cancelled = {});
  void RemoveContainer(const runtime::v1::RemoveContainerRequest& req);
  void ListContainers(const runtime::v1::ListContainersRequest& req, runtime::v1::ListContainersResponse* resp);
  // The same answer as ListContainers, already in protobuf wire format (a serialized
  // ListContainersResponse): each container's entry is encoded once per state and kept, so that
  // listing thousands of containers is a copy of bytes rather than thousands of messages.
  void ListContainersWire(const runtime::v1::ListContainersRequest& req, std::string* out);
  void ContainerStatus(const runtime::v1::ContainerStatusRequest& req, runtime::v1::ContainerStatusResponse* resp);
  void UpdateContainerResources(const runtime::v1::UpdateContainerResourcesRequest& req);
  void ReopenContainerLog(const runtime::v1::ReopenContainerLogRequest& req);
  void ExecSync(const runtime::v1::ExecSyncRequest& req, runtime::v1::ExecSyncResponse* resp);
  // What the streaming server runs for Exec, Attach and PortForward: the request validated
  // against the container or sandbox now; the process starts (or the port is dialled) when the
  // client connects (lifecycle/exec_service.cpp, attach.cpp).
  streaming::Request PrepareExec(const runtime::v1::ExecRequest& req);
  streaming::Request PrepareAttach(const runtime::v1::AttachRequest& req);
  streaming::Request PreparePortForward(const runtime::v1::PortForwardRequest& req);

  void ContainerStats(const runtime::v1::ContainerStatsRequest& req, runtime::v1::ContainerStatsResponse* resp);
  void ListContainerStats(const runtime::v1::ListContainerStatsRequest& req, runtime::v1::ListContainerStatsResponse* resp);
  void PodSandboxStats(const runtime::v1::PodSandboxStatsRequest& req, runtime::v1::PodSandboxStatsResponse* resp);
  void ListPodSandboxStats(const runtime::v1::ListPodSandboxStatsRequest& req, runtime::v1::ListPodSandboxStatsResponse* resp);

  std::unique_ptr<EventSubscription> SubscribeEvents();

  // What recovery found at startup: {"sandboxes": n, "containers": n, "cleaned": [ids...]}.
  std::string RecoveryReport() const;
  // Waits until the work done after replies (the files of removed containers and sandboxes,
  // cgroups of stopped sandboxes, the next sandbox's berth-pause) is finished.
  void WaitDeferred();
  // Stops the exit watcher. Containers keep running.
  void Close();

  struct Impl;  // defined in service_impl.h, for the files of src/lifecycle

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace berth::lifecycle
