#include "cri/info_config.h"

namespace berth::cri {

namespace {

using Json = nlohmann::ordered_json;

// A Go nil slice or map marshals as null; an empty one as [] or {}. containerd leaves unset
// lists nil.
template <typename C>
Json ListOrNull(const C& c) {
  return c.empty() ? Json(nullptr) : Json(c);
}

// containerd's Runtime struct (json tags of pkg/cri/config.Runtime).
Json RuntimeJSON(const config::Runtime& r) {
  Json t = Json::object();
  t["runtimeType"] = r.runtime_type;
  t["runtimePath"] = r.runtime_path;
  t["runtimeEngine"] = "";
  t["PodAnnotations"] = ListOrNull(r.pod_annotations);
  t["ContainerAnnotations"] = ListOrNull(r.container_annotations);
  t["runtimeRoot"] = "";
  t["options"] = r.options.is_object() && !r.options.empty() ? r.options : Json(nullptr);
  t["privileged_without_host_devices"] = r.privileged_without_host_devices;
  t["privileged_without_host_devices_all_devices_allowed"] =
      r.privileged_without_host_devices_all_devices_allowed;
  t["baseRuntimeSpec"] = r.base_runtime_spec;
  t["cniConfDir"] = r.cni_conf_dir;
  t["cniMaxConfNum"] = r.cni_max_conf_num;
  t["snapshotter"] = r.snapshotter;
  t["sandboxMode"] = r.sandboxer;
  return t;
}

Json EmptyRuntimeJSON() {
  config::Runtime r;
  r.runtime_type.clear();
  r.sandboxer.clear();
  return RuntimeJSON(r);
}

Json ContainerdJSON(const config::RuntimeConfig& rt, const config::ImageConfig& img) {
  Json cd = Json::object();
  cd["snapshotter"] = img.snapshotter;
  cd["defaultRuntimeName"] = rt.containerd.default_runtime_name;
  cd["defaultRuntime"] = EmptyRuntimeJSON();
  cd["untrustedWorkloadRuntime"] = EmptyRuntimeJSON();
  Json runtimes = Json::object();
  for (const auto& [name, r] : rt.containerd.runtimes) runtimes[name] = RuntimeJSON(r);
  cd["runtimes"] = runtimes;
  cd["noPivot"] = false;
  cd["disableSnapshotAnnotations"] = img.disable_snapshot_annotations;
  cd["discardUnpackedLayers"] = img.discard_unpacked_layers;
  cd["ignoreBlockIONotEnabledErrors"] = rt.containerd.ignore_blockio_not_enabled_errors;
  cd["ignoreRdtNotEnabledErrors"] = rt.containerd.ignore_rdt_not_enabled_errors;
  return cd;
}

Json CniJSON(const config::CniConfig& c) {
  Json cni = Json::object();
  cni["binDir"] = !c.bin_dir.empty() ? c.bin_dir : c.bin_dirs.empty() ? "" : c.bin_dirs.front();
  cni["confDir"] = c.conf_dir;
  cni["maxConfNum"] = c.max_conf_num;
  cni["setupSerially"] = c.setup_serially;
  cni["confTemplate"] = c.conf_template;
  cni["ipPref"] = c.ip_pref;
  return cni;
}

Json AuthJSON(const config::AuthConfig& a) {
  return Json{{"username", a.username},
              {"password", a.password},
              {"auth", a.auth},
              {"identitytoken", a.identitytoken}};
}

Json RegistryJSON(const config::Registry& reg) {
  Json r = Json::object();
  r["configPath"] = reg.config_path;
  Json mirrors = nullptr, configs = nullptr, auths = nullptr, headers = nullptr;
  for (const auto& [host, m] : reg.mirrors)
    mirrors[host] = Json{{"endpoint", ListOrNull(m.endpoint)}};
  for (const auto& [host, c] : reg.configs) {
    Json e = Json{{"auth", c.auth ? AuthJSON(*c.auth) : Json(nullptr)}, {"tls", nullptr}};
    if (c.tls) {
      e["tls"] = Json{{"insecure_skip_verify", c.tls->insecure_skip_verify},
                      {"caFile", c.tls->ca_file},
                      {"certFile", c.tls->cert_file},
                      {"keyFile", c.tls->key_file}};
    }
    configs[host] = e;
  }
  for (const auto& [host, a] : reg.auths) auths[host] = AuthJSON(a);
  for (const auto& [name, v] : reg.headers) headers[name] = v;
  r["mirrors"] = mirrors;
  r["configs"] = configs;
  r["auths"] = auths;
  r["headers"] = headers;
  return r;
}

std::string SandboxImage(const config::ImageConfig& img) {
  auto it = img.pinned_images.find("sandbox");
  return it == img.pinned_images.end() ? "" : it->second;
}

}  // namespace

Json ContainerdInfoConfig(const InfoConfigInput& in) {
  const auto& rt = in.runtime;
  const auto& img = in.images;
  const auto& srv = in.server;
  Json c = Json::object();
  c["containerd"] = ContainerdJSON(rt, img);
  c["cni"] = CniJSON(rt.cni);
  c["registry"] = RegistryJSON(img.registry);
  c["imageDecryption"] = Json{{"keyModel", img.image_decryption.key_model}};
  c["disableTCPService"] = srv.disable_tcp_service;
  c["streamServerAddress"] = srv.stream_server_address;
  c["streamServerPort"] = srv.stream_server_port;
  c["streamIdleTimeout"] = srv.stream_idle_timeout;
  c["enableSelinux"] = rt.enable_selinux;
  c["selinuxCategoryRange"] = rt.selinux_category_range;
  c["sandboxImage"] = SandboxImage(img);
  c["statsCollectPeriod"] = img.stats_collect_period;
  c["systemdCgroup"] = false;
  c["enableTLSStreaming"] = srv.enable_tls_streaming;
  c["x509KeyPairStreaming"] = Json{{"tlsCertFile", srv.x509_key_pair_streaming.tls_cert_file},
                                   {"tlsKeyFile", srv.x509_key_pair_streaming.tls_key_file}};
  c["maxContainerLogSize"] = rt.max_container_log_line_size;
  c["disableCgroup"] = false;
  c["disableApparmor"] = rt.disable_apparmor;
  c["restrictOOMScoreAdj"] = rt.restrict_oom_score_adj.value_or(false);
  c["maxConcurrentDownloads"] = img.max_concurrent_downloads;
  c["disableProcMount"] = rt.disable_proc_mount;
  c["unsetSeccompProfile"] = rt.unset_seccomp_profile;
  c["tolerateMissingHugetlbController"] = rt.tolerate_missing_hugetlb_controller;
  c["disableHugetlbController"] = rt.disable_hugetlb_controller;
  c["device_ownership_from_security_context"] = rt.device_ownership_from_security_context;
  c["ignoreImageDefinedVolumes"] = rt.ignore_image_defined_volumes;
  c["netnsMountsUnderStateDir"] = rt.netns_mounts_under_state_dir;
  c["enableUnprivilegedPorts"] = rt.enable_unprivileged_ports;
  c["enableUnprivilegedICMP"] = rt.enable_unprivileged_icmp;
  c["enableCDI"] = rt.enable_cdi;
  c["cdiSpecDirs"] = ListOrNull(rt.cdi_spec_dirs);
  c["imagePullProgressTimeout"] = img.image_pull_progress_timeout;
  c["drainExecSyncIOTimeout"] = rt.drain_exec_sync_io_timeout;
  c["imagePullWithSyncFs"] = img.image_pull_with_sync_fs;
  c["ignoreDeprecationWarnings"] = ListOrNull(rt.ignore_deprecation_warnings);
  c["containerdRootDir"] = in.containerd_root_dir;
  c["containerdEndpoint"] = in.containerd_endpoint;
  c["rootDir"] = in.root_dir;
  c["stateDir"] = in.state_dir;
  return c;
}

}  // namespace berth::cri
