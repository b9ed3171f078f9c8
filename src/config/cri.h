// Typed configurations of the three CRI plugins, as containerd 2's internal/cri/config:
//   io.containerd.cri.v1.runtime -> RuntimeConfig
//   io.containerd.cri.v1.images  -> ImageConfig
//   io.containerd.grpc.v1.cri    -> ServerConfig
// Defaults live in one place (Default*Config()); Decode* reads a raw table over them; Encode
// writes every key back; Validate* returns errors and warnings separately.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace berth::config {

// treat_ro_mounts_as_rro values ("" means kRroIfPossible).
inline constexpr const char* kRroEnabled = "Enabled";
inline constexpr const char* kRroIfPossible = "IfPossible";
inline constexpr const char* kRroDisabled = "Disabled";

// Deprecation ids, containerd's names.
inline constexpr const char* kDeprecationCRIRegistryMirrors =
    "io.containerd.deprecation/cri-registry-mirrors";
inline constexpr const char* kDeprecationCRIRegistryConfigs =
    "io.containerd.deprecation/cri-registry-configs";
inline constexpr const char* kDeprecationCRIRegistryAuths =
    "io.containerd.deprecation/cri-registry-auths";
inline constexpr const char* kDeprecationCNIBinDir = "io.containerd.deprecation/cri-cni-bin-dir";

// One runtime handler: [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.<name>].
struct Runtime {
  std::string runtime_type = "io.containerd.runc.v2";
  std::string runtime_path;
  std::vector<std::string> pod_annotations, container_annotations;
  // Runtime options kept raw (BinaryName, Root, SystemdCgroup, NoNewKeyring, ShimCgroup, IoUid,
  // IoGid, CriuImagePath, CriuWorkPath, ...); typed accessors below.
  nlohmann::ordered_json options = nlohmann::ordered_json::object();
  bool privileged_without_host_devices = false;
  bool privileged_without_host_devices_all_devices_allowed = false;
  std::string base_runtime_spec;
  std::string cni_conf_dir;
  int cni_max_conf_num = 0;
  std::string snapshotter;
  std::string sandboxer = "podsandbox";
  std::string io_type;  // "", "fifo", "streaming"
  std::string treat_ro_mounts_as_rro;  // "", "Enabled", "IfPossible", "Disabled"

  // options.BinaryName / options.Root as strings ("" when absent or not a string).
  std::string BinaryName() const;
  std::string Root() const;
  bool SystemdCgroup() const;  // options.SystemdCgroup, false when absent
  // treat_ro_mounts_as_rro with "" resolved to "IfPossible".
  std::string TreatRoMountsAsRro() const;
};

struct ContainerdConfig {
  std::string default_runtime_name = "runc";
  std::map<std::string, Runtime> runtimes;
  bool ignore_blockio_not_enabled_errors = false;
  bool ignore_rdt_not_enabled_errors = false;
};

struct CniConfig {
  std::string bin_dir;                  // deprecated, folded into bin_dirs
  std::vector<std::string> bin_dirs;    // default {"/opt/cni/bin", "/usr/lib/cni"}
  std::string conf_dir = "/etc/cni/net.d";
  int max_conf_num = 1;
  bool setup_serially = false;
  std::string conf_template;
  std::string ip_pref;
  bool use_internal_loopback = false;
  std::string plugin_timeout;  // berth: duration of one plugin call, "" = 2m
};

// [plugins."io.containerd.cri.v1.runtime"]
struct RuntimeConfig {
  ContainerdConfig containerd;
  CniConfig cni;
  bool enable_selinux = false;
  int selinux_category_range = 1024;
  int max_container_log_line_size = 16 * 1024;
  bool disable_apparmor = false;
  // Unset: clamp only when berthd lacks CAP_SYS_RESOURCE (the kernel would refuse a lower score);
  // true: always clamp to berthd's own oom_score_adj; false: never (as containerd).
  std::optional<bool> restrict_oom_score_adj;
  bool disable_proc_mount = false;
  std::string unset_seccomp_profile;
  bool tolerate_missing_hugetlb_controller = true;
  bool disable_hugetlb_controller = true;
  bool device_ownership_from_security_context = false;
  bool ignore_image_defined_volumes = false;
  bool netns_mounts_under_state_dir = false;
  bool enable_unprivileged_ports = true;
  bool enable_unprivileged_icmp = true;
  bool enable_cdi = true;
  std::vector<std::string> cdi_spec_dirs;  // default {"/etc/cdi", "/var/run/cdi"}
  std::string drain_exec_sync_io_timeout = "0s";
  std::vector<std::string> ignore_deprecation_warnings;
  // Root file systems of pods with a user namespace (docs/userns.md): "auto" idmaps the image's
  // layers when the kernel proved it can and otherwise uses chown'ed copies; "idmap" only
  // idmapped layers (user namespaces unsupported without them); "copy" always chown'ed copies.
  std::string userns_rootfs = "auto";
};

