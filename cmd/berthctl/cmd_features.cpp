// berthctl features [HANDLER]: how berthd calls a runtime handler's OCI runtime on this host
// (directly or through the hybrid-cgroup launcher, and why) and what it proved about recursively
// read-only mounts for it (kernel, runtime and how it was determined, fallback, resolved behaviour,
// the runtime's features document), from PluginInfo of io.containerd.cri.v1.runtime.
#include <cstdio>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "berth/admin/v1/admin.grpc.pb.h"
#include "cmd/berthctl/commands.h"

namespace berth::berthctl {

namespace pb = berth::admin::v1;

namespace {

std::string Str(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

void PrintHuman(const nlohmann::json& info) {
  const auto& features = info.value("features", nlohmann::json::object());
  const auto rro = features.value("rro", nlohmann::json::object());
  const auto kernel = rro.value("kernel", nlohmann::json::object());
  const auto runtime = rro.value("runtime", nlohmann::json::object());
  const auto fallback = rro.value("fallback", nlohmann::json::object());
  const auto res = rro.value("recursive_read_only", nlohmann::json::object());
  std::vector<std::vector<std::string>> rows = {{"FEATURE", "VALUE", "DETAIL"}};
  rows.push_back({"runtime handler", Str(info, "name"), Str(rro, "binary")});
  const auto launch = features.value("launch", nlohmann::json::object());
  if (!launch.empty())
    rows.push_back({"runtime launch", Str(launch, "mode"), Str(launch, "reason")});
  rows.push_back({"kernel recursive read-only", kernel.value("supported", false) ? "yes" : "no", Str(kernel, "reason")});
  rows.push_back({"runtime rro option", Str(runtime, "supported") + " (" + Str(runtime, "determined_by") + ")",
                  Str(runtime, "detail")});
  rows.push_back({"berth fallback", fallback.value("possible", false) ? "possible" : "not possible", Str(fallback, "detail")});
  std::string cfg = Str(rro, "treat_ro_mounts_as_rro");
  std::string behaviour = !res.value("enabled", false) ? "off"
                          : res.value("via_fallback", false) ? "on (staged by berth, ro)"
                                                             : "on (rro)";
  rows.push_back({"treat_ro_mounts_as_rro", (cfg.empty() ? "\"\" (IfPossible)" : cfg) + " -> " + behaviour,
                  Str(res, "warning").empty() ? Str(res, "message") : Str(res, "warning")});
  rows.push_back({"recursive_read_only mounts (KEP-3857)",
                  !res.value("supported_for_kep", false) ? "unsupported"
                  : res.value("kep_via_fallback", false) ? "supported (fallback)"
                                                         : "supported",
                  "determined by " + Str(res, "determined_by")});
  if (!Str(rro, "features_error").empty()) rows.push_back({"runtime features", "none", Str(rro, "features_error")});
  const auto userns = features.value("userns", nlohmann::json::object());
  if (!userns.empty()) {
    rows.push_back({"user namespaces (KEP-127)",
                    userns.value("supported", false) ? "supported" : "unsupported",
                    Str(userns, "reason")});
    if (!Str(userns, "rootfs").empty())
      rows.push_back({"userns root file systems",
                      Str(userns, "rootfs") == "copy" ? "chown'ed copies" : "idmapped layers",
                      Str(userns, "rootfs") == "copy"
                          ? "slow: one copy per image and mapping (userns_rootfs)"
                          : "nothing copied or chown'ed (userns_rootfs)"});
    rows.push_back({"idmapped volumes",
                    userns.value("runtime_idmap", false) ? "by the runtime" : "staged by berth",
                    userns.value("runtime_idmap", false)
                        ? "the runtime lists idmap mounts among its features"
                        : "the runtime does not idmap mounts: berth stages them"});
  }
  PrintTable(rows);
}

}  // namespace

void AddFeaturesCommands(CLI::App& app, Globals& g) {
  auto* cmd = app.add_subcommand("features",
                                 "how a runtime handler's runtime is called and its recursive "
                                 "read-only support (default: the default handler)");
  static std::string handler;
  cmd->add_option("handler", handler, "runtime handler name");
  cmd->callback([&g] {
    auto stub = pb::Admin::NewStub(g.Channel());
    grpc::ClientContext ctx;
    g.Prepare(ctx);
    pb::PluginInfoRequest req;
    req.set_type("io.containerd.cri.v1");
    req.set_id("runtime");
    req.set_options_json(nlohmann::json{{"runtime_handler", handler}}.dump());
    pb::PluginInfoResponse resp;
    Check(stub->PluginInfo(&ctx, req, &resp), "PluginInfo");
    auto info = nlohmann::json::parse(resp.info_json(), nullptr, false);
    if (!info.is_object()) throw std::runtime_error("PluginInfo: answer is not a JSON object");
    if (g.Json()) {
      nlohmann::json out = info.value("features", nlohmann::json::object());
      out["runtime_handler"] = info.value("name", handler);
      std::puts(out.dump(2).c_str());
      return;
    }
    PrintHuman(info);
  });
}

}  // namespace berth::berthctl
