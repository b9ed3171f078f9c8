// The "rro" runtime handler resolver: for every runtime handler, proves what the kernel and the
// OCI runtime can do about recursively read-only mounts and resolves treat_ro_mounts_as_rro.
//   - "Enabled" that cannot be honoured fails the plugin with the resolution's error;
//   - "IfPossible" that resolves off emits a warning through the warning service;
//   - the outcome is stored in HandlerInfo::rro (for spec generation) and in
//     HandlerInfo::features (for PluginInfo and Status):
//       "recursive_read_only_mounts": per-mount recursive_read_only can be honoured,
//       "rro": runtime::HandlerRROToJson (kernel, runtime and how it was determined, the fallback,
//              the resolved behaviour, the runtime's features document).
// berth's fallback is switched off with the environment variable BERTH_RRO_FALLBACK=off.
#include <spdlog/spdlog.h>

#include "common/error.h"
#include "criplugins/criplugins.h"
#include "plugin/services.h"
#include "runtime/rro.h"

namespace berth::criplugins {

namespace {

void ResolveRRO(const ResolveContext& ctx, HandlerInfo& h) {
  const auto& rt = h.runtime;
  std::string binary = !rt.BinaryName().empty() ? rt.BinaryName() : !rt.runtime_path.empty() ? rt.runtime_path : "runc";
  try {
    binary = runtime::ResolveRuntimeBinary(rt.BinaryName(), rt.runtime_path);
  } catch (const Error&) {
    // Detection reports the missing binary as "unknown" runtime support.
  }
  runtime::DetectOptions opts;
  opts.state_dir = ctx.plugin.state_dir;
  auto info = runtime::DetectHandlerRRO(h.name, binary, rt.treat_ro_mounts_as_rro, opts);
  if (!info.resolution.ok()) throw Error(Code::kFailedPrecondition, info.resolution.error);
  if (!info.resolution.warning.empty()) {
    if (ctx.warnings) ctx.warnings->Emit("io.berth.rro/" + h.name, "runtime handler \"" + h.name + "\": " + info.resolution.warning);
    spdlog::warn("runtime handler \"{}\": {}", h.name, info.resolution.warning);
  }
  if (!info.resolution.message.empty()) spdlog::info("runtime handler \"{}\": {}", h.name, info.resolution.message);
  h.rro = {info.resolution.enabled, info.resolution.via_fallback, info.SupportedForKEP(), info.KEPViaFallback()};
  h.features["recursive_read_only_mounts"] = info.SupportedForKEP();
  h.features["rro"] = runtime::HandlerRROToJson(info);
}

}  // namespace

HandlerResolver RROHandlerResolver() { return {"rro", &ResolveRRO}; }

}  // namespace berth::criplugins
