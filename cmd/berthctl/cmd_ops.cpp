// check, log-level: host checks and the log level of a running berthd (berth.admin.v1.Admin).
#include <cstdio>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "berth/admin/v1/admin.grpc.pb.h"
#include "cmd/berthctl/cmd_cri.h"
#include "cmd/berthctl/commands.h"

namespace berth::berthctl {

namespace pb = berth::admin::v1;

void AddOpsCommands(CLI::App& app, Globals& g) {
  auto* check = app.add_subcommand(
      "check", "run berthd's host checks in the daemon; exit status 1 on a fatal failure");
  check->callback([&g] {
    auto stub = pb::Admin::NewStub(g.Channel());
    grpc::ClientContext ctx;
    g.Prepare(ctx);
    pb::CheckResponse resp;
    Check(stub->Check(&ctx, pb::CheckRequest(), &resp), "Check");
    bool fatal = false;
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& r : resp.results()) {
      fatal = fatal || (r.status() == "fail" && r.fatal());
      if (!g.Table()) {
        out.push_back({{"name", r.name()},
                       {"status", r.status()},
                       {"fatal", r.fatal()},
                       {"detail", r.detail()},
                       {"fix", r.fix()}});
        continue;
      }
      std::string line = r.status();
      line.resize(5, ' ');
      line += r.name() + ": " + r.detail();
      if (r.status() == "fail" && r.fatal()) line += " [fatal]";
      if (r.status() != "ok" && !r.fix().empty()) line += "; fix: " + r.fix();
      std::puts(line.c_str());
    }
    if (!g.Table()) cri::PrintStructured(out, g.output);
    if (fatal) g.exit_code = 1;
  });

  auto* level = app.add_subcommand("log-level",
                                   "show or set berthd's log level at run time: log-level [LEVEL]");
  auto value = std::make_shared<std::string>();
  level->add_option("level", *value, "trace, debug, info, warn or error");
  level->callback([&g, value] {
    auto stub = pb::Admin::NewStub(g.Channel());
    grpc::ClientContext ctx;
    g.Prepare(ctx);
    pb::SetLogLevelRequest req;
    req.set_level(*value);
    pb::SetLogLevelResponse resp;
    Check(stub->SetLogLevel(&ctx, req, &resp), "SetLogLevel");
    if (value->empty()) {
      std::puts(resp.level().c_str());
    } else {
      std::printf("%s (was %s)\n", resp.level().c_str(), resp.previous().c_str());
    }
  });
}

}  // namespace berth::berthctl
