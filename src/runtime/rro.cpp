#include "runtime/rro.h"

#include <cstdlib>
#include <cstring>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "runtime/probe.h"

namespace berth::runtime {

namespace {

constexpr const char* kHintKernel = "upgrade the kernel to v5.12 or later";
constexpr const char* kHintRuntime = "use a runtime that is compatible with runc v1.1 (runc >= 1.1, crun >= 1.4)";

std::string RuntimeWhy(const RuntimeRRO& r) {
  std::string why = r.support == Support::kNo ? "the OCI runtime does not support the rro mount option"
                                              : "the OCI runtime's support for the rro mount option is unknown";
  if (!r.detail.empty()) why += " (" + r.detail + ")";
  return why;
}

}  // namespace

namespace {

std::string ProbeCacheDir(const DetectOptions& opts) {
  return opts.use_disk_cache && !opts.state_dir.empty() ? opts.state_dir + "/probes" : "";
}

}  // namespace

const char* SupportName(Support s) {
  switch (s) {
    case Support::kNo: return "no";
    case Support::kYes: return "yes";
    case Support::kUnknown: return "unknown";
  }
  return "unknown";
}

RROResolution ResolveRRO(std::string_view config_value, const mount::KernelSupport& kernel,
                         const RuntimeRRO& runtime, bool fallback_possible) {
  RROResolution r;
  std::string value(config_value);
  if (value.empty()) value = "IfPossible";
  if (value == "Disabled") return r;
  if (value != "Enabled" && value != "IfPossible") {
    r.error = "invalid treat_ro_mounts_as_rro: \"" + std::string(config_value) +
              "\": must be one of \"Enabled\", \"IfPossible\" or \"Disabled\" (empty means \"IfPossible\")";
    return r;
  }
  const bool runtime_ok = runtime.support == Support::kYes;
  if (kernel.supported && runtime_ok) {
    r.enabled = true;
    return r;
  }
  std::string why = !kernel.supported ? "the kernel cannot make mounts recursively read-only (" + kernel.reason + ")"
                                      : RuntimeWhy(runtime);
  if (fallback_possible) {
    r.enabled = true;
    r.via_fallback = true;
    r.message = "treat_ro_mounts_as_rro: \"" + value + "\": " + why +
                "; read-only volumes are made recursively read-only by berth's fallback (staged mounts)";
    return r;
  }
  if (value == "Enabled") {
    r.error = !kernel.supported
                  ? "invalid treat_ro_mounts_as_rro: \"Enabled\": needs Linux kernel v5.12 or later"
                  : "invalid treat_ro_mounts_as_rro: \"Enabled\": needs a runtime that is compatible with runc v1.1";
    return r;
  }
  r.warning = "treat_ro_mounts_as_rro: \"IfPossible\": read-only mounts will not be recursively read-only: " +
              why + "; " + (!kernel.supported ? kHintKernel : kHintRuntime);
  return r;
}

bool FallbackAllowedByEnv() {
  const char* v = std::getenv("BERTH_RRO_FALLBACK");
  if (!v) return true;
  for (const char* off : {"off", "0", "false", "disabled", "no"})
    if (std::strcmp(v, off) == 0) return false;
  return true;
}

RuntimeRRO DetectRuntimeRRO(const std::string& binary, const DetectOptions& opts,
                            std::optional<Features>* features, std::string* features_error) {
  RuntimeRRO out;
  FeaturesQuery q;
  try {
    q = QueryFeatures(binary, opts.features_timeout, ProbeCacheDir(opts));
  } catch (const Error& e) {
    q.error = e.what();
  }
  if (features) *features = q.features;
  if (features_error) *features_error = q.error;
  if (q.features) {
    out.method = "features";
    out.support = q.features->SupportsRRO() ? Support::kYes : Support::kNo;
    out.detail = q.features->SupportsRRO() ? "\"rro\" is listed in the runtime's features mountOptions"
                                           : "\"rro\" is not listed in the runtime's features mountOptions";
    return out;
  }
  if (!opts.allow_probe) {
    out.detail = "no usable features output (" + q.error + ") and the probe container is disabled";
    return out;
  }
  ProbeOptions po;
  po.probe_binary = opts.probe_binary;
  po.state_dir = opts.state_dir;
  po.timeout = opts.probe_timeout;
  po.use_cache = opts.use_disk_cache;
  auto p = ProbeRuntimeRRO(binary, po);
  if (p.ran) {
    out.method = "probe";
    out.support = p.supported ? Support::kYes : Support::kNo;
    out.detail = p.detail;
  } else {
    out.detail = "no usable features output (" + q.error + "); " + p.detail;
  }
  return out;
}

bool HandlerRRO::SupportedForKEP() const {
  return (kernel.supported && runtime.support == Support::kYes) || fallback_possible;
}
bool HandlerRRO::KEPViaFallback() const {
  return !(kernel.supported && runtime.support == Support::kYes) && fallback_possible;
}
std::string HandlerRRO::DeterminedBy() const {
  if (resolution.via_fallback || (!resolution.enabled && KEPViaFallback())) return "fallback";
  if (!runtime.method.empty()) return runtime.method;
  return "none";
}

HandlerRRO DetectHandlerRRO(const std::string& handler, const std::string& binary,
                            const std::string& config_value, const DetectOptions& opts) {
  HandlerRRO h;
  h.handler = handler;
  h.binary = binary;
  h.config_value = config_value;
  const std::string cache_dir = ProbeCacheDir(opts);
  h.kernel = cache_dir.empty() ? mount::ProbeKernel() : mount::ProbeKernelCached(cache_dir + "/kernel.json");
  h.runtime = DetectRuntimeRRO(binary, opts, &h.features, &h.features_error);
  if (!opts.allow_fallback || !FallbackAllowedByEnv()) {
    h.fallback_detail = "switched off (BERTH_RRO_FALLBACK or the caller)";
  } else if (!mount::CanStage()) {
    h.fallback_detail = "berth is not root with CAP_SYS_ADMIN";
  } else {
    h.fallback_possible = true;
    h.fallback_detail = h.kernel.supported ? "berth stages read-only volumes with mount_setattr"
                                           : "berth stages read-only volumes by remounting each submount read-only";
  }
  h.resolution = ResolveRRO(config_value, h.kernel, h.runtime, h.fallback_possible);
  return h;
}

nlohmann::json HandlerRROToJson(const HandlerRRO& h) {
  nlohmann::json j;
  j["runtime_handler"] = h.handler;
  j["binary"] = h.binary;
  j["treat_ro_mounts_as_rro"] = h.config_value;
  j["kernel"] = {{"supported", h.kernel.supported}, {"reason", h.kernel.reason}};
  j["runtime"] = {{"supported", SupportName(h.runtime.support)},
                  {"determined_by", h.runtime.method.empty() ? "none" : h.runtime.method},
                  {"detail", h.runtime.detail}};
  j["fallback"] = {{"possible", h.fallback_possible}, {"detail", h.fallback_detail}};
  j["recursive_read_only"] = {{"enabled", h.resolution.enabled},
                              {"via_fallback", h.resolution.via_fallback},
                              {"supported_for_kep", h.SupportedForKEP()},
                              {"kep_via_fallback", h.KEPViaFallback()},
                              {"determined_by", h.DeterminedBy()},
                              {"warning", h.resolution.warning},
                              {"message", h.resolution.message},
                              {"error", h.resolution.error}};
  j["features"] = h.features ? h.features->document() : nlohmann::json(nullptr);
  j["features_error"] = h.features_error;
  return j;
}

}  // namespace berth::runtime
