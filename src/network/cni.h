// Pod networking through CNI plugins (spec 1.0 and 1.1, results back to 0.1.0): the networks of a
// configuration directory, watched with inotify; ADD, CHECK and DEL of a pod's attachments;
// STATUS and GC where a network's version allows; the conf_template rendered for a pod CIDR.
//
// A pod's attachments are described by a record (JSON) that holds everything DEL needs: the
// configuration each network was added with, the arguments, and each ADD's result. The caller
// stores it before ADD runs, so that a DEL after a crash or a restart needs nothing else.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "network/cni_config.h"

namespace berth::network {

struct CniOptions {
  std::vector<std::string> bin_dirs;  // searched in order (CNI_PATH)
  std::string conf_dir;
  int max_conf_num = 1;
  std::string conf_template;  // a file rendered into conf_dir by UpdatePodCIDRs ("" = none)
  std::string ip_pref;        // "" / "ipv4", "ipv6", "cni"
  bool setup_serially = false;
  bool use_internal_loopback = false;  // lo is brought up by berth, not the loopback plugin
  std::chrono::milliseconds timeout{std::chrono::minutes(2)};  // per plugin call
  bool watch = true;  // inotify on conf_dir, read at each Status and GC (no thread)
};

struct PortMapping {
  int host_port = 0, container_port = 0;
  std::string protocol = "tcp";  // tcp, udp, sctp
  std::string host_ip;
};

// What a pod's ADD needs.
struct PodNetworkRequest {
  std::string id;     // CNI_CONTAINERID: the sandbox id
  std::string netns;  // CNI_NETNS
  std::string name, ns, uid;
  std::vector<PortMapping> ports;
  std::map<std::string, std::string> annotations;
  std::vector<std::string> dns_servers, dns_searches, dns_options;
  std::string cgroup_path;
};

// The pod's addresses: ip first (by ip_pref), then the others.
struct PodIPs {
  std::string ip;
  std::vector<std::string> additional;
};

struct NetworkStatus {
  bool ready = false;
  bool unconfigured = false;  // conf_dir holds no configuration: pods get only loopback
  std::string reason, message;
  std::vector<Network> networks;  // loaded (the loopback network first unless internal)
};

// The runtimeConfig capability arguments of a pod: portMappings, bandwidth (from the
// kubernetes.io/ingress-bandwidth and egress-bandwidth annotations), dns, ips and mac (from the
// annotations cni.dev/ips, comma-separated, and cni.dev/mac), cgroupPath. Throws Error
// (kInvalidArgument) naming a bad annotation or port mapping.
nlohmann::json CapabilityArgs(const PodNetworkRequest& req);

// A Kubernetes quantity ("10M", "1Gi", "500k", "1e6") in units; throws Error naming `what`.
uint64_t ParseQuantity(const std::string& q, const std::string& what);

// The pod's IPs in a record, `ip_pref` ordering the families ("" = ipv4).
PodIPs RecordIPs(const nlohmann::json& record, const std::string& ip_pref);

// Renders containerd's conf_template: {{.PodCIDR}}, {{.PodCIDRRanges}} and {{.Routes}} with
// range/if/end, $variables, and {{- / -}} trimming. Throws Error (kInvalidArgument) naming an
// unknown action or field.
std::string RenderTemplate(const std::string& tmpl, const std::vector<std::string>& cidrs);

class Cni {
 public:
  explicit Cni(CniOptions opts);
  ~Cni();
  Cni(const Cni&) = delete;
  Cni& operator=(const Cni&) = delete;

  const CniOptions& options() const { return opts_; }

  // Ready once a network is loaded whose plugins all exist (and whose STATUS, for 1.1 networks,
  // succeeds); otherwise reason and message name what is wrong.
  NetworkStatus Status();
  // Reads conf_dir again (Status and GC do this after every change the watch saw).
  void Reload();

  // ADD of every network. While conf_dir holds no configuration at all, nothing is done (the pod
  // keeps only its loopback interface, *record stays null); a configuration that is invalid or
  // names a missing plugin fails. `record` is filled and handed to `save` before the first ADD and
  // after every result. Throws Error naming the plugin and its message; *record then describes what
  // DEL must undo.
  void SetUp(const PodNetworkRequest& req, nlohmann::json* record,
             const std::function<void(const nlohmann::json&)>& save);
  // DEL of every attachment of `record` (reverse order; each with its cached result), in
  // `netns` ("" or a path that is no longer a namespace: DEL without one). Every attachment is
  // tried; throws Error naming the first plugin that failed.
  void TearDown(const nlohmann::json& record, const std::string& netns);
  // CHECK of every attachment (versions 0.4.0 and newer). Throws Error naming the plugin. With a
  // budget, the calls together take at most that long (a call past it is killed and named).
  void Check(const nlohmann::json& record, const std::string& netns,
             std::chrono::milliseconds budget = std::chrono::milliseconds(0));
  // GC (version 1.1.0) of every loaded network with the attachments of `live` records as the
  // valid ones. Returns the errors (empty when none).
  std::vector<std::string> GC(const std::vector<nlohmann::json>& live);
  // Renders conf_template for `cidrs` into conf_dir/10-containerd-net.conflist (nothing without
  // a template or without CIDRs), as containerd does.
  void UpdatePodCIDRs(const std::vector<std::string>& cidrs);

 private:
  // Reloads when the inotify watch of conf_dir saw a change since the last look.
  void Refresh();
  struct Watcher;
  CniOptions opts_;
  std::shared_ptr<struct CniState> state_;
  std::unique_ptr<Watcher> watcher_;
};

}  // namespace berth::network
