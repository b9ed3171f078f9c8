#include "monitor/client.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "runtime/cli.h"

namespace berth::monitor {

namespace {
std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == '\n' || s[i] == ' ')) ++i;
  return s.substr(i);
}

int64_t MsLeft(std::chrono::steady_clock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                               std::chrono::steady_clock::now())
      .count();
}
}  // namespace

Spawned Spawn(const SpawnOptions& o) {
  std::string what = "container " + o.id;
  if (o.id.empty() || o.bundle.empty() || o.log_path.empty() || o.runtime_argv.empty() ||
      o.monitor_path.empty())
    throw Error(Code::kInvalidArgument,
                "monitor spawn: id, bundle, log path, runtime and monitor path are required");
  std::string pid_file = o.pid_file.empty() ? fs::Join(o.bundle, "init.pid") : o.pid_file;
  std::string exit_file = o.exit_file.empty() ? fs::Join(o.bundle, "exit") : o.exit_file;
  ::unlink(exit_file.c_str());
  if (!o.runtime_log.empty()) ::unlink(o.runtime_log.c_str());

  int sync[2];
  if (::pipe2(sync, O_CLOEXEC) != 0) ThrowErrno(what + ": pipe");
  std::vector<std::string> argv = {o.monitor_path,  "--id",        o.id,
                                   "--bundle",      o.bundle,     "--pid-file",
                                   pid_file,        "--log-path", o.log_path,
                                   "--exit-file",   exit_file,    "--max-line",
                                   std::to_string(o.max_line), "--sync-fd", "3"};
  if (!o.runtime_log.empty()) {
    argv.push_back("--runtime-log");
    argv.push_back(o.runtime_log);
  }
  if (!o.stdin_fifo.empty()) {
    argv.push_back("--stdin-fifo");
    argv.push_back(o.stdin_fifo);
  }
  if (o.tty) {
    argv.push_back("--console-socket");
    argv.push_back(o.console_socket.empty() ? fs::Join(o.bundle, "console.sock") : o.console_socket);
  }
  if (!o.attach_socket.empty()) {
    argv.push_back("--attach-socket");
    argv.push_back(o.attach_socket);
  }
  if (o.keep_stdin) {
    argv.push_back("--stdin");
    argv.push_back(o.stdin_once ? "once" : "open");
  }
  if (o.start) {
    argv.push_back("--action");
    argv.push_back("run");
  }
  argv.push_back("--");
  for (const auto& a : o.runtime_argv) argv.push_back(a);

  pid_t pid = 0;
  try {
    pid = exec::Spawn(argv, {{sync[1], 3}}, /*null_stdio=*/false);
  } catch (const Error& e) {
    ::close(sync[0]);
    ::close(sync[1]);
    throw Error(e.code(), what + ": " + e.what());
  }
  ::close(sync[1]);
  // The monitor reports through the pipe and runs on; a monitor that fails exits.
  int monitor_fd = exec::PidfdOpen(pid);
  bool timed_out = false;
  std::string reply = exec::ReadToEof(sync[0], o.timeout, 64 * 1024, &timed_out);
  ::close(sync[0]);
  if (reply.rfind("created ", 0) == 0) {
    Spawned s;
    if (std::sscanf(reply.c_str(), "created %d %d", &s.container_pid, &s.monitor_pid) == 2 &&
        s.container_pid > 0 && s.monitor_pid == pid) {
      s.monitor_fd = monitor_fd;
      return s;
    }
  }
  // Not created: the monitor is done (or is made to be) and reaped.
  int st = 0;
  if (timed_out || reply.rfind("created ", 0) == 0) ::kill(pid, SIGKILL);
  if (monitor_fd >= 0) {
    exec::Reap(monitor_fd, /*wait=*/true, &st);
  } else {
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
  }
  std::string runtime = o.runtime_argv[0];
  const char* action = o.start ? " run" : " create";
  if (timed_out)
    throw Error(Code::kDeadlineExceeded, what + ": " + runtime + action + " did not finish within " +
                                             std::to_string(o.timeout.count()) + "ms");
  if (reply.rfind("created ", 0) == 0)
    throw Error(Code::kInternal, what + ": malformed reply from berth-monitor: " + Trim(reply));
  if (reply.rfind("error ", 0) == 0) {
    size_t nl = reply.find('\n');
    std::string status = reply.substr(6, nl == std::string::npos ? std::string::npos : nl - 6);
    std::string details = nl == std::string::npos ? "" : runtime::RuntimeErrorMessage(reply.substr(nl + 1));
    if (status == "-1")
      throw Error(Code::kInternal, what + ": " + (details.empty() ? "berth-monitor failed" : details));
    throw Error(Code::kUnknown, what + ": `" + runtime + action + "` exited with status " + status +
                                    (details.empty() ? "" : ": " + details));
  }
  std::string how = WIFEXITED(st) ? "exited with status " + std::to_string(WEXITSTATUS(st))
                                   : "was killed by signal " + std::to_string(WTERMSIG(st));
  throw Error(Code::kInternal, what + ": berth-monitor " + how + " without reporting");
}

