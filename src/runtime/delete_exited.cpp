// Cli::DeleteExited: runc's stopped-container delete, done in process (see cli.h).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/fs.h"
#include "runtime/cgroups.h"
#include "runtime/cli.h"

namespace berth::runtime {

namespace {

// The process is alive and is the one started at `start` (clock ticks since boot, field 22 of
// /proc/<pid>/stat), as runc itself tells a stopped container from a running one.
bool InitAlive(int pid, uint64_t start) {
  if (pid <= 0) return false;
  std::string stat;
  try {
    stat = fs::ReadFile("/proc/" + std::to_string(pid) + "/stat", 4096);
  } catch (const Error&) {
    return false;
  }
  size_t r = stat.rfind(')');
  if (r == std::string::npos) return true;  // unreadable: let runc decide
  std::istringstream f(stat.substr(r + 2));
  std::string field;
  char state = 0;
  f >> state;
  if (state == 'Z' || state == 'X') return false;
  // Fields 4..21 after the state (state is field 3).
  for (int i = 4; i <= 21 && (f >> field); ++i) {
  }
  uint64_t st = 0;
  if (!(f >> st)) return true;
  return st == start;
}

}  // namespace

bool Cli::DeleteExited(const std::string& id) const {
  auto cli = [&] {
    Delete(id, true);
    return false;
  };
  if (name() != "runc" || opts_.systemd_cgroup || opts_.root.empty() || id.empty() ||
      id.find('/') != std::string::npos || id == "." || id == "..")
    return cli();
  std::string dir = fs::Join(opts_.root, id);
  if (!fs::Exists(dir)) return true;  // runc does not know it: nothing to delete
  std::string text;
  try {
    text = fs::ReadFile(fs::Join(dir, "state.json"), 16 << 20);
  } catch (const Error&) {
    return cli();  // no state (runc: "does not exist") or unreadable: runc says which
  }
  auto st = nlohmann::json::parse(text, nullptr, false);
  // runc 1.x libcontainer state: exactly the fields this relies on, with the expected types.
  if (!st.is_object() || st.value("id", "") != id || !st.contains("init_process_pid") ||
      !st["init_process_pid"].is_number_integer() || !st.contains("init_process_start") ||
      !st["init_process_start"].is_number_unsigned() || !st.contains("cgroup_paths") ||
      !st["cgroup_paths"].is_object() || !st.contains("config") || !st["config"].is_object())
    return cli();
  const auto& cfg = st["config"];
  if (st.contains("intel_rdt_path") && !(st["intel_rdt_path"].is_string() && st["intel_rdt_path"].get<std::string>().empty()))
    return cli();
  if (!cfg.contains("Hooks")) return cli();
  if (!cfg["Hooks"].is_null()) {
    if (!cfg["Hooks"].is_object()) return cli();
    const auto& hooks = cfg["Hooks"];
    if (hooks.contains("poststop") && !hooks["poststop"].is_null() && !hooks["poststop"].empty()) return cli();
  }
  if (cfg.contains("cgroups") && cfg["cgroups"].is_object() && cfg["cgroups"].value("Systemd", false)) return cli();
  if (InitAlive(st["init_process_pid"].get<int>(), st["init_process_start"].get<uint64_t>())) return cli();

  std::vector<std::string> paths;
  for (const auto& [controller, p] : st["cgroup_paths"].items()) {
    if (!p.is_string()) return cli();
    std::string path = p.get<std::string>();
    if (path.rfind("/sys/fs/cgroup/", 0) != 0 || path.find("/../") != std::string::npos) return cli();
    paths.push_back(path);
  }
  // What is left in the cgroups (processes of a container without a PID namespace of its own
  // outlive its init) is killed, as runc does.
  if (!KillAndRemoveCgroups(paths, std::chrono::seconds(2)).empty()) return cli();
  try {
    fs::RemoveAll(dir);
  } catch (const Error&) {
    return cli();
  }
  return true;
}

}  // namespace berth::runtime
