#include "lifecycle/pause.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/socket.h>
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

// The --id argument of a spare, written over with the sandbox's id (64 hex digits) once it has one.
static const std::string kSpareId = "spare" + std::string(59, ' ');

struct PauseStarter::Pending {
  int pid = 0;
  int pidfd = -1;
  int in = -1;      // its stdin, for the set-up
  int status = -1;  // its fd 3, for the outcome
};

PauseStarter::PauseStarter(std::string pause_binary) : binary_(std::move(pause_binary)) {}

PauseStarter::~PauseStarter() { Close(); }

PauseStarter::Pending PauseStarter::Spawn(bool prepare_net, const std::string& id) const {
  if (binary_.empty() || ::access(binary_.c_str(), X_OK) != 0) {
    throw Error(Code::kFailedPrecondition, "berth-pause binary \"" + binary_ + "\" not found");
  }
  // The set-up goes over a socket (sent with MSG_NOSIGNAL: a process that died cannot raise
  // SIGPIPE in berthd), the outcome comes back over a pipe.
  int in[2], status[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0) ThrowErrno("berth-pause: socketpair");
  if (::pipe2(status, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    ThrowErrno("berth-pause: pipe");
  }
  std::vector<std::string> argv = {binary_, "--sandbox"};
  if (prepare_net) argv.push_back("--prepare-net");
  argv.push_back("--id");
  argv.push_back(id.empty() ? kSpareId : id);
  Pending p;
  try {
    p.pid = exec::Spawn(argv, {{in[0], 0}, {status[1], 3}}, /*null_stdio=*/true);
  } catch (...) {
    for (int fd : {in[0], in[1], status[0], status[1]}) ::close(fd);
    throw;
  }
  ::close(in[0]);
  ::close(status[1]);
  p.in = in[1];
  p.status = status[0];
  p.pidfd = exec::PidfdOpen(p.pid);
  return p;
}

void PauseStarter::End(Pending& p) {
  for (int* fd : {&p.in, &p.status}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
  if (p.pidfd >= 0) {
    ::syscall(SYS_pidfd_send_signal, p.pidfd, SIGKILL, nullptr, 0);
    exec::Reap(p.pidfd, /*wait=*/true);
    p.pidfd = -1;
  } else if (p.pid > 0) {
    ::kill(p.pid, SIGKILL);
    while (::waitpid(p.pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  p.pid = 0;
}

void PauseStarter::Refill() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (spare_) return;
  }
  auto p = std::make_unique<Pending>(Spawn(/*prepare_net=*/true, ""));
  std::lock_guard<std::mutex> lock(mu_);
  if (spare_) {
    End(*p);  // another Refill was quicker
    return;
  }
  spare_ = std::move(p);
}

void PauseStarter::Close() {
  std::unique_ptr<Pending> p;
  {
    std::lock_guard<std::mutex> lock(mu_);
    p = std::move(spare_);
  }
  if (p) End(*p);
}

namespace {

// Whether the process behind a pidfd has exited (or the pidfd is unusable).
bool Exited(int pidfd) {
  if (pidfd < 0) return false;
  struct pollfd pfd = {pidfd, POLLIN, 0};
  return ::poll(&pfd, 1, 0) != 0;
}

}  // namespace

PauseProcess PauseStarter::Start(const std::string& id, const nlohmann::json& spec, const std::string& root,
                                 bool create_netns) {
  const std::string what = "pod sandbox " + id;
  auto no_newline = [&](const std::string& v, const std::string& field) {
    if (v.find_first_of(std::string("\n\0", 2)) != std::string::npos)
      throw Error(Code::kInvalidArgument, field + ": must not contain a newline or NUL");
  };

  no_newline(id, "pod sandbox id");
  no_newline(root, "pause root");
  std::string setup = "id " + id + "\nroot " + root + "\n";
  std::set<std::string> own;  // namespaces the pod has apart from the host's
  std::string netns_path;
  const auto& lx = spec.at("linux");
  for (const auto& ns : lx.value("namespaces", nlohmann::json::array())) {
    std::string type = ns.value("type", ""), path = ns.value("path", "");
    if (type == "network") {
      if (path.empty()) throw Error(Code::kInternal, what + ": a new network namespace needs a path");
      no_newline(path, "network namespace path");
      netns_path = path;
      setup += (create_netns ? "netns-new " : "netns ") + path + "\n";
      own.insert("network");
    } else if (type == "ipc" || type == "uts" || type == "pid") {
      if (!path.empty()) throw Error(Code::kInternal, what + ": joining an existing " + type + " namespace is not supported");
      setup += "unshare " + type + "\n";
      own.insert(type);
    } else if (type == "user") {
      if (path.empty()) throw Error(Code::kInternal, what + ": a user namespace to join needs a path");
      no_newline(path, "user namespace path");
      setup += "userns " + path + "\n";
    } else if (type != "mount") {
      throw Error(Code::kInternal, what + ": unsupported namespace \"" + type + "\"");
    }
  }
  if (create_netns && !own.count("network"))
    throw Error(Code::kInternal, what + ": a network namespace to create but none in the spec");
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

  // The spare when there is a live one; else a process started now, which starts up while the
  // cgroups are made.
  std::unique_ptr<Pending> p;
  {
    std::lock_guard<std::mutex> lock(mu_);
    p = std::move(spare_);
  }
  if (p && Exited(p->pidfd)) {
    End(*p);
    p.reset();
  }
  bool spare = p != nullptr;
  auto spawn = [&] {
    try {
      p = std::make_unique<Pending>(Spawn(create_netns, id));
    } catch (const Error& e) {
      throw Error(e.code(), what + ": " + e.what());
    }
  };
  if (!p) spawn();
  try {
    setup += SandboxCgroups(lx, what);
  } catch (...) {
    End(*p);
    throw;
  }
  std::string reply;
  for (;;) {
    size_t off = 0;
    while (off < setup.size()) {
      ssize_t n = ::send(p->in, setup.data() + off, setup.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    ::close(p->in);
    p->in = -1;
    // "ok <waiter> <pause>" once the pause is forked, then end of file once it is set up.
    reply = exec::ReadToEof(p->status, std::chrono::seconds(30), 16 * 1024);
    ::close(p->status);
    p->status = -1;
    while (!reply.empty() && reply.back() == '\n') reply.pop_back();
    if (!reply.empty() || !spare) break;
    // A spare that died without a word (killed just before it was taken): once more with a
    // process of its own, the namespace mount it may have made removed first.
    End(*p);
    if (create_netns && !netns_path.empty()) ::umount2(netns_path.c_str(), MNT_DETACH);
    spare = false;
    spawn();
  }
  PauseProcess out;
  if (std::sscanf(reply.c_str(), "ok %d %d", &out.waiter_pid, &out.pause_pid) == 2 && out.waiter_pid == p->pid &&
      out.pause_pid > 0) {
    int pause_fd = static_cast<int>(::syscall(SYS_pidfd_open, out.pause_pid, 0));
    bool gone = pause_fd < 0 || Exited(pause_fd);
    if (pause_fd >= 0) ::close(pause_fd);
    if (!gone) {
      out.waiter_fd = p->pidfd;
      return out;
    }
    reply = "error the pause exited during its set-up";
  }
  int st = 0;
  if (p->pidfd < 0 || ::syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, nullptr, 0) != 0) ::kill(p->pid, SIGKILL);
  if (p->pidfd >= 0) {
    exec::Reap(p->pidfd, /*wait=*/true, &st);
  } else {
    while (::waitpid(p->pid, &st, 0) < 0 && errno == EINTR) {
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
