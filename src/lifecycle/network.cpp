// The network step of a pod sandbox: CNI ADD in the pod's network namespace once it exists, DEL
// with the cached results as its undo (docs/networking.md).
#include "lifecycle/service_impl.h"  // first: its enum Signal names collide with <signal.h> macros

#include "common/error.h"
#include "network/cni.h"

namespace berth::lifecycle {

namespace {

std::string Protocol(v1::Protocol p) {
  switch (p) {
    case v1::UDP:
      return "udp";
    case v1::SCTP:
      return "sctp";
    default:
      return "tcp";
  }
}

network::PodNetworkRequest PodRequest(const SandboxRecord& sb) {
  const auto& cfg = sb.config;
  network::PodNetworkRequest r;
  r.id = sb.id;
  r.netns = sb.netns_path;
  r.name = cfg.metadata().name();
  r.ns = cfg.metadata().namespace_();
  r.uid = cfg.metadata().uid();
  for (const auto& pm : cfg.port_mappings()) {
    r.ports.push_back({pm.host_port(), pm.container_port(), Protocol(pm.protocol()), pm.host_ip()});
  }
  r.annotations.insert(cfg.annotations().begin(), cfg.annotations().end());
  const auto& d = cfg.dns_config();
  r.dns_servers.assign(d.servers().begin(), d.servers().end());
  r.dns_searches.assign(d.searches().begin(), d.searches().end());
  r.dns_options.assign(d.options().begin(), d.options().end());
  r.cgroup_path = sb.cgroups_path;
  return r;
}

}  // namespace

network::Cni* RuntimeService::Impl::CniFor(const std::string& handler) const {
  auto it = opts.handlers.find(handler.empty() ? opts.default_handler : handler);
  if (it != opts.handlers.end() && it->second.cni) return it->second.cni.get();
  return opts.cni.get();
}

void RuntimeService::Impl::SetUpNetwork(SandboxRecord& sb) {
  network::Cni* cni = CniFor(sb.handler);
  if (!cni || sb.netns_path.empty()) return;  // host network: no plugin is called
  nlohmann::json record;
  cni->SetUp(PodRequest(sb), &record, [&](const nlohmann::json& rec) {
    {
      std::lock_guard<std::mutex> lock(mu);
      sb.network = rec;
    }
    Save(sb);
  });
}

void RuntimeService::Impl::TearDownNetwork(SandboxRecord& sb) {
  if (sb.network.is_null()) return;
  network::Cni* cni = CniFor(sb.handler);
  if (!cni) {
    throw Error(Code::kFailedPrecondition,
                "pod sandbox " + sb.id + " has CNI attachments but CNI is not configured");
  }
  cni->TearDown(sb.network, sb.netns_path);
  {
    std::lock_guard<std::mutex> lock(mu);
    sb.network = nullptr;
  }
  Save(sb);
}

void RuntimeService::Impl::FillNetworkStatus(const SandboxRecord& sb,
                                             v1::PodSandboxStatus* st) const {
  const network::Cni* cni = CniFor(sb.handler);
  auto ips = network::RecordIPs(sb.network, cni ? cni->options().ip_pref : "");
  auto* n = st->mutable_network();
  n->set_ip(ips.ip);
  for (const auto& ip : ips.additional) n->add_additional_ips()->set_ip(ip);
}

std::string RuntimeService::Impl::CheckNetwork(const std::string& handler,
                                               const nlohmann::json& record,
                                               const std::string& netns) const {
  network::Cni* cni = CniFor(handler);
  if (record.is_null()) return "skipped: no CNI attachments";
  if (!cni) return "skipped: CNI is not configured";
  try {
    // Within crictl's default 2 s per call, whatever the plugins do.
    cni->Check(record, netns, std::chrono::milliseconds(1500));
    return "ok";
  } catch (const std::exception& e) {
    return e.what();
  }
}

}  // namespace berth::lifecycle
