// berthctl mounts audit [CONTAINER | --pid PID] [--path PATH...]: lists writable mounts at or
// below paths that are meant to be read-only (what a non-recursive read-only bind leaves behind),
// from /proc/PID/mountinfo. Works on any node without berthd. CONTAINER is looked up with the
// OCI runtime (`<runtime> [--root DIR] state CONTAINER`). Exit status 3 when something is found.
#include <cstdio>
#include <cstdlib>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cmd/berthctl/commands.h"
#include "common/error.h"
#include "common/exec.h"
#include "mount/audit.h"
#include "mount/mountinfo.h"
#include "runtime/hostcompat.h"

namespace berth::berthctl {

namespace {

struct AuditArgs {
  std::string container;
  int pid = 0;
  std::vector<std::string> paths;
  std::string runtime = "runc";
  std::string runtime_root;
};

int ContainerPid(const AuditArgs& a) {
  auto bin = exec::LookPath(a.runtime);
  if (!bin) throw Error(Code::kNotFound, "OCI runtime \"" + a.runtime + "\" not found");
  std::vector<std::string> argv{*bin};
  if (!a.runtime_root.empty()) argv.insert(argv.end(), {"--root", a.runtime_root});
  argv.insert(argv.end(), {"state", a.container});
  auto r = exec::Run(runtime::RuntimeArgv(argv));
  if (!r.ok()) throw Error(Code::kNotFound, exec::Describe(argv, r));
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  if (!j.is_object() || !j.contains("pid") || !j["pid"].is_number_integer() || j["pid"].get<int>() <= 0)
    throw Error(Code::kFailedPrecondition, "container " + a.container + " has no running init process");
  return j["pid"].get<int>();
}

}  // namespace

void AddMountsCommands(CLI::App& app, Globals& g) {
  auto* mounts = app.add_subcommand("mounts", "mount tools");
  mounts->require_subcommand(1);
  static AuditArgs a;
  auto* audit = mounts->add_subcommand(
      "audit",
      "list writable mounts below read-only ones; exit status 3 when there are findings. Without "
      "--path, every read-only mount except / is a read-only request");
  audit->add_option("container", a.container, "container id (looked up with --runtime state)");
  audit->add_option("--pid", a.pid, "audit /proc/PID/mountinfo")->check(CLI::PositiveNumber);
  audit->add_option("--path", a.paths, "path requested read-only (repeatable)");
  audit->add_option("--runtime", a.runtime, "OCI runtime for CONTAINER")->capture_default_str();
  audit->add_option("--runtime-root", a.runtime_root, "the OCI runtime's --root for CONTAINER");
  audit->callback([&g] {
    if ((a.pid > 0) == !a.container.empty())
      throw std::runtime_error("mounts audit: give either CONTAINER or --pid PID");
    int pid = a.pid > 0 ? a.pid : ContainerPid(a);
    auto findings = mount::AuditReadOnly(mount::ReadMountInfo(pid), a.paths);
    if (g.Json()) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& f : findings)
        out.push_back({{"requested", f.requested}, {"mount_point", f.mount_point}, {"fs_type", f.fs_type},
                       {"source", f.source}, {"mount_id", f.mount_id}, {"reason", f.reason}});
      std::puts(nlohmann::json{{"pid", pid}, {"findings", out}}.dump(2).c_str());
    } else if (findings.empty()) {
      std::printf("pid %d: no writable mount below a read-only one\n", pid);
    } else {
      std::vector<std::vector<std::string>> rows = {{"MOUNT POINT", "TYPE", "BELOW", "REASON"}};
      for (const auto& f : findings) rows.push_back({f.mount_point, f.fs_type, f.requested, f.reason});
      PrintTable(rows);
    }
    if (!findings.empty()) {
      std::fflush(stdout);
      std::exit(3);
    }
  });
}

}  // namespace berth::berthctl
