// The "userns" runtime handler resolver: for every runtime handler, proves that pods can get a
// user namespace (runtime/userns.h: the kernel idmaps a mount on the file system of berth's root
// dir, the runtime runs a probe container in a new user namespace) and records the answer in
// HandlerInfo::features:
//   "user_namespaces": true only when both were proven (RuntimeHandlerFeatures.user_namespaces);
//   "userns": {"supported", "reason", "kernel", "runtime", "runtime_idmap"}.
#include <spdlog/spdlog.h>

#include "common/error.h"
#include "criplugins/criplugins.h"
#include "runtime/features.h"
#include "runtime/userns.h"

namespace berth::criplugins {

namespace {

void ResolveUserns(const ResolveContext& ctx, HandlerInfo& h) {
  const auto& rt = h.runtime;
  std::string binary = !rt.BinaryName().empty()   ? rt.BinaryName()
                       : !rt.runtime_path.empty() ? rt.runtime_path
                                                  : "runc";
  try {
    binary = runtime::ResolveRuntimeBinary(rt.BinaryName(), rt.runtime_path);
  } catch (const Error& e) {
    h.features["user_namespaces"] = false;
    h.features["userns"] = {{"supported", false}, {"reason", e.what()}};
    return;
  }
  auto u = runtime::DetectUserns(binary, ctx.plugin.root_dir, ctx.plugin.state_dir);
  h.features["user_namespaces"] = u.supported;
  h.features["userns"] = {{"supported", u.supported},
                          {"reason", u.reason},
                          {"kernel", u.kernel},
                          {"runtime", u.probe},
                          {"runtime_idmap", u.runtime_idmap}};
  spdlog::info("runtime handler \"{}\": user namespaces {}: {}", h.name,
               u.supported ? "supported" : "unsupported", u.reason);
}

}  // namespace

HandlerResolver UsernsHandlerResolver() { return {"userns", &ResolveUserns}; }

}  // namespace berth::criplugins
