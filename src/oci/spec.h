// OCI runtime spec (config.json) generation for pod sandboxes and containers from CRI messages,
// as containerd's CRI plugin does (internal/cri/server/container_create_linux.go,
// podsandbox/sandbox_run_linux.go, pkg/oci/spec.go). Pure logic apart from reading the image
// rootfs's /etc/passwd and /etc/group, Localhost seccomp profiles, and device nodes.
// Invalid input throws Error(kInvalidArgument) naming the CRI field.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "oci/mounts.h"

namespace runtime::v1 {
class PodSandboxConfig;
class ContainerConfig;
class LinuxContainerResources;
}  // namespace runtime::v1

namespace berth::oci {

// Annotations berth writes (containerd's names, so that tools that read them keep working).
inline constexpr const char* kAnnContainerType = "io.kubernetes.cri.container-type";
inline constexpr const char* kAnnSandboxId = "io.kubernetes.cri.sandbox-id";
inline constexpr const char* kAnnSandboxName = "io.kubernetes.cri.sandbox-name";
inline constexpr const char* kAnnSandboxNamespace = "io.kubernetes.cri.sandbox-namespace";
inline constexpr const char* kAnnSandboxUid = "io.kubernetes.cri.sandbox-uid";
inline constexpr const char* kAnnSandboxLogDir = "io.kubernetes.cri.sandbox-log-directory";
inline constexpr const char* kAnnContainerName = "io.kubernetes.cri.container-name";
inline constexpr const char* kAnnImageName = "io.kubernetes.cri.image-name";

// The part of an OCI image config ("config" of the image configuration JSON) that matters here.
struct ImageConfig {
  std::vector<std::string> entrypoint, cmd, env;
  std::string working_dir, user, stop_signal;
};
// Reads the "config" object of an OCI image configuration (or the object itself when it has no
// "config" key); missing fields stay empty, wrong types throw kInvalidArgument.
ImageConfig ParseImageConfig(const nlohmann::json& image_config);

// The signal to stop a container with: the CRI stop_signal when set (a runtime.v1.Signal enum
// value, e.g. SIGRTMINPLUS3; not a Linux signal number), else the image's StopSignal
// ("SIGQUIT", "QUIT", "3", "SIGRTMIN+3"), else SIGTERM. Throws kInvalidArgument for unknown
// values, naming "stop_signal" or "image config StopSignal".
int StopSignal(int cri_stop_signal, const std::string& image_stop_signal);
// "SIGTERM"/"TERM"/"15" -> 15; -1 when unknown.
int ParseSignal(const std::string& name);

// The built-in base spec, like containerd's populateDefaultUnixSpec plus the CRI's cgroup mount:
// /proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys, /sys/fs/cgroup; default capabilities;
// masked and read-only paths; RLIMIT_NOFILE 1024; pid/ipc/uts/mount/network namespaces.
nlohmann::json DefaultSpec();
// The handler's base_runtime_spec file when given, else DefaultSpec(). Throws naming the file.
nlohmann::json LoadBaseSpec(const std::string& base_runtime_spec_path);
// A copy of the parsed base spec when given (the CRI runtime plugin reads each base_runtime_spec
// file once at init), else LoadBaseSpec(path).
nlohmann::json BaseSpec(const std::shared_ptr<const nlohmann::json>& base, const std::string& path);

// Capabilities in the default set ("CAP_CHOWN", ...).
const std::vector<std::string>& DefaultCapabilities();
// All capabilities the kernel headers berth knows ("CAP_CHOWN" ... "CAP_CHECKPOINT_RESTORE").
const std::vector<std::string>& AllCapabilities();
// "net_admin", "NET_ADMIN", "CAP_NET_ADMIN" -> "CAP_NET_ADMIN"; "" when unknown.
std::string NormalizeCapability(const std::string& name);

// Things of the node that spec generation needs and tests replace.
struct NodeInfo {
  int own_oom_score_adj = 0;           // berthd's /proc/self/oom_score_adj
  bool swap_accounting = true;         // memory.memsw (v1) / memory.swap.max (v2) exists
  bool systemd_cgroup = false;         // cgroupsPath as "slice:prefix:name"
  // berthd's capability bounding set ("CAP_..."); empty = every capability berth knows. "ALL"
  // and privileged give this set; an explicit add outside it is refused.
  std::vector<std::string> bounding_caps;
};
// Reads the values above from the host.
NodeInfo HostNodeInfo();

// linux.resources (cpu, memory, hugepageLimits, unified) and process.oomScoreAdj from CRI
// resources, for CreateContainer and UpdateContainerResources. With restrict_oom_score_adj, an
// oom_score_adj below berthd's own is raised to it (and berthd's own is used when the CRI gives
// none and it is positive). `field` prefixes error messages ("linux.resources").
struct LinuxResources {
  nlohmann::json resources;               // object; only the keys the CRI set
  std::optional<int> oom_score_adj;       // unset: the container inherits berthd's
};
LinuxResources ResourcesFromCri(const ::runtime::v1::LinuxContainerResources& r, bool restrict_oom_score_adj,
                                const NodeInfo& node, const std::string& field = "linux.resources");

// linux.cgroupsPath of a sandbox or container: "<parent>/berth-<id>" (cgroupfs; parent default
// "/berth", absolute, no "..") or "<slice>:berth:<id>" (systemd). Throws naming
// linux.cgroup_parent.
std::string CgroupsPath(const std::string& cgroup_parent, const std::string& id, const NodeInfo& node);

// process.user from an image/CRI user: resolves names against <rootfs>/etc/passwd and
// /etc/group (without leaving the rootfs), adds the groups that list the user as a member.
struct ResolvedUser {
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> additional_gids;
  std::string username;  // when known
};
// user: "name", "uid", "name:group", "uid:gid" (the image's User, or run_as_username).
ResolvedUser ResolveUser(const std::string& rootfs, const std::string& user, const std::string& field);
// process.user.additionalGids of a container, as containerd and Docker compute them: the primary
// gid, then (unless `strict`, KEP-3619's SupplementalGroupsPolicy Strict) the groups of the image
// that list the user, then the requested supplemental groups; each gid once, in that order.
std::vector<uint32_t> AdditionalGids(const ResolvedUser& user,
                                     const std::vector<uint32_t>& requested, bool strict);

struct SandboxSpecOptions {
  std::string id;
  std::string pause_rootfs;          // root.path (read-only); holds the pause binary
  std::vector<std::string> pause_args = {"/pause"};
  std::vector<std::string> pause_env;  // merged over the base spec's env (a sandbox image's Env)
  std::string pause_cwd = "/";
  // A sandbox image's User, resolved in its rootfs (ResolveUser); the pod's run_as_user and
  // run_as_group win over it. Unset: root.
  std::optional<ResolvedUser> pause_user;
  std::string netns_path;            // network namespace to join ("" = new one, unless NODE)
  std::string shm_path;              // host dir with the sandbox's /dev/shm tmpfs ("" = tmpfs)
  std::shared_ptr<const nlohmann::json> base_spec;  // parsed base_runtime_spec (wins over the path)
  std::string base_spec_path;        // handler's base_runtime_spec ("" = DefaultSpec())
  bool restrict_oom_score_adj = false;
  std::string unset_seccomp_profile; // profile when the CRI gives none ("" = unconfined)
  std::vector<std::string> pod_annotation_patterns;  // handler's pod_annotations (globs)
  NodeInfo node;
};
// The sandbox spec. Throws Error(kInvalidArgument) naming the field for bad input.
nlohmann::json SandboxSpec(const ::runtime::v1::PodSandboxConfig& config, const SandboxSpecOptions& o);

struct ContainerSpecOptions {
  std::string id;
  std::string sandbox_id;
  int sandbox_pid = 0;                // for /proc/<pid>/ns/{net,ipc,uts,pid}
  std::string netns_path;             // the pod's network namespace ("" = /proc/<sandbox_pid>/ns/net)
  std::string hostname;               // HOSTNAME in the env ("" = the sandbox config's hostname)
  int target_pid = 0;                 // namespace_options.pid == TARGET
  std::string rootfs;                 // root.path (the container's rootfs on the host)
  std::string image_name;             // io.kubernetes.cri.image-name
  ImageConfig image;
  std::shared_ptr<const nlohmann::json> base_spec;  // parsed base_runtime_spec (wins over the path)
  std::string base_spec_path;         // handler's base_runtime_spec ("" = DefaultSpec())
  std::string hosts_path, hostname_path, resolv_conf_path;  // sandbox files ("" = none)
  std::string shm_path;               // the sandbox's /dev/shm on the host ("" = tmpfs)
  HandlerRRO rro;                     // volume mounts, see mounts.h
  bool privileged_without_host_devices = false;
  bool restrict_oom_score_adj = false;
  std::string unset_seccomp_profile;
  std::vector<std::string> container_annotation_patterns;  // handler's container_annotations
  NodeInfo node;
};

// The container spec. `volumes` (optional) receives the plan of every CRI volume mount, in the
// order of config.mounts; plans with stage_read_only need mount::StageReadOnly of their source,
// and the caller then rewrites the matching mounts[] entry (same destination) to the staged path.
nlohmann::json ContainerSpec(const ::runtime::v1::ContainerConfig& config,
                             const ::runtime::v1::PodSandboxConfig& sandbox,
                             const ContainerSpecOptions& o, std::vector<MountPlan>* volumes = nullptr);

}  // namespace berth::oci
