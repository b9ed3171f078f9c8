// berthd: the berth daemon. Serves the CRI (and berth's admin service) on a unix socket.
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "cmd/berthd/plugins.h"
#include "common/error.h"
#include "config/config.h"
#include "daemon/check.h"
#include "daemon/daemon.h"
#include "plugin/services.h"

namespace {

using namespace berth;

void SetupLogging() {
  auto logger = spdlog::stderr_logger_mt("berthd");
  spdlog::set_default_logger(logger);
  daemon::SetLogFormat("text");
  spdlog::flush_on(spdlog::level::trace);
}

plugin::Registry Registrations() {
  plugin::Registry r;
  for (const auto& reg : berthd::Plugins()) reg(r);
  daemon::RegisterAdminPlugin(r, std::make_shared<std::string>());
  return r;
}

int Serve(daemon::Options opts) {
  // Signals are taken by sigwait below; every thread (gRPC's included) inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  opts.registrars = berthd::Plugins();
  auto d = daemon::Daemon::Load(std::move(opts));
  d->Start();
  int sig = 0;
  sigwait(&set, &sig);
  spdlog::info("received signal {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  // Calls in flight get 5 s (the server's shutdown deadline) to finish; one that is stuck beyond
  // that does not hold berthd: it exits, and the next start recovers what the call left, as after
  // SIGKILL. Containers are never touched.
  std::thread([] {
    std::this_thread::sleep_for(std::chrono::seconds(10));
    spdlog::warn("calls still running 10 s after the signal: exiting without them");
    std::_Exit(0);
  }).detach();
  d->Stop();
  return 0;
}

int ConfigDefault() {
  daemon::Options opts;
  auto reg = Registrations();
  // The embedded defaults, whatever /etc/berth/config.toml says.
  daemon::PipelineResult p;
  p.config = config::Default();
  for (const auto& r : reg.Registrations()) {
    if (r.config) p.configs.emplace(r.URI(), plugin::Registry::DecodeConfig(r, nullptr));
  }
  std::cout << config::ToToml(daemon::EffectiveConfig(p, reg));
  return 0;
}

int ConfigMigrate(const daemon::Options& opts, const std::string& file) {
  daemon::Options o = opts;
  if (!file.empty()) o.config_path = file;
  if (o.config_path.empty()) o.config_path = daemon::kDefaultConfigPath;
  config::LoadResult r = config::LoadFile(o.config_path);
  std::vector<std::string> warnings = std::move(r.warnings);
  auto reg = Registrations();
  if (r.file_version < config::kCurrentVersion) {
    for (const auto& g : reg.Registrations()) {
      if (g.config_migration) g.config_migration(r.file_version, r.config.plugins, warnings);
    }
  }
  r.config.version = config::kCurrentVersion;
  for (const auto& w : warnings) std::cerr << "warning: " << w << "\n";
  std::cout << config::ToToml(r.config);
  return 0;
}

int ConfigDump(const daemon::Options& opts) {
  auto reg = Registrations();
  auto p = daemon::RunConfigPipeline(opts, reg);
  for (const auto& w : p.warnings) std::cerr << "warning: " << w << "\n";
  if (!p.errors.empty()) {
    for (const auto& e : p.errors) std::cerr << "error: " << e << "\n";
    return 1;
  }
  std::cout << config::ToToml(daemon::EffectiveConfig(p, reg));
  return 0;
}

int ConfigCheck(const daemon::Options& opts) {
  auto reg = Registrations();
  daemon::PipelineResult p;
  try {
    p = daemon::RunConfigPipeline(opts, reg, /*validate=*/true);
  } catch (const std::exception& e) {
    std::cout << "error: " << e.what() << "\n";
    return 1;
  }
  if (p.migrated) {
    std::cout << "warning: config " << p.file << " is version " << p.file_version
              << "; run `berthd config migrate` to update the file\n";
  }
  for (const auto& w : p.warnings) std::cout << "warning: " << w << "\n";
  for (const auto& e : p.errors) std::cout << "error: " << e << "\n";
  if (!p.errors.empty()) return 1;
  std::cout << "config " << (p.file.empty() ? "(embedded defaults)" : p.file) << " is valid\n";
  return 0;
}

// `berthd check`: one line per check; exit status 1 when a check failed fatally.
int Check(const daemon::Options& opts, const std::string& output) {
  auto reg = Registrations();
  auto p = daemon::RunConfigPipeline(opts, reg);
  for (const auto& e : p.errors) std::cerr << "error: " << e << "\n";
  if (!p.errors.empty()) return 1;
  auto results = daemon::RunChecks(p);
  if (output == "json") {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& r : results) {
      j.push_back({{"name", r.name},
                   {"status", daemon::StatusName(r.status)},
                   {"fatal", r.fatal},
                   {"detail", r.detail},
                   {"fix", r.fix}});
    }
    std::cout << j.dump(2) << "\n";
  } else {
    for (const auto& r : results) std::cout << daemon::FormatCheckLine(r) << "\n";
  }
  return daemon::AnyFatal(results) ? 1 : 0;
}

int Plugins(daemon::Options opts, const std::string& output) {
  if (!opts.log_level) opts.log_level = "warn";
  opts.registrars = berthd::Plugins();
  std::unique_ptr<daemon::Daemon> d;
  int rc = 0;
  try {
    d = daemon::Daemon::Load(opts);
  } catch (const Error& e) {
    // A missing required plugin still lists the plugins; other errors do not get that far.
    std::cerr << "berthd: " << e.what() << "\n";
    return 1;
  }
  plugin::IntrospectionService intro(d->registry());
  auto plugins = intro.Plugins();
  if (output == "json") {
    std::cout << plugin::IntrospectionService::ToJSON(plugins).dump(2) << "\n";
    return rc;
  }
  size_t wt = 4, wi = 2, ws = 6;
  for (const auto& p : plugins) {
    wt = std::max(wt, p.type.size());
    wi = std::max(wi, p.id.size());
    ws = std::max(ws, p.status.size());
  }
  auto row = [&](const std::string& t, const std::string& i, const std::string& s, const std::string& e) {
    std::printf("%-*s  %-*s  %-*s  %s\n", int(wt), t.c_str(), int(wi), i.c_str(), int(ws), s.c_str(), e.c_str());
  };
  row("TYPE", "ID", "STATUS", "ERROR");
  for (const auto& p : plugins) row(p.type, p.id, p.status, p.error);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  // glibc gives every thread that allocates its own malloc arena (up to 8 per core); berthd's
  // threads (gRPC's pollers and executors) allocate little, so two arenas keep the idle heap small
  // without contention that matters.
  mallopt(M_ARENA_MAX, 2);
  SetupLogging();
  CLI::App app{"berthd: Kubernetes node container runtime serving the CRI on a unix socket"};
  app.fallthrough();
  daemon::Options opts;
  std::string address, root, state, level;
  app.add_option("-c,--config", opts.config_path,
                 std::string("config file (default ") + daemon::kDefaultConfigPath +
                     " if it exists, else the embedded defaults)");
  app.add_option("-a,--address", address, "gRPC unix socket, overrides [grpc] address");
  app.add_option("--root", root, "root directory for persistent data, overrides root");
  app.add_option("--state", state, "state directory for runtime data, overrides state");
  app.add_option("-l,--log-level", level, "log level: trace, debug, info, warn, error");

  auto* config_cmd = app.add_subcommand("config", "config file tools");
  config_cmd->require_subcommand(1);
  auto* cfg_default = config_cmd->add_subcommand("default", "print the default config");
  std::string migrate_file;
  auto* cfg_migrate = config_cmd->add_subcommand("migrate", "print the config migrated to version 3");
  cfg_migrate->add_option("file", migrate_file, "config file (default: --config or " +
                                                    std::string(daemon::kDefaultConfigPath) + ")");
  auto* cfg_dump = config_cmd->add_subcommand("dump", "print the effective config (defaults, migration, flags)");
  auto* cfg_check = config_cmd->add_subcommand("check", "validate the config; exit status 1 on errors");
  std::string output = "table";
  auto* plugins_cmd = app.add_subcommand("plugins", "initialise the plugins without serving and list them");
  plugins_cmd->add_option("-o,--output", output, "table or json")->check(CLI::IsMember({"table", "json"}));

  std::string check_output = "text";
  auto* check_cmd = app.add_subcommand(
      "check", "check that this host can run pods; exit status 1 on a fatal failure");
  check_cmd->add_option("-o,--output", check_output, "text or json")
      ->check(CLI::IsMember({"text", "json"}));

  CLI11_PARSE(app, argc, argv);
  if (!address.empty()) opts.address = address;
  if (!root.empty()) opts.root = root;
  if (!state.empty()) opts.state = state;
  if (!level.empty()) opts.log_level = level;

  try {
    if (opts.log_level) daemon::SetLogLevel(*opts.log_level);
    if (cfg_default->parsed()) return ConfigDefault();
    if (cfg_migrate->parsed()) return ConfigMigrate(opts, migrate_file);
    if (cfg_dump->parsed()) return ConfigDump(opts);
    if (cfg_check->parsed()) return ConfigCheck(opts);
    if (plugins_cmd->parsed()) return Plugins(opts, output);
    if (check_cmd->parsed()) return Check(opts, check_output);
    return Serve(std::move(opts));
  } catch (const std::exception& e) {
    spdlog::error("berthd: {}", e.what());
    return 1;
  }
}