bool IsMonitorAlive(int monitor_pid, const std::string& id) {
  if (monitor_pid <= 0) return false;
  std::string cmdline;
  try {
    cmdline = fs::ReadFile("/proc/" + std::to_string(monitor_pid) + "/cmdline", 1 << 20);
  } catch (const Error&) {
    return false;
  }
  // argv: berth-monitor ... --id <id> ...
  std::vector<std::string> args;
  size_t pos = 0;
  while (pos < cmdline.size()) {
    size_t z = cmdline.find('\0', pos);
    if (z == std::string::npos) z = cmdline.size();
    args.push_back(cmdline.substr(pos, z - pos));
    pos = z + 1;
  }
  // berth-monitor, or berth-pause --sandbox (the waiter of a pause berthd started itself).
  if (args.empty() || (args[0].find("berth-monitor") == std::string::npos &&
                       args[0].find("berth-pause") == std::string::npos))
    return false;
  for (size_t i = 1; i + 1 < args.size(); ++i) {
    if (args[i] == "--") break;
    if (args[i] == "--id") return args[i + 1] == id;
  }
  return false;
}

void ReopenLog(int monitor_pid, const std::string& id) {
  if (!IsMonitorAlive(monitor_pid, id))
    throw Error(Code::kFailedPrecondition,
                "container " + id + ": its berth-monitor (pid " + std::to_string(monitor_pid) +
                    ") is not running; the log cannot be reopened");
  if (::kill(monitor_pid, SIGUSR1) != 0)
    ThrowErrno("container " + id + ": signal berth-monitor (pid " + std::to_string(monitor_pid) + ")");
}

bool WaitMonitor(int monitor_pid, const std::string& id, std::chrono::milliseconds timeout) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, monitor_pid, 0));
  if (fd < 0) return true;  // gone
  if (!IsMonitorAlive(monitor_pid, id)) {
    ::close(fd);
    return true;
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool done = false;
  for (;;) {
    int64_t left = MsLeft(deadline);
    if (left < 0) left = 0;
    struct pollfd p = {fd, POLLIN, 0};
    int rc = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1 << 30)));
    if (rc > 0) {
      done = true;
      break;
    }
    if (rc < 0 && errno == EINTR) continue;
    if (left == 0 || rc < 0) break;
  }
  ::close(fd);
  return done;
}

std::optional<ExitInfo> ReadExitFile(const std::string& path) {
  std::string text;
  try {
    text = fs::ReadFile(path, 64 * 1024);
  } catch (const Error& e) {
    if (e.code() == Code::kNotFound) return std::nullopt;
    throw;
  }
  ExitInfo info;
  std::string err = ParseExitInfo(text, &info);
  if (!err.empty()) throw Error(Code::kInternal, "malformed exit file " + path + ": " + err);
  return info;
}

}  // namespace berth::monitor
