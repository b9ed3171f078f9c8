// Recursive read-only mounts per runtime handler: what the kernel and the OCI runtime can do, and
// what a handler's treat_ro_mounts_as_rro makes of it.
//
// Resolution (ResolveRRO, pure):
//   "" / "IfPossible": on when the kernel (mount_setattr, v5.12+) and the runtime (`rro`) can; else
//                  on through berth's fallback when it is possible; else off with a warning
//                  that says why and what to do.
//   "Enabled":     on when kernel and runtime can; else on through the fallback when possible
//                  (with a message saying so); else an error:
//                    invalid treat_ro_mounts_as_rro: "Enabled": needs Linux kernel v5.12 or later
//                    invalid treat_ro_mounts_as_rro: "Enabled": needs a runtime that is compatible with runc v1.1
//   "Disabled":    off.
//   anything else: an error naming the value and the allowed ones.
//
// The fallback: berth stages the volume itself (mount::StageReadOnly: a private recursive bind
// made recursively read-only with mount_setattr, or by remounting each submount read-only on
// kernels without it) and the runtime bind-mounts the staged tree with a plain `rbind,ro`. It is
// possible when berth runs as root with CAP_SYS_ADMIN (mount::CanStage) and the caller has not
// switched it off (DetectOptions::allow_fallback, or the environment variable
// BERTH_RRO_FALLBACK=off / 0 / false / disabled).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "mount/rro.h"
#include "runtime/features.h"

namespace berth::runtime {

enum class Support { kNo, kYes, kUnknown };
const char* SupportName(Support s);  // "no", "yes", "unknown"

struct RuntimeRRO {
  Support support = Support::kUnknown;
  std::string method;  // how it was determined: "features", "probe", or "" (could not tell)
  std::string detail;  // the evidence or why it could not be determined
};

struct RROResolution {
  bool enabled = false;       // read-only volumes become recursively read-only
  bool via_fallback = false;  // ... by berth's stager rather than the runtime's `rro`
  std::string warning;        // set when IfPossible resolved off
  std::string message;        // informational (e.g. "enabled through berth's fallback")
  std::string error;          // set when the configuration cannot be honoured or is invalid
  bool ok() const { return error.empty(); }
};

// Pure. `config_value` is the raw treat_ro_mounts_as_rro ("" means "IfPossible").
RROResolution ResolveRRO(std::string_view config_value, const mount::KernelSupport& kernel,
                         const RuntimeRRO& runtime, bool fallback_possible);

struct DetectOptions {
  // Probe bundles and the on-disk probe cache (see ProbeOptions); with use_disk_cache, also the
  // kernel probe (<state_dir>/probes/kernel.json, see mount::ProbeKernelCached) and the runtime's
  // `features` output (<state_dir>/probes/features-*.json, see QueryFeatures).
  std::string state_dir;
  bool use_disk_cache = true;
  std::string probe_binary;  // "" = FindProbeBinary()
  bool allow_probe = true;   // run the probe container when there is no `features` command
  bool allow_fallback = true;
  std::chrono::milliseconds features_timeout{std::chrono::seconds(10)};
  std::chrono::milliseconds probe_timeout{std::chrono::seconds(30)};
};

// True unless the environment variable BERTH_RRO_FALLBACK is "off", "0", "false" or "disabled".
bool FallbackAllowedByEnv();

// What the runtime binary can do: its `features` output when it has the command (authoritative),
// otherwise the probe container. `features` receives the parsed document when there is one.
RuntimeRRO DetectRuntimeRRO(const std::string& binary, const DetectOptions& opts,
                            std::optional<Features>* features = nullptr,
                            std::string* features_error = nullptr);

// Everything known about one runtime handler; what introspection and `berthctl features` show.
struct HandlerRRO {
  std::string handler;
  std::string binary;        // resolved OCI runtime binary
  std::string config_value;  // raw treat_ro_mounts_as_rro
  mount::KernelSupport kernel;
  RuntimeRRO runtime;
  bool fallback_possible = false;
  std::string fallback_detail;
  RROResolution resolution;
  std::optional<Features> features;
  std::string features_error;

  // Per-mount recursive_read_only (KEP-3857) can be honoured: kernel and runtime, or the
  // fallback. Independent of treat_ro_mounts_as_rro.
  bool SupportedForKEP() const;
  // KEP requests go through the fallback (the runtime cannot do it itself).
  bool KEPViaFallback() const;
  // "features", "probe", "fallback" (berth stages), or "none".
  std::string DeterminedBy() const;
};

// Probes (kernel: mount::ProbeKernelCached; runtime: DetectRuntimeRRO; both cached in memory and,
// with a state_dir, on disk) and resolves. The caches hold proven answers only and are keyed so
// that a reboot, another kernel or another runtime binary makes them stale.
// Never throws for probe failures; they end up in the reasons. Throws Error(kNotFound) only when
// the binary cannot be resolved.
HandlerRRO DetectHandlerRRO(const std::string& handler, const std::string& binary,
                            const std::string& config_value, const DetectOptions& opts);

// {"runtime_handler", "binary", "treat_ro_mounts_as_rro", "kernel": {"supported","reason"},
//  "runtime": {"supported","determined_by","detail"}, "fallback": {"possible","detail"},
//  "recursive_read_only": {"enabled","via_fallback","supported_for_kep","kep_via_fallback",
//  "determined_by","warning","message","error"}, "features": <document or null>,
//  "features_error"}
nlohmann::json HandlerRROToJson(const HandlerRRO& h);

}  // namespace berth::runtime
