#include "cri/network.h"

#include <chrono>

#include <nlohmann/json.hpp>

#include "config/cri.h"
#include "criplugins/criplugins.h"
#include "lifecycle/service.h"
#include "network/cni.h"
#include "runtime/v1/api.pb.h"

namespace berth::cri {

namespace {

std::chrono::milliseconds Timeout(const std::string& d) {
  std::chrono::nanoseconds ns{};
  if (!d.empty() && config::ParseDuration(d, &ns) && ns.count() > 0) {
    return std::max(std::chrono::milliseconds(1),
                    std::chrono::duration_cast<std::chrono::milliseconds>(ns));
  }
  return std::chrono::minutes(2);
}

network::CniOptions CniOptionsFrom(const config::CniConfig& c) {
  network::CniOptions o;
  o.bin_dirs = c.bin_dirs;
  if (o.bin_dirs.empty() && !c.bin_dir.empty()) o.bin_dirs = {c.bin_dir};
  o.conf_dir = c.conf_dir;
  o.max_conf_num = c.max_conf_num;
  o.conf_template = c.conf_template;
  o.ip_pref = c.ip_pref;
  o.setup_serially = c.setup_serially;
  o.use_internal_loopback = c.use_internal_loopback;
  o.timeout = Timeout(c.plugin_timeout);
  return o;
}

}  // namespace

std::shared_ptr<network::Cni> AttachNetworks(const criplugins::CRIRuntimePlugin& plugin,
                                             lifecycle::Options* o) {
  const auto& c = plugin.config.cni;
  if (c.conf_dir.empty()) return nullptr;  // no CNI: pods get only a loopback interface
  auto cni = std::make_shared<network::Cni>(CniOptionsFrom(c));
  o->cni = cni;
  for (const auto& [name, info] : plugin.handlers) {
    auto h = o->handlers.find(name);
    if (h == o->handlers.end() || info.runtime.cni_conf_dir.empty() ||
        info.runtime.cni_conf_dir == c.conf_dir)
      continue;
    auto ho = CniOptionsFrom(c);
    ho.conf_dir = info.runtime.cni_conf_dir;
    if (info.runtime.cni_max_conf_num > 0) ho.max_conf_num = info.runtime.cni_max_conf_num;
    ho.conf_template.clear();  // the template renders into the default conf_dir only
    h->second.cni = std::make_shared<network::Cni>(ho);
  }
  return cni;
}

void FillNetworkReady(network::Cni* cni, runtime::v1::RuntimeCondition* cond,
                      std::map<std::string, std::string>* info) {
  cond->set_type("NetworkReady");
  if (!cni) {
    cond->set_status(false);
    cond->set_reason("NetworkPluginNotReady");
    cond->set_message("Network plugin returns error: cni plugin not initialized");
    if (info) (*info)["lastCNILoadStatus"] = "cni plugin not initialized";
    return;
  }
  auto st = cni->Status();
  cond->set_status(st.ready);
  if (!st.ready) {
    cond->set_reason(st.reason);
    cond->set_message("Network plugin returns error: " + st.message);
  }
  if (!info) return;
  (*info)["lastCNILoadStatus"] = st.ready ? "OK" : st.message;
  nlohmann::json nets = nlohmann::json::array();
  for (const auto& n : st.networks) {
    nets.push_back({{"name", n.name},
                    {"file", n.file},
                    {"cniVersion", n.cni_version},
                    {"plugins", n.types()}});
  }
  (*info)["cniNetworks"] = nets.dump();
  (*info)["cniConfDir"] = cni->options().conf_dir;
}

}  // namespace berth::cri
