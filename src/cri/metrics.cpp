#include "cri/metrics.h"

#include <map>
#include <string>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "criplugins/criplugins.h"
#include "lifecycle/service.h"
#include "metrics/metrics.h"
#include "runtime/v1/api.pb.h"

namespace berth::cri {

namespace {

namespace v1 = ::runtime::v1;

std::string HandlerName(const std::string& h) { return h.empty() ? "default" : h; }

void WriteStates(std::string& out, lifecycle::RuntimeService& pods) {
  v1::ListPodSandboxResponse sandboxes;
  pods.ListPodSandbox(v1::ListPodSandboxRequest(), &sandboxes);
  v1::ListContainersResponse containers;
  pods.ListContainers(v1::ListContainersRequest(), &containers);

  std::unordered_map<std::string, const std::string*> handler_of;
  std::map<std::string, double> pod_counts, ctr_counts;
  for (const auto& p : sandboxes.items()) {
    handler_of[p.id()] = &p.runtime_handler();
    const char* state = p.state() == v1::SANDBOX_READY ? "ready" : "notready";
    ++pod_counts[metrics::Label("state", state) + "," +
                 metrics::Label("runtime_handler", HandlerName(p.runtime_handler()))];
  }
  for (const auto& c : containers.containers()) {
    auto it = handler_of.find(c.pod_sandbox_id());
    std::string handler = it == handler_of.end() ? "" : *it->second;
    const char* state = c.state() == v1::CONTAINER_CREATED   ? "created"
                        : c.state() == v1::CONTAINER_RUNNING ? "running"
                        : c.state() == v1::CONTAINER_EXITED  ? "exited"
                                                             : "unknown";
    ++ctr_counts[metrics::Label("state", state) + "," +
                 metrics::Label("runtime_handler", HandlerName(handler))];
  }
  metrics::WriteHeader(out, "berth_pods", "gauge", "Pod sandboxes by state and runtime handler.");
  for (const auto& [labels, n] : pod_counts) metrics::WriteSample(out, "berth_pods", labels, n);
  metrics::WriteHeader(out, "berth_containers", "gauge",
                       "Containers by state and runtime handler.");
  for (const auto& [labels, n] : ctr_counts)
    metrics::WriteSample(out, "berth_containers", labels, n);
}

std::string Bool(bool b) { return b ? "true" : "false"; }

// One series per handler with its resolution as labels (an "info" metric, value 1).
void WriteRRO(std::string& out, const criplugins::CRIRuntimePlugin& rt) {
  metrics::WriteHeader(
      out, "berth_rro_handler_info", "gauge",
      "Recursive read-only resolution of each runtime handler: kernel and runtime support, "
      "whether berth's staged fallback is possible, and the result (value 1).");
  for (const auto& [name, h] : rt.handlers) {
    const auto& j =
        h.features.contains("rro") ? h.features["rro"] : nlohmann::ordered_json::object();
    auto get = [&](const char* a, const char* b) -> nlohmann::ordered_json {
      if (!j.contains(a) || !j[a].is_object() || !j[a].contains(b)) return nullptr;
      return j[a][b];
    };
    auto str = [](const nlohmann::ordered_json& v) {
      return v.is_string()    ? v.get<std::string>()
             : v.is_boolean() ? Bool(v.get<bool>())
                              : std::string("unknown");
    };
    std::string labels =
        metrics::Label("runtime_handler", name) + "," +
        metrics::Label("treat_ro_mounts_as_rro", h.runtime.treat_ro_mounts_as_rro) + "," +
        metrics::Label("kernel", str(get("kernel", "supported"))) + "," +
        metrics::Label("runtime", str(get("runtime", "supported"))) + "," +
        metrics::Label("fallback", str(get("fallback", "possible"))) + "," +
        metrics::Label("resolved", h.rro.enabled ? "on" : "off") + "," +
        metrics::Label("via", !h.rro.enabled       ? "none"
                              : h.rro.via_fallback ? "staged"
                                                   : "runtime");
    metrics::WriteSample(out, "berth_rro_handler_info", labels, 1);
  }
}

}  // namespace

void RegisterStateMetrics(std::weak_ptr<lifecycle::RuntimeService> pods,
                          std::shared_ptr<const criplugins::CRIRuntimePlugin> runtime) {
  metrics::AddCollector([pods = std::move(pods), runtime = std::move(runtime)](std::string& out) {
    if (auto p = pods.lock()) WriteStates(out, *p);
    if (runtime) WriteRRO(out, *runtime);
  });
}

}  // namespace berth::cri
