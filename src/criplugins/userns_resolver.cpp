// The "userns" runtime handler resolver: for every runtime handler, proves that pods can get a
// user namespace (runtime/userns.h: the kernel idmaps a mount on the file system of berth's root
// dir, the runtime runs a probe container in a new user namespace) and records the answer in
// HandlerInfo::features:
//   "user_namespaces": true only when both were proven (RuntimeHandlerFeatures.user_namespaces);
//   "userns": {"supported", "reason", "kernel", "runtime", "runtime_idmap", "rootfs"}; rootfs is
//   "idmap" or "copy" under userns_rootfs (copy is said through the warning service).
#include <spdlog/spdlog.h>

#include "common/error.h"
#include "criplugins/criplugins.h"
#include "plugin/services.h"
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
  auto u = runtime::ApplyRootfsMode(
      runtime::DetectUserns(binary, ctx.plugin.root_dir, ctx.plugin.state_dir),
      ctx.plugin.config.userns_rootfs);
  h.features["user_namespaces"] = u.supported;
  h.features["userns"] = {{"supported", u.supported},
                          {"reason", u.reason},
                          {"kernel", u.kernel},
                          {"runtime", u.probe},
                          {"runtime_idmap", u.runtime_idmap},
                          {"rootfs", u.rootfs}};
  if (u.rootfs == "copy" && ctx.warnings) {
    ctx.warnings->Emit(std::string(kUsernsCopyWarningID) + "/" + h.name,
                       "runtime handler \"" + h.name +
                           "\": pods with a user namespace get chown'ed copies of their image "
                           "(made once per image and mapping, slow for large images, using disk "
                           "space per mapping): " +
                           u.reason);
  }
  spdlog::info("runtime handler \"{}\": user namespaces {}: {}", h.name,
               u.supported ? "supported" : "unsupported", u.reason);
}

}  // namespace

HandlerResolver UsernsHandlerResolver() { return {"userns", &ResolveUserns}; }

}  // namespace berth::criplugins