struct Mirror {
  std::vector<std::string> endpoint;
};
struct AuthConfig {
  std::string username, password, auth, identitytoken;
};
struct TLSConfig {
  bool insecure_skip_verify = false;
  std::string ca_file, cert_file, key_file;
};
struct RegistryConfig {
  std::optional<AuthConfig> auth;
  std::optional<TLSConfig> tls;
};
struct Registry {
  std::string config_path;
  std::map<std::string, Mirror> mirrors;          // deprecated
  std::map<std::string, RegistryConfig> configs;  // deprecated
  std::map<std::string, AuthConfig> auths;        // deprecated
  std::map<std::string, std::vector<std::string>> headers;
};
struct ImageDecryption {
  std::string key_model = "node";
};
struct ImagePlatform {
  std::string platform, snapshotter;
};

// [plugins."io.containerd.cri.v1.images"]
struct ImageConfig {
  std::string snapshotter = "overlayfs";
  bool disable_snapshot_annotations = true;
  bool discard_unpacked_layers = false;
  std::map<std::string, ImagePlatform> runtime_platforms;
  std::map<std::string, std::string> pinned_images;  // default {"sandbox": "registry.k8s.io/pause:3.10"}
  Registry registry;
  ImageDecryption image_decryption;
  int max_concurrent_downloads = 3;
  std::string image_pull_progress_timeout = "5m0s";
  bool image_pull_with_sync_fs = false;
  int stats_collect_period = 10;
  bool use_local_image_pull = false;
};

struct X509KeyPairStreaming {
  std::string tls_cert_file, tls_key_file;
};

// [plugins."io.containerd.grpc.v1.cri"]
struct ServerConfig {
  bool disable_tcp_service = true;
  std::string stream_server_address = "127.0.0.1";
  std::string stream_server_port = "0";
  std::string stream_idle_timeout = "4h0m0s";
  bool enable_tls_streaming = false;
  X509KeyPairStreaming x509_key_pair_streaming;
};

RuntimeConfig DefaultRuntimeConfig();
ImageConfig DefaultImageConfig();
ServerConfig DefaultServerConfig();

// Decode a raw table over the defaults. Unknown keys are not kept in the struct; their full key
// paths are appended to *unknown ("plugins.\"io.containerd.cri.v1.runtime\".foo"). A value of the
// wrong type throws Error(kInvalidArgument,
// "plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.runc.privileged_without_host_devices: expected boolean, got string").
// A table that is null decodes to the defaults.
RuntimeConfig DecodeRuntimeConfig(const nlohmann::ordered_json& table,
                                  std::vector<std::string>* unknown = nullptr);
ImageConfig DecodeImageConfig(const nlohmann::ordered_json& table,
                              std::vector<std::string>* unknown = nullptr);
ServerConfig DecodeServerConfig(const nlohmann::ordered_json& table,
                                std::vector<std::string>* unknown = nullptr);

// Every key, in containerd's order (for `config dump`/`config default` and CRI Status info).
nlohmann::ordered_json Encode(const RuntimeConfig& c);
nlohmann::ordered_json Encode(const ImageConfig& c);
nlohmann::ordered_json Encode(const ServerConfig& c);

struct Validation {
  std::vector<std::string> warnings;
  // (id like "io.containerd.deprecation/cri-registry-mirrors", message)
  std::vector<std::pair<std::string, std::string>> deprecations;
  std::vector<std::string> errors;
  bool ok() const { return errors.empty(); }
};

// As containerd's ValidateRuntimeConfig/ValidateImageConfig/ValidateServerConfig. They may fill
// defaults (empty sandboxer -> "podsandbox"; a lone deprecated cni.bin_dir moves into bin_dirs;
// registry.auths are copied into registry.configs). Every message names the key and the
// offending value; see docs/config.md for the table of checks.
Validation ValidateRuntimeConfig(RuntimeConfig& c);
Validation ValidateImageConfig(ImageConfig& c);
Validation ValidateServerConfig(ServerConfig& c);

// Go time.ParseDuration syntax: "1h30m", "500ms", "1.5s", "-2m", "0". False on bad syntax or
// overflow (out untouched).
bool ParseDuration(std::string_view go_duration, std::chrono::nanoseconds* out);
// Go time.Duration.String(): "1h30m0s", "500ms", "0s".
std::string FormatDuration(std::chrono::nanoseconds d);

}  // namespace berth::config
