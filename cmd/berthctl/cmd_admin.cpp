// plugins, plugin-info, config dump, warnings: berth.admin.v1.Admin.
#include <chrono>
#include <cstdio>
#include <ctime>

#include <grpcpp/grpcpp.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "berth/admin/v1/admin.grpc.pb.h"
#include "cmd/berthctl/cmd_cri.h"
#include "cmd/berthctl/commands.h"

namespace berth::berthctl {

namespace pb = berth::admin::v1;

void AddPluginCommands(CLI::App& app, Globals& g) {
  auto* plugins = app.add_subcommand("plugins", "list berthd's plugins and their status");
  plugins->callback([&g] {
    auto stub = pb::Admin::NewStub(g.Channel());
    grpc::ClientContext ctx;
    g.Prepare(ctx);
    pb::ListPluginsResponse resp;
    Check(stub->ListPlugins(&ctx, pb::ListPluginsRequest(), &resp), "ListPlugins");
    if (!g.Table()) {
      nlohmann::ordered_json out = nlohmann::ordered_json::array();
      for (const auto& p : resp.plugins()) {
        nlohmann::ordered_json exports = nlohmann::ordered_json::object();
        for (const auto& [k, v] : p.exports()) exports[k] = v;
        out.push_back(
            {{"type", p.type()},
             {"id", p.id()},
             {"requires",
              std::vector<std::string>(p.requires_types().begin(), p.requires_types().end())},
             {"status", p.status()},
             {"error", p.error()},
             {"exports", exports},
             {"platforms", std::vector<std::string>(p.platforms().begin(), p.platforms().end())},
             {"capabilities",
              std::vector<std::string>(p.capabilities().begin(), p.capabilities().end())}});
      }
      cri::PrintStructured(out, g.output);
      return;
    }
    std::vector<std::vector<std::string>> rows = {{"TYPE", "ID", "STATUS", "ERROR"}};
    for (const auto& p : resp.plugins()) rows.push_back({p.type(), p.id(), p.status(), p.error()});
    PrintTable(rows);
  });

  auto* info = app.add_subcommand("plugin-info", "a plugin's own information (JSON)");
  static std::string type, id, options;
  info->add_option("type", type, "plugin type, e.g. io.containerd.cri.v1")->required();
  info->add_option("id", id, "plugin id, e.g. runtime")->required();
  info->add_option("--options", options,
                   "options as a JSON object, e.g. '{\"runtime_handler\":\"runc\"}'");
  info->callback([&g] {
    auto stub = pb::Admin::NewStub(g.Channel());
    grpc::ClientContext ctx;
    g.Prepare(ctx);
    pb::PluginInfoRequest req;
    req.set_type(type);
    req.set_id(id);
    req.set_options_json(options);
    pb::PluginInfoResponse resp;
    Check(stub->PluginInfo(&ctx, req, &resp), "PluginInfo");
    auto j = nlohmann::json::parse(resp.info_json(), nullptr, false);
    std::puts(j.is_discarded() ? resp.info_json().c_str() : j.dump(2).c_str());
  });
}

void AddConfigCommands(CLI::App& app, Globals& g) {
  auto* config = app.add_subcommand("config", "berthd's configuration");
  config->require_subcommand(1);
  auto* dump =
      config->add_subcommand("dump", "print the effective config of the running berthd (TOML)");
  dump->callback([&g] {
    auto stub = pb::Admin::NewStub(g.Channel());
    grpc::ClientContext ctx;
    g.Prepare(ctx);
    pb::ConfigDumpResponse resp;
    Check(stub->ConfigDump(&ctx, pb::ConfigDumpRequest(), &resp), "ConfigDump");
    std::fputs(resp.toml().c_str(), stdout);
  });
}

void AddWarningCommands(CLI::App& app, Globals& g) {
  auto* warnings =
      app.add_subcommand("warnings", "deprecation and configuration warnings of berthd");
  warnings->callback([&g] {
    auto stub = pb::Admin::NewStub(g.Channel());
    grpc::ClientContext ctx;
    g.Prepare(ctx);
    pb::ListWarningsResponse resp;
    Check(stub->ListWarnings(&ctx, pb::ListWarningsRequest(), &resp), "ListWarnings");
    auto when = [](int64_t ns) {
      std::time_t t = static_cast<std::time_t>(ns / 1000000000);
      char buf[32];
      std::tm tm{};
      gmtime_r(&t, &tm);
      std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
      return std::string(buf);
    };
    if (!g.Table()) {
      nlohmann::ordered_json out = nlohmann::ordered_json::array();
      for (const auto& w : resp.warnings()) {
        out.push_back({{"id", w.id()},
                       {"message", w.message()},
                       {"last_occurrence", when(w.last_occurrence_unix_nano())}});
      }
      cri::PrintStructured(out, g.output);
      return;
    }
    std::vector<std::vector<std::string>> rows = {{"ID", "LAST OCCURRENCE", "MESSAGE"}};
    for (const auto& w : resp.warnings())
      rows.push_back({w.id(), when(w.last_occurrence_unix_nano()), w.message()});
    PrintTable(rows);
  });
}

}  // namespace berth::berthctl
