#include "lifecycle/pause.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "mount/mountinfo.h"
#include "runtime/cgroups.h"


namespace berth::lifecycle {

namespace {

struct Hierarchy {
  std::string mountpoint;
  bool cpuset = false;
};

// Cgroup hierarchies mounted at their root (cgroup v1 controllers and named hierarchies,
// cgroup2), read once: they are set up at boot and do not change under a running berthd.
const std::vector<Hierarchy>& Hierarchies() {
  static const std::vector<Hierarchy> hierarchies = [] {
    std::vector<Hierarchy> out;
    std::set<std::string> seen;  // a hierarchy mounted twice: its super options
    for (const auto& m : mount::ReadMountInfo()) {
      if ((m.fs_type != "cgroup" && m.fs_type != "cgroup2") || m.root != "/") continue;
      if (!seen.insert(m.fs_type + " " + m.super_options).second) continue;
      out.push_back({m.mount_point, m.fs_type == "cgroup" && mount::HasOption(m.super_options, "cpuset")});
    }
    return out;
  }();
  return hierarchies;
}

bool WriteSmall(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  ::close(fd);
  return ok;
}

std::string ReadTrimmed(const std::string& path) {
  std::string s;
  try {
    s = fs::ReadFile(path, 1 << 16);
  } catch (const Error&) {
  }
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// mkdir -p below a hierarchy's mount point. A new cpuset cgroup starts with no cpus and no mems,
// and no process can join it: they are copied from its parent (as the OCI runtimes do).
std::string MakeCgroup(const Hierarchy& h, const std::string& cgroups_path) {
  std::string dir = h.mountpoint;
  std::istringstream parts(cgroups_path);
  std::string part;
  while (std::getline(parts, part, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") throw Error(Code::kInvalidArgument, "linux.cgroup_parent: \"..\" is not allowed");
    std::string parent = dir;
    dir += "/" + part;
    if (::mkdir(dir.c_str(), 0755) != 0) {
      if (errno != EEXIST) ThrowErrno("failed to create cgroup " + dir);
      continue;
    }
    if (h.cpuset) {
      for (const char* f : {"cpuset.cpus", "cpuset.mems"}) {
        std::string mine = fs::Join(dir, f);
        if (!ReadTrimmed(mine).empty()) continue;
        std::string value = ReadTrimmed(fs::Join(parent, f));
        if (!value.empty() && !WriteSmall(mine, value)) ThrowErrno("failed to write " + mine);
      }
    }
  }
  return dir;
}

// The kernel namespace a sysctl belongs to (as the OCI runtimes check it); "" when it has none.
std::string SysctlNamespace(const std::string& key) {
  static const std::set<std::string> ipc = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni",
                                            "kernel.sem",    "kernel.shmall", "kernel.shmmax",
                                            "kernel.shmmni", "kernel.shm_rmid_forced"};
  if (ipc.count(key) || key.rfind("fs.mqueue.", 0) == 0) return "ipc";
  if (key == "kernel.domainname" || key == "kernel.hostname") return "uts";
  if (key.rfind("net.", 0) == 0) return "network";
  return "";
}

// Creates the sandbox's cgroup, below the pod's cgroup parent, in every hierarchy, with the spec's
// cpu shares; returns berth-pause's "cgroup <dir>" set-up lines.
std::string SandboxCgroups(const nlohmann::json& lx, const std::string& what) {
  std::string setup;
  std::string cgroups_path = lx.value("cgroupsPath", "");
  if (cgroups_path.empty()) return setup;
  if (cgroups_path[0] != '/')
    throw Error(Code::kInternal, what + ": cgroupsPath \"" + cgroups_path + "\" is not a cgroupfs path");
  int64_t shares = 0;
  if (lx.contains("resources") && lx["resources"].contains("cpu"))
    shares = lx["resources"]["cpu"].value("shares", int64_t{0});
  for (const auto& h : Hierarchies()) {
    std::string dir = MakeCgroup(h, cgroups_path);
    if (dir.find('\n') != std::string::npos) throw Error(Code::kInvalidArgument, "cgroup path \"" + dir + "\" has a newline");
    if (shares > 0) {
      // cgroup v1 shares, or their cgroup v2 weight (the OCI runtimes' conversion).
      if (fs::Exists(fs::Join(dir, "cpu.shares"))) {
        WriteSmall(fs::Join(dir, "cpu.shares"), std::to_string(shares));
      } else if (fs::Exists(fs::Join(dir, "cpu.weight"))) {
        int64_t w = 1 + ((std::clamp<int64_t>(shares, 2, 262144) - 2) * 9999) / 262142;
        WriteSmall(fs::Join(dir, "cpu.weight"), std::to_string(w));
      }
    }
    setup += "cgroup " + dir + "\n";
  }
  return setup;
}

}  // namespace

std::vector<std::string> CgroupDirs(const std::string& cgroups_path) {
  std::vector<std::string> out;
  for (const auto& h : Hierarchies()) out.push_back(h.mountpoint + cgroups_path);
  return out;
}

void RemovePauseCgroups(const std::string& cgroups_path, int timeout_ms) {
  if (cgroups_path.empty() || cgroups_path[0] != '/') return;
  // Whatever is left in the sandbox's own cgroup is its pause (a start that did not finish).
  std::string stays = runtime::KillAndRemoveCgroups(CgroupDirs(cgroups_path), std::chrono::milliseconds(timeout_ms));
  if (!stays.empty()) throw Error(Code::kUnavailable, "failed to remove cgroup " + stays + ": it stays busy");
}

PauseProcess StartPause(const std::string& pause_binary, const std::string& id, const nlohmann::json& spec,
                        const std::string& root) {
  const std::string what = "pod sandbox " + id;
  if (pause_binary.empty() || ::access(pause_binary.c_str(), X_OK) != 0) {
    throw Error(Code::kFailedPrecondition, "berth-pause binary \"" + pause_binary + "\" not found");
  }
  auto no_newline = [&](const std::string& v, const std::string& field) {
    if (v.find_first_of(std::string("\n\0", 2)) != std::string::npos)
      throw Error(Code::kInvalidArgument, field + ": must not contain a newline or NUL");
  };

  // The set-up berth-pause reads on stdin.
  std::string setup = "root " + root + "\n";
  std::set<std::string> own;  // namespaces the pod has apart from the host's
  const auto& lx = spec.at("linux");
  for (const auto& ns : lx.value("namespaces", nlohmann::json::array())) {
    std::string type = ns.value("type", ""), path = ns.value("path", "");
    if (type == "network") {
      if (path.empty()) throw Error(Code::kInternal, what + ": a new network namespace needs a path");
      no_newline(path, "network namespace path");
      setup += "netns " + path + "\n";
      own.insert("network");
    } else if (type == "ipc" || type == "uts" || type == "pid") {
      if (!path.empty()) throw Error(Code::kInternal, what + ": joining an existing " + type + " namespace is not supported");
      setup += "unshare " + type + "\n";
      own.insert(type);
    } else if (type != "mount") {
      throw Error(Code::kInternal, what + ": unsupported namespace \"" + type + "\"");
    }
  }
  if (own.count("uts") && spec.contains("hostname")) {
    std::string h = spec["hostname"].get<std::string>();
    no_newline(h, "hostname");
    setup += "hostname " + h + "\n";
  }
  if (lx.contains("sysctl")) {
    for (const auto& [k, v] : lx["sysctl"].items()) {
      std::string ns = SysctlNamespace(k);
      if (ns.empty())
        throw Error(Code::kInvalidArgument, "linux.sysctls: \"" + k + "\" is not namespaced and cannot be set for a pod");
      if (!own.count(ns))
        throw Error(Code::kInvalidArgument,
                    "linux.sysctls: \"" + k + "\" needs the pod's own " + ns + " namespace, not the host's");
      std::string value = v.get<std::string>();
      no_newline(k + value, "linux.sysctls[\"" + k + "\"]");
      setup += "sysctl " + k + "=" + value + "\n";
    }
  }
  const auto& proc = spec.at("process");
  if (proc.contains("oomScoreAdj")) setup += "oom " + std::to_string(proc["oomScoreAdj"].get<int>()) + "\n";
  if (proc.contains("user")) {
    const auto& u = proc["user"];
    setup += "user " + std::to_string(u.value("uid", 0u)) + " " + std::to_string(u.value("gid", 0u));
    if (u.contains("additionalGids") && !u["additionalGids"].empty()) {
      std::string sep = " ";
      for (const auto& g : u["additionalGids"]) {
        setup += sep + std::to_string(g.get<uint32_t>());
        sep = ",";
      }
    }
    setup += "\n";
  }

  // berth-pause starts first and waits for its set-up on stdin: its exec overlaps with the
  // cgroups made here.
  int in[2], status[2];
  if (::pipe2(in, O_CLOEXEC) != 0) ThrowErrno(what + ": pipe");
  if (::pipe2(status, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    ThrowErrno(what + ": pipe");
  }
  pid_t pid = 0;
  try {
    pid = exec::Spawn({pause_binary, "--sandbox", "--id", id}, {{in[0], 0}, {status[1], 3}}, /*null_stdio=*/true);
  } catch (const Error& e) {
    for (int fd : {in[0], in[1], status[0], status[1]}) ::close(fd);
    throw Error(e.code(), what + ": " + e.what());
  }
  ::close(in[0]);
  ::close(status[1]);
  // A child not reaped yet: its pid cannot be reused before the pidfd pins it.
  PauseProcess p;
  p.waiter_fd = exec::PidfdOpen(pid);
  // On failure the waiter gets EOF on stdin (or an error from the set-up) and exits; it is reaped.
  auto reap = [&] {
    if (in[1] >= 0) ::close(in[1]);
    if (status[0] >= 0) ::close(status[0]);
    if (p.waiter_fd >= 0) {
      exec::Reap(p.waiter_fd, /*wait=*/true);
    } else {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
  };

  try {
    setup += SandboxCgroups(lx, what);
  } catch (...) {
    reap();
    throw;
  }
  // The set-up is small (the pipe holds 64 KiB); berth-pause reads it to the end.
  size_t off = 0;
  while (off < setup.size()) {
    ssize_t n = ::write(in[1], setup.data() + off, setup.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  ::close(in[1]);
  in[1] = -1;
  std::string reply = exec::ReadToEof(status[0], std::chrono::seconds(30), 16 * 1024);
  ::close(status[0]);
  status[0] = -1;
  while (!reply.empty() && reply.back() == '\n') reply.pop_back();
  if (std::sscanf(reply.c_str(), "ok %d %d", &p.waiter_pid, &p.pause_pid) == 2 && p.waiter_pid == pid &&
      p.pause_pid > 0)
    return p;
  // The waiter reported an error and exits, or it failed: reaped either way.
  if (p.waiter_fd < 0 || ::syscall(SYS_pidfd_send_signal, p.waiter_fd, SIGKILL, nullptr, 0) != 0) ::kill(pid, SIGKILL);
  int st = 0;
  if (p.waiter_fd >= 0) {
    exec::Reap(p.waiter_fd, /*wait=*/true, &st);
  } else {
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
  }
  if (reply.rfind("error sysctl ", 0) == 0) {
    std::string rest = reply.substr(13);  // "<key>: <strerror>"
    size_t colon = rest.find(": ");
    std::string key = rest.substr(0, colon);
    throw Error(Code::kInvalidArgument, "linux.sysctls[\"" + key + "\"]: the kernel refused it" +
                                            (colon == std::string::npos ? "" : ": " + rest.substr(colon + 2)));
  }
  if (reply.rfind("error ", 0) == 0)
    throw Error(Code::kInternal, what + ": berth-pause: " + reply.substr(6));
  std::string how = reply.empty() ? "exited without reporting" : "answered \"" + reply + "\"";
  if (WIFEXITED(st) && WEXITSTATUS(st) != 0) how += " (status " + std::to_string(WEXITSTATUS(st)) + ")";
  throw Error(Code::kInternal, what + ": berth-pause " + how);
}

}  // namespace berth::lifecycle
