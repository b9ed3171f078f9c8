// berthctl: talks to berthd over its unix socket.
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "cmd/berthctl/commands.h"

int main(int argc, char** argv) {
  using namespace berth::berthctl;
  CLI::App app{"berthctl: control a running berthd"};
  app.require_subcommand(1);
  app.fallthrough();
  Globals g;
  app.add_option("-a,--address,-r,--runtime-endpoint", g.address, "berthd socket")->capture_default_str();
  app.add_option("-o,--output", g.output, "output format: table, json or yaml")
      ->check(CLI::IsMember({"table", "json", "yaml"}))
      ->capture_default_str();
  app.add_option("--timeout", g.timeout_seconds, "seconds to wait for an answer")->capture_default_str();

  // One line per command group (see commands.h).
  AddPluginCommands(app, g);
  AddConfigCommands(app, g);
  AddWarningCommands(app, g);
  AddFeaturesCommands(app, g);
  AddMountsCommands(app, g);
  AddPodCommands(app, g);
  AddStreamCommands(app, g);
  AddCRICommands(app, g);
  AddImageCommands(app, g);
  AddOpsCommands(app, g);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "berthctl: %s\n", e.what());
    return 1;
  }
  return g.exit_code;
}
