// Typed CRI plugin configs: defaults, decode, encode, validation.
#include "config/cri.h"

#include <algorithm>
#include <set>

#include "common/error.h"
#include "config/config.h"
#include "config/reader.h"
#include "config/toml_io.h"

namespace berth::config {

using detail::JoinKey;
using detail::TableReader;
using detail::Tree;

namespace {

const std::string kRuntimePath = std::string("plugins.") + detail::QuoteKey(kCRIRuntimePluginURI);
const std::string kImagesPath = std::string("plugins.") + detail::QuoteKey(kCRIImagesPluginURI);
const std::string kServerPath = std::string("plugins.") + detail::QuoteKey(kCRIServerPluginURI);

// Keys containerd 1.x accepted that containerd 2 removed; decoding reports them with that reason.
const std::set<std::string> kRemovedKeys = {
    "systemd_cgroup", "disable_cgroup", "no_pivot", "default_runtime",
    "untrusted_workload_runtime", "runtime_engine", "runtime_root",
};

void ReportUnknown(std::vector<std::string>* unknown, size_t from) {
  if (!unknown) return;
  for (size_t i = from; i < unknown->size(); ++i) {
    std::string& key = (*unknown)[i];
    std::string last = key.substr(key.rfind('.') + 1);
    if (kRemovedKeys.count(last))
      key += " (removed in containerd 2.0, ignored)";
  }
}

Tree DefaultRuncOptions() {
  Tree o = Tree::object();
  o["BinaryName"] = "";
  o["CriuImagePath"] = "";
  o["CriuWorkPath"] = "";
  o["IoGid"] = 0;
  o["IoUid"] = 0;
  o["NoNewKeyring"] = false;
  o["Root"] = "";
  o["ShimCgroup"] = "";
  o["SystemdCgroup"] = false;
  return o;
}

std::string Quote(const std::string& s) { return "\"" + s + "\""; }

template <typename Map>
std::string Keys(const Map& m) {
  std::string out;
  for (const auto& [k, v] : m) out += (out.empty() ? "" : ", ") + k;
  return out.empty() ? "none" : out;
}

void DecodeRuntime(const Tree& t, const std::string& path, Runtime& r,
                   std::vector<std::string>* unknown) {
  TableReader rd(t, path, unknown);
  rd.Str("runtime_type", r.runtime_type);
  rd.Str("runtime_path", r.runtime_path);
  rd.StrList("pod_annotations", r.pod_annotations);
  rd.StrList("container_annotations", r.container_annotations);
  if (const Tree* o = rd.Table("options")) {
    if (!r.options.is_object()) r.options = Tree::object();
    for (const auto& [k, v] : o->items()) r.options[k] = v;
  }
  rd.Bool("privileged_without_host_devices", r.privileged_without_host_devices);
  rd.Bool("privileged_without_host_devices_all_devices_allowed",
          r.privileged_without_host_devices_all_devices_allowed);
  rd.Str("base_runtime_spec", r.base_runtime_spec);
  rd.Str("cni_conf_dir", r.cni_conf_dir);
  rd.Int("cni_max_conf_num", r.cni_max_conf_num);
  rd.Str("snapshotter", r.snapshotter);
  rd.Str("sandboxer", r.sandboxer);
  rd.Str("io_type", r.io_type);
  rd.Str("treat_ro_mounts_as_rro", r.treat_ro_mounts_as_rro);
  rd.Finish();
}

Tree EncodeRuntime(const Runtime& r) {
  Tree t = Tree::object();
  t["runtime_type"] = r.runtime_type;
  t["runtime_path"] = r.runtime_path;
  t["pod_annotations"] = r.pod_annotations;
  t["container_annotations"] = r.container_annotations;
  t["privileged_without_host_devices"] = r.privileged_without_host_devices;
  t["privileged_without_host_devices_all_devices_allowed"] =
      r.privileged_without_host_devices_all_devices_allowed;
  t["base_runtime_spec"] = r.base_runtime_spec;
  t["cni_conf_dir"] = r.cni_conf_dir;
  t["cni_max_conf_num"] = r.cni_max_conf_num;
  t["snapshotter"] = r.snapshotter;
  t["sandboxer"] = r.sandboxer;
  t["io_type"] = r.io_type;
  t["treat_ro_mounts_as_rro"] = r.treat_ro_mounts_as_rro;
  t["options"] = r.options.is_object() ? r.options : Tree::object();
  return t;
}

AuthConfig DecodeAuth(const Tree& t, const std::string& path, std::vector<std::string>* unknown) {
  AuthConfig a;
  TableReader rd(t, path, unknown);
  rd.Str("username", a.username);
  rd.Str("password", a.password);
  rd.Str("auth", a.auth);
  rd.Str("identitytoken", a.identitytoken);
  rd.Finish();
  return a;
}

Tree EncodeAuth(const AuthConfig& a) {
  Tree t = Tree::object();
  t["username"] = a.username;
  t["password"] = a.password;
  t["auth"] = a.auth;
  t["identitytoken"] = a.identitytoken;
  return t;
}

void DecodeRegistry(const Tree& t, const std::string& path, Registry& reg,
                    std::vector<std::string>* unknown) {
  TableReader rd(t, path, unknown);
  rd.Str("config_path", reg.config_path);
  if (const Tree* m = rd.Table("mirrors")) {
    for (const auto& [host, v] : m->items()) {
      std::string p = JoinKey(rd.Path("mirrors"), host);
      if (!v.is_object()) detail::ThrowType(p, "table", v);
      TableReader mr(v, p, unknown);
      Mirror mirror;
      mr.StrList("endpoint", mirror.endpoint);
      mr.Finish();
      reg.mirrors[host] = std::move(mirror);
    }
  }
  if (const Tree* m = rd.Table("configs")) {
    for (const auto& [host, v] : m->items()) {
      std::string p = JoinKey(rd.Path("configs"), host);
      if (!v.is_object()) detail::ThrowType(p, "table", v);
      TableReader cr(v, p, unknown);
      RegistryConfig rc;
      if (const Tree* a = cr.Table("auth")) rc.auth = DecodeAuth(*a, cr.Path("auth"), unknown);
      if (const Tree* tls = cr.Table("tls")) {
        TableReader tr(*tls, cr.Path("tls"), unknown);
        TLSConfig tc;
        tr.Bool("insecure_skip_verify", tc.insecure_skip_verify);
        tr.Str("ca_file", tc.ca_file);
        tr.Str("cert_file", tc.cert_file);
        tr.Str("key_file", tc.key_file);
        tr.Finish();
        rc.tls = tc;
      }
      cr.Finish();
      reg.configs[host] = std::move(rc);
    }
  }
  if (const Tree* m = rd.Table("auths")) {
    for (const auto& [host, v] : m->items()) {
      std::string p = JoinKey(rd.Path("auths"), host);
      if (!v.is_object()) detail::ThrowType(p, "table", v);
      reg.auths[host] = DecodeAuth(v, p, unknown);
    }
  }
  if (const Tree* m = rd.Table("headers")) {
    for (const auto& [name, v] : m->items()) {
      std::string p = JoinKey(rd.Path("headers"), name);
      if (!v.is_array()) detail::ThrowType(p, "array of strings", v);
      std::vector<std::string> values;
      for (size_t i = 0; i < v.size(); ++i) {
        if (!v[i].is_string())
          detail::ThrowType(p + "[" + std::to_string(i) + "]", "string", v[i]);
        values.push_back(v[i].get<std::string>());
      }
      reg.headers[name] = std::move(values);
    }
  }
  rd.Finish();
}

Tree EncodeRegistry(const Registry& reg) {
  Tree t = Tree::object();
  t["config_path"] = reg.config_path;
  if (!reg.headers.empty()) {
    Tree h = Tree::object();
    for (const auto& [k, v] : reg.headers) h[k] = v;
    t["headers"] = h;
  }
  if (!reg.mirrors.empty()) {
    Tree m = Tree::object();
    for (const auto& [k, v] : reg.mirrors) m[k] = Tree{{"endpoint", v.endpoint}};
    t["mirrors"] = m;
  }
  if (!reg.configs.empty()) {
    Tree m = Tree::object();
    for (const auto& [k, v] : reg.configs) {
      Tree c = Tree::object();
      if (v.auth) c["auth"] = EncodeAuth(*v.auth);
      if (v.tls) {
        Tree tls = Tree::object();
        tls["insecure_skip_verify"] = v.tls->insecure_skip_verify;
        tls["ca_file"] = v.tls->ca_file;
        tls["cert_file"] = v.tls->cert_file;
        tls["key_file"] = v.tls->key_file;
        c["tls"] = tls;
      }
      m[k] = c;
    }
    t["configs"] = m;
  }
  if (!reg.auths.empty()) {
    Tree m = Tree::object();
    for (const auto& [k, v] : reg.auths) m[k] = EncodeAuth(v);
    t["auths"] = m;
  }
  return t;
}

void CheckDuration(const std::string& path, const std::string& value, Validation& v) {
  if (value.empty()) return;
  if (!ParseDuration(value, nullptr))
    v.errors.push_back(path + " = " + Quote(value) +
                       ": invalid duration (Go syntax, e.g. \"10s\", \"1h30m\", \"500ms\")");
}

void CheckOption(const Runtime& r, const std::string& path, const char* key, bool want_bool,
                 Validation& v) {
  if (!r.options.is_object()) return;
  auto it = r.options.find(key);
  if (it == r.options.end()) return;
  bool ok = want_bool ? it->is_boolean() : it->is_string();
  if (!ok)
    v.errors.push_back(JoinKey(path, key) + ": expected " + (want_bool ? "boolean" : "string") +
                       ", got " + detail::TypeName(*it));
}

}  // namespace

// ---- Runtime accessors ----

std::string Runtime::BinaryName() const {
  if (options.is_object()) {
    auto it = options.find("BinaryName");
    if (it != options.end() && it->is_string()) return it->get<std::string>();
  }
  return "";
}

std::string Runtime::Root() const {
  if (options.is_object()) {
    auto it = options.find("Root");
    if (it != options.end() && it->is_string()) return it->get<std::string>();
  }
  return "";
}

bool Runtime::SystemdCgroup() const {
  if (options.is_object()) {
    auto it = options.find("SystemdCgroup");
    if (it != options.end() && it->is_boolean()) return it->get<bool>();
  }
  return false;
}

std::string Runtime::TreatRoMountsAsRro() const {
  return treat_ro_mounts_as_rro.empty() ? kRroIfPossible : treat_ro_mounts_as_rro;
}

// ---- Defaults ----

RuntimeConfig DefaultRuntimeConfig() {
  RuntimeConfig c;
  c.cni.bin_dirs = {"/opt/cni/bin",
                    "/usr/lib/cni"};  // the second: where Debian installs the plugins
  c.containerd.default_runtime_name = "runc";
  Runtime runc;
  runc.runtime_type = "io.containerd.runc.v2";
  runc.options = DefaultRuncOptions();
  runc.sandboxer = "podsandbox";
  c.containerd.runtimes["runc"] = runc;
  c.cdi_spec_dirs = {"/etc/cdi", "/var/run/cdi"};
  return c;
}

ImageConfig DefaultImageConfig() {
  ImageConfig c;
  c.pinned_images = {{"sandbox", "registry.k8s.io/pause:3.10"}};
  return c;
}

ServerConfig DefaultServerConfig() { return ServerConfig{}; }

// ---- Decode ----

RuntimeConfig DecodeRuntimeConfig(const Tree& table, std::vector<std::string>* unknown) {
  RuntimeConfig c = DefaultRuntimeConfig();
  if (table.is_null()) return c;
  if (!table.is_object()) detail::ThrowType(kRuntimePath, "table", table);
  size_t first_unknown = unknown ? unknown->size() : 0;
  TableReader rd(table, kRuntimePath, unknown);
  if (const Tree* cd = rd.Table("containerd")) {
    TableReader cr(*cd, rd.Path("containerd"), unknown);
    cr.Str("default_runtime_name", c.containerd.default_runtime_name);
    if (const Tree* rts = cr.Table("runtimes")) {
      for (const auto& [name, rt] : rts->items()) {
        std::string p = JoinKey(cr.Path("runtimes"), name);
        if (!rt.is_object()) detail::ThrowType(p, "table", rt);
        auto it = c.containerd.runtimes.find(name);
        Runtime r = it != c.containerd.runtimes.end() ? it->second : Runtime{};
        DecodeRuntime(rt, p, r, unknown);
        c.containerd.runtimes[name] = std::move(r);
      }
    }
    cr.Bool("ignore_blockio_not_enabled_errors", c.containerd.ignore_blockio_not_enabled_errors);
    cr.Bool("ignore_rdt_not_enabled_errors", c.containerd.ignore_rdt_not_enabled_errors);
    cr.Finish();
  }
  if (const Tree* cni = rd.Table("cni")) {
    TableReader nr(*cni, rd.Path("cni"), unknown);
    nr.Str("bin_dir", c.cni.bin_dir);
    // bin_dir alone replaces the default bin_dirs (validation folds it in).
    if (nr.Has("bin_dir") && !nr.Has("bin_dirs")) c.cni.bin_dirs.clear();
    nr.StrList("bin_dirs", c.cni.bin_dirs);
    nr.Str("conf_dir", c.cni.conf_dir);
    nr.Int("max_conf_num", c.cni.max_conf_num);
    nr.Bool("setup_serially", c.cni.setup_serially);
    nr.Str("conf_template", c.cni.conf_template);
    nr.Str("ip_pref", c.cni.ip_pref);
    nr.Bool("use_internal_loopback", c.cni.use_internal_loopback);
    nr.Str("plugin_timeout", c.cni.plugin_timeout);
    nr.Finish();
  }
  rd.Bool("enable_selinux", c.enable_selinux);
  rd.Int("selinux_category_range", c.selinux_category_range);
  rd.Int("max_container_log_line_size", c.max_container_log_line_size);
  rd.Bool("disable_apparmor", c.disable_apparmor);
  if (rd.Has("restrict_oom_score_adj")) {
    bool v = false;
    rd.Bool("restrict_oom_score_adj", v);
    c.restrict_oom_score_adj = v;
  }
  rd.Bool("disable_proc_mount", c.disable_proc_mount);
  rd.Str("unset_seccomp_profile", c.unset_seccomp_profile);
  rd.Bool("tolerate_missing_hugetlb_controller", c.tolerate_missing_hugetlb_controller);
  rd.Bool("disable_hugetlb_controller", c.disable_hugetlb_controller);
  rd.Bool("device_ownership_from_security_context", c.device_ownership_from_security_context);
  rd.Bool("ignore_image_defined_volumes", c.ignore_image_defined_volumes);
  rd.Bool("netns_mounts_under_state_dir", c.netns_mounts_under_state_dir);
  rd.Bool("enable_unprivileged_ports", c.enable_unprivileged_ports);
  rd.Bool("enable_unprivileged_icmp", c.enable_unprivileged_icmp);
  rd.Bool("enable_cdi", c.enable_cdi);
  rd.StrList("cdi_spec_dirs", c.cdi_spec_dirs);
  rd.Str("drain_exec_sync_io_timeout", c.drain_exec_sync_io_timeout);
  rd.StrList("ignore_deprecation_warnings", c.ignore_deprecation_warnings);
  rd.Str("userns_rootfs", c.userns_rootfs);
  rd.Finish();
  ReportUnknown(unknown, first_unknown);
  return c;
}

ImageConfig DecodeImageConfig(const Tree& table, std::vector<std::string>* unknown) {
  ImageConfig c = DefaultImageConfig();
  if (table.is_null()) return c;
  if (!table.is_object()) detail::ThrowType(kImagesPath, "table", table);
  size_t first_unknown = unknown ? unknown->size() : 0;
  TableReader rd(table, kImagesPath, unknown);
  rd.Str("snapshotter", c.snapshotter);
  rd.Bool("disable_snapshot_annotations", c.disable_snapshot_annotations);
  rd.Bool("discard_unpacked_layers", c.discard_unpacked_layers);
  if (const Tree* rp = rd.Table("runtime_platforms")) {
    for (const auto& [name, v] : rp->items()) {
      std::string p = JoinKey(rd.Path("runtime_platforms"), name);
      if (!v.is_object()) detail::ThrowType(p, "table", v);
      TableReader pr(v, p, unknown);
      ImagePlatform ip;
      pr.Str("platform", ip.platform);
      pr.Str("snapshotter", ip.snapshotter);
      pr.Finish();
      c.runtime_platforms[name] = ip;
    }
  }
  if (rd.Has("pinned_images")) {
    std::map<std::string, std::string> pinned;
    rd.StrMap("pinned_images", pinned);
    for (auto& [k, v] : pinned) c.pinned_images[k] = v;
  }
  if (const Tree* reg = rd.Table("registry")) DecodeRegistry(*reg, rd.Path("registry"), c.registry, unknown);
  if (const Tree* dec = rd.Table("image_decryption")) {
    TableReader dr(*dec, rd.Path("image_decryption"), unknown);
    dr.Str("key_model", c.image_decryption.key_model);
    dr.Finish();
  }
  rd.Int("max_concurrent_downloads", c.max_concurrent_downloads);
  rd.Str("image_pull_progress_timeout", c.image_pull_progress_timeout);
  rd.Bool("image_pull_with_sync_fs", c.image_pull_with_sync_fs);
  rd.Int("stats_collect_period", c.stats_collect_period);
  rd.Bool("use_local_image_pull", c.use_local_image_pull);
  rd.Finish();
  ReportUnknown(unknown, first_unknown);
  return c;
}

ServerConfig DecodeServerConfig(const Tree& table, std::vector<std::string>* unknown) {
  ServerConfig c = DefaultServerConfig();
  if (table.is_null()) return c;
  if (!table.is_object()) detail::ThrowType(kServerPath, "table", table);
  size_t first_unknown = unknown ? unknown->size() : 0;
  TableReader rd(table, kServerPath, unknown);
  rd.Bool("disable_tcp_service", c.disable_tcp_service);
  rd.Str("stream_server_address", c.stream_server_address);
  rd.Str("stream_server_port", c.stream_server_port);
  rd.Str("stream_idle_timeout", c.stream_idle_timeout);
  rd.Bool("enable_tls_streaming", c.enable_tls_streaming);
  if (const Tree* x = rd.Table("x509_key_pair_streaming")) {
    TableReader xr(*x, rd.Path("x509_key_pair_streaming"), unknown);
    xr.Str("tls_cert_file", c.x509_key_pair_streaming.tls_cert_file);
    xr.Str("tls_key_file", c.x509_key_pair_streaming.tls_key_file);
    xr.Finish();
  }
  rd.Finish();
  ReportUnknown(unknown, first_unknown);
  return c;
}

// ---- Encode ----

Tree Encode(const RuntimeConfig& c) {
  Tree t = Tree::object();
  t["enable_selinux"] = c.enable_selinux;
  t["selinux_category_range"] = c.selinux_category_range;
  t["max_container_log_line_size"] = c.max_container_log_line_size;
  t["disable_apparmor"] = c.disable_apparmor;
  if (c.restrict_oom_score_adj) t["restrict_oom_score_adj"] = *c.restrict_oom_score_adj;
  t["disable_proc_mount"] = c.disable_proc_mount;
  t["unset_seccomp_profile"] = c.unset_seccomp_profile;
  t["tolerate_missing_hugetlb_controller"] = c.tolerate_missing_hugetlb_controller;
  t["disable_hugetlb_controller"] = c.disable_hugetlb_controller;
  t["device_ownership_from_security_context"] = c.device_ownership_from_security_context;
  t["ignore_image_defined_volumes"] = c.ignore_image_defined_volumes;
  t["netns_mounts_under_state_dir"] = c.netns_mounts_under_state_dir;
  t["enable_unprivileged_ports"] = c.enable_unprivileged_ports;
  t["enable_unprivileged_icmp"] = c.enable_unprivileged_icmp;
  t["enable_cdi"] = c.enable_cdi;
  t["cdi_spec_dirs"] = c.cdi_spec_dirs;
  t["drain_exec_sync_io_timeout"] = c.drain_exec_sync_io_timeout;
  t["ignore_deprecation_warnings"] = c.ignore_deprecation_warnings;
  t["userns_rootfs"] = c.userns_rootfs;
  Tree cd = Tree::object();
  cd["default_runtime_name"] = c.containerd.default_runtime_name;
  cd["ignore_blockio_not_enabled_errors"] = c.containerd.ignore_blockio_not_enabled_errors;
  cd["ignore_rdt_not_enabled_errors"] = c.containerd.ignore_rdt_not_enabled_errors;
  Tree rts = Tree::object();
  for (const auto& [name, r] : c.containerd.runtimes) rts[name] = EncodeRuntime(r);
  cd["runtimes"] = rts;
  t["containerd"] = cd;
  Tree cni = Tree::object();
  if (!c.cni.bin_dir.empty()) cni["bin_dir"] = c.cni.bin_dir;
  cni["bin_dirs"] = c.cni.bin_dirs;
  cni["conf_dir"] = c.cni.conf_dir;
  cni["max_conf_num"] = c.cni.max_conf_num;
  cni["setup_serially"] = c.cni.setup_serially;
  cni["conf_template"] = c.cni.conf_template;
  cni["ip_pref"] = c.cni.ip_pref;
  cni["use_internal_loopback"] = c.cni.use_internal_loopback;
  if (!c.cni.plugin_timeout.empty()) cni["plugin_timeout"] = c.cni.plugin_timeout;
  t["cni"] = cni;
  return t;
}

Tree Encode(const ImageConfig& c) {
  Tree t = Tree::object();
  t["snapshotter"] = c.snapshotter;
  t["disable_snapshot_annotations"] = c.disable_snapshot_annotations;
  t["discard_unpacked_layers"] = c.discard_unpacked_layers;
  t["max_concurrent_downloads"] = c.max_concurrent_downloads;
  t["image_pull_progress_timeout"] = c.image_pull_progress_timeout;
  t["image_pull_with_sync_fs"] = c.image_pull_with_sync_fs;
  t["stats_collect_period"] = c.stats_collect_period;
  t["use_local_image_pull"] = c.use_local_image_pull;
  Tree pinned = Tree::object();
  for (const auto& [k, v] : c.pinned_images) pinned[k] = v;
  t["pinned_images"] = pinned;
  Tree rp = Tree::object();
  for (const auto& [k, v] : c.runtime_platforms)
    rp[k] = Tree{{"platform", v.platform}, {"snapshotter", v.snapshotter}};
  t["runtime_platforms"] = rp;
  t["registry"] = EncodeRegistry(c.registry);
  t["image_decryption"] = Tree{{"key_model", c.image_decryption.key_model}};
  return t;
}

Tree Encode(const ServerConfig& c) {
  Tree t = Tree::object();
  t["disable_tcp_service"] = c.disable_tcp_service;
  t["stream_server_address"] = c.stream_server_address;
  t["stream_server_port"] = c.stream_server_port;
  t["stream_idle_timeout"] = c.stream_idle_timeout;
  t["enable_tls_streaming"] = c.enable_tls_streaming;
  t["x509_key_pair_streaming"] = Tree{{"tls_cert_file", c.x509_key_pair_streaming.tls_cert_file},
                                      {"tls_key_file", c.x509_key_pair_streaming.tls_key_file}};
  return t;
}

// ---- Validation ----

Validation ValidateRuntimeConfig(RuntimeConfig& c) {
  Validation v;
  const std::string cd = kRuntimePath + ".containerd";
  const std::string name = c.containerd.default_runtime_name;
  if (name.empty()) {
    v.errors.push_back(cd + ".default_runtime_name is empty: it must name a runtime of " + cd +
                       ".runtimes (configured: " + Keys(c.containerd.runtimes) + ")");
  } else if (!c.containerd.runtimes.count(name)) {
    v.errors.push_back(cd + ".default_runtime_name = " + Quote(name) + ": no such runtime in " +
                       cd + ".runtimes (configured: " + Keys(c.containerd.runtimes) + ")");
  }
  for (auto& [rname, r] : c.containerd.runtimes) {
    const std::string p = JoinKey(cd + ".runtimes", rname);
    if (r.privileged_without_host_devices_all_devices_allowed &&
        !r.privileged_without_host_devices)
      v.errors.push_back(p +
                         ".privileged_without_host_devices_all_devices_allowed = true requires " +
                         p + ".privileged_without_host_devices = true");
    if (r.sandboxer.empty()) r.sandboxer = "podsandbox";
    if (!r.io_type.empty() && r.io_type != "fifo" && r.io_type != "streaming")
      v.errors.push_back(p + ".io_type = " + Quote(r.io_type) +
                         ": must be \"fifo\", \"streaming\" or empty (fifo)");
    const std::string& rro = r.treat_ro_mounts_as_rro;
    if (!rro.empty() && rro != kRroEnabled && rro != kRroIfPossible && rro != kRroDisabled)
      v.errors.push_back(p + ".treat_ro_mounts_as_rro = " + Quote(rro) +
                         ": must be one of \"Enabled\", \"IfPossible\", \"Disabled\" (\"\" means "
                         "\"IfPossible\")");
    if (r.runtime_type.empty())
      v.warnings.push_back(p + ".runtime_type is empty; the runtime handler " + Quote(rname) +
                           " cannot run containers");
    if (!r.runtime_path.empty() && r.runtime_path[0] != '/')
      v.errors.push_back(p + ".runtime_path = " + Quote(r.runtime_path) +
                         ": must be an absolute path");
    if (!r.options.is_object()) {
      v.errors.push_back(p + ".options: expected table, got " + detail::TypeName(r.options));
    } else {
      CheckOption(r, p + ".options", "BinaryName", false, v);
      CheckOption(r, p + ".options", "Root", false, v);
      CheckOption(r, p + ".options", "SystemdCgroup", true, v);
    }
  }
  CheckDuration(kRuntimePath + ".drain_exec_sync_io_timeout", c.drain_exec_sync_io_timeout, v);
  if (!c.cni.plugin_timeout.empty()) CheckDuration(kRuntimePath + ".cni.plugin_timeout", c.cni.plugin_timeout, v);
  if (!c.cni.bin_dir.empty()) {
    const std::string cni = kRuntimePath + ".cni";
    v.deprecations.emplace_back(
        kDeprecationCNIBinDir,
        "The `bin_dir` property of `[" + cni + "]` is deprecated; use `bin_dirs` instead (bin_dir = " +
            Quote(c.cni.bin_dir) + ")");
    if (!c.cni.bin_dirs.empty()) {
      v.errors.push_back(cni + ".bin_dir = " + Quote(c.cni.bin_dir) + " and " + cni +
                         ".bin_dirs cannot be set at the same time; use only bin_dirs");
    } else {
      c.cni.bin_dirs = {c.cni.bin_dir};
      c.cni.bin_dir.clear();
    }
  }
  const std::string& ur = c.userns_rootfs;
  if (ur != "auto" && ur != "idmap" && ur != "copy")
    v.errors.push_back(kRuntimePath + ".userns_rootfs = " + Quote(ur) +
                       ": must be \"auto\", \"idmap\" or \"copy\"");
  const std::string ip = c.cni.ip_pref;
  if (!ip.empty() && ip != "ipv4" && ip != "ipv6" && ip != "cni")
    v.errors.push_back(kRuntimePath + ".cni.ip_pref = " + Quote(ip) +
                       ": must be \"ipv4\", \"ipv6\", \"cni\" or empty (ipv4)");
  return v;
}

Validation ValidateImageConfig(ImageConfig& c) {
  Validation v;
  const std::string reg = kImagesPath + ".registry";
  const bool use_config_path = !c.registry.config_path.empty();
  if (!c.registry.mirrors.empty()) {
    if (use_config_path)
      v.errors.push_back(reg + ".mirrors (" + Keys(c.registry.mirrors) +
                         ") cannot be set when " + reg + ".config_path is set (config_path = " +
                         Quote(c.registry.config_path) + ")");
    v.deprecations.emplace_back(kDeprecationCRIRegistryMirrors,
                                "The `mirrors` property of `[" + reg +
                                    "]` is deprecated; use `config_path` instead (mirrors: " +
                                    Keys(c.registry.mirrors) + ")");
  }
  if (!c.registry.configs.empty())
    v.deprecations.emplace_back(kDeprecationCRIRegistryConfigs,
                                "The `configs` property of `[" + reg +
                                    "]` is deprecated; use `config_path` instead (configs: " +
                                    Keys(c.registry.configs) + ")");
  if (!c.registry.auths.empty()) {
    for (const auto& [endpoint, auth] : c.registry.auths) {
      std::string host = endpoint;
      auto scheme = endpoint.find("://");
      if (scheme != std::string::npos) {
        host = endpoint.substr(scheme + 3);
        host = host.substr(0, host.find('/'));
        if (host.empty()) {
          v.errors.push_back(JoinKey(reg + ".auths", endpoint) + ": registry URL " +
                             Quote(endpoint) + " has no host");
          continue;
        }
      }
      c.registry.configs[host].auth = auth;
    }
    v.deprecations.emplace_back(kDeprecationCRIRegistryAuths,
                                "The `auths` property of `[" + reg +
                                    "]` is deprecated; use ImagePullSecrets instead (auths: " +
                                    Keys(c.registry.auths) + ")");
  }
  CheckDuration(kImagesPath + ".image_pull_progress_timeout", c.image_pull_progress_timeout, v);
  if (c.max_concurrent_downloads < 0)
    v.errors.push_back(kImagesPath + ".max_concurrent_downloads = " +
                       std::to_string(c.max_concurrent_downloads) + ": must not be negative");
  if (c.snapshotter.empty())
    v.errors.push_back(kImagesPath + ".snapshotter is empty: it must name a snapshotter");
  return v;
}

Validation ValidateServerConfig(ServerConfig& c) {
  Validation v;
  CheckDuration(kServerPath + ".stream_idle_timeout", c.stream_idle_timeout, v);
  const std::string& port = c.stream_server_port;
  bool port_ok = !port.empty() && port.size() <= 5 &&
                 std::all_of(port.begin(), port.end(), [](char ch) { return ch >= '0' && ch <= '9'; }) &&
                 std::stoi(port) <= 65535;
  if (!port_ok)
    v.errors.push_back(kServerPath + ".stream_server_port = " + Quote(port) +
                       ": must be a port number from 0 to 65535");
  const auto& x = c.x509_key_pair_streaming;
  if (c.enable_tls_streaming && (x.tls_cert_file.empty() != x.tls_key_file.empty()))
    v.errors.push_back(kServerPath + ".x509_key_pair_streaming: tls_cert_file (" +
                       Quote(x.tls_cert_file) + ") and tls_key_file (" + Quote(x.tls_key_file) +
                       ") must be set together");
  return v;
}

}  // namespace berth::config
