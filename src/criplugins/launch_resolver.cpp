// The "launch" runtime handler resolver: decides, by probing, how berth calls the handler's OCI
// runtime on this host (directly, or through the hybrid-cgroup launcher; see
// runtime/hostcompat.h) and reports it in HandlerInfo::features["launch"] for PluginInfo,
// Status and `berthctl features`. Runs before the rro resolver, whose probe container already
// runs the runtime the way decided here.
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "criplugins/criplugins.h"
#include "runtime/features.h"
#include "runtime/hostcompat.h"

namespace berth::criplugins {

namespace {

void ResolveLaunch(const ResolveContext& ctx, HandlerInfo& h) {
  const auto& rt = h.runtime;
  std::string binary;
  try {
    binary = runtime::ResolveRuntimeBinary(rt.BinaryName(), rt.runtime_path);
  } catch (const Error& e) {
    h.features["launch"] = {{"mode", "unknown"}, {"reason", e.what()}};
    return;
  }
  runtime::LaunchOptions opts;
  opts.state_dir = ctx.plugin.state_dir;
  auto d = runtime::DecideLaunch(binary, opts);
  spdlog::info("runtime handler \"{}\": {} runs {}: {}", h.name, binary,
               d.hybrid_launcher ? "through the hybrid-cgroup launcher" : "directly", d.reason);
  h.features["launch"] = runtime::LaunchDecisionToJson(d);
}

}  // namespace

HandlerResolver LaunchHandlerResolver() { return {"launch", &ResolveLaunch}; }

}  // namespace berth::criplugins
