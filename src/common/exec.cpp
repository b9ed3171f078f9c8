#include "common/exec.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/error.h"

extern char** environ;

namespace berth::exec {

namespace {
std::vector<char*> CStrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}
}  // namespace

Result Run(const std::vector<std::string>& argv, const Options& opts) {
  if (argv.empty()) throw Error(Code::kInvalidArgument, "exec: empty command line");
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0) ThrowErrno("exec " + argv[0] + ": pipe");
  if (::pipe2(out, O_CLOEXEC) != 0) ThrowErrno("exec " + argv[0] + ": pipe");
  if (::pipe2(err, O_CLOEXEC) != 0) ThrowErrno("exec " + argv[0] + ": pipe");

  auto args = CStrings(argv);
  auto envs = CStrings(opts.env);
  char** envp = opts.env.empty() ? environ : envs.data();

  // posix_spawn: the child shares berthd's memory until it execs (clone with CLONE_VM and
  // CLONE_VFORK), instead of copying the page tables of a large process with fork; it reports
  // a failed chdir or exec as its return value.
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  if (!opts.cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, opts.cwd.c_str());
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = 0;
  int rc = argv[0].find('/') != std::string::npos
               ? ::posix_spawn(&pid, args[0], &fa, &attr, args.data(), envp)
               : ::posix_spawnp(&pid, args[0], &fa, &attr, args.data(), envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(in[1]);
    ::close(out[0]);
    ::close(err[0]);
    ThrowErrno("failed to run " + argv[0], rc);
  }

  Result r;
  size_t in_off = 0;
  int in_fd = in[1];
  if (opts.stdin_data.empty()) {
    ::close(in_fd);
    in_fd = -1;
  } else {
    ::fcntl(in_fd, F_SETFL, O_NONBLOCK);
  }
  int fds[2] = {out[0], err[0]};
  std::string* sinks[2] = {&r.out, &r.err};
  auto deadline = std::chrono::steady_clock::now() + opts.timeout;
  bool killed = false;
  while (fds[0] >= 0 || fds[1] >= 0 || in_fd >= 0) {
    struct pollfd p[3];
    int np = 0;
    int map[3];
    for (int i = 0; i < 2; ++i)
      if (fds[i] >= 0) {
        p[np] = {fds[i], POLLIN, 0};
        map[np++] = i;
      }
    if (in_fd >= 0) {
      p[np] = {in_fd, POLLOUT, 0};
      map[np++] = 2;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      if (!killed) {
        ::kill(pid, SIGKILL);
        killed = true;
        r.timed_out = true;
      }
      deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      left = std::chrono::milliseconds(2000);
    }
    int rc = ::poll(p, np, static_cast<int>(left.count()));
    if (rc < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (rc == 0) {
      if (killed) break;  // grandchildren keep the pipes open; give up on them
      continue;
    }
    for (int k = 0; k < np; ++k) {
      if (!p[k].revents) continue;
      int i = map[k];
      if (i == 2) {
        ssize_t w = ::write(in_fd, opts.stdin_data.data() + in_off, opts.stdin_data.size() - in_off);
        if (w > 0) in_off += static_cast<size_t>(w);
        if (w < 0 && errno != EAGAIN && errno != EINTR) in_off = opts.stdin_data.size();
        if (in_off >= opts.stdin_data.size()) {
          ::close(in_fd);
          in_fd = -1;
        }
        continue;
      }
      char buf[16384];
      ssize_t got = ::read(fds[i], buf, sizeof buf);
      if (got > 0) {
        size_t room = opts.max_output > sinks[i]->size() ? opts.max_output - sinks[i]->size() : 0;
        sinks[i]->append(buf, std::min(room, static_cast<size_t>(got)));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        ::close(fds[i]);
        fds[i] = -1;
      }
    }
  }
  for (int fd : fds)
    if (fd >= 0) ::close(fd);
  if (in_fd >= 0) ::close(in_fd);
  int status = 0;
  for (;;) {
    pid_t w = ::waitpid(pid, &status, killed ? 0 : WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) break;
    if (w == 0) {
      // Output closed but the child still runs: wait until the deadline, then kill.
      if (std::chrono::steady_clock::now() >= deadline) {
        ::kill(pid, SIGKILL);
        killed = true;
        r.timed_out = true;
      } else {
        ::usleep(1000);
      }
    }
  }
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) r.exit_code = 128 + WTERMSIG(status);
  return r;
}

std::string Describe(const std::vector<std::string>& argv, const Result& r) {
  std::string cmd;
  for (const auto& a : argv) {
    if (!cmd.empty()) cmd += ' ';
    cmd += a;
  }
  std::string msg = r.err.empty() ? r.out : r.err;
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  if (msg.size() > 512) msg = msg.substr(0, 512) + "...";
  std::string how = r.timed_out ? "timed out" : "exited with status " + std::to_string(r.exit_code);
  return "`" + cmd + "` " + how + (msg.empty() ? "" : ": " + msg);
}

std::optional<std::string> LookPath(const std::string& name) {
  auto usable = [](const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
  };
  if (name.empty()) return std::nullopt;
  if (name.find('/') != std::string::npos) return usable(name) ? std::optional(name) : std::nullopt;
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  size_t i = 0;
  while (i <= p.size()) {
    size_t j = p.find(':', i);
    if (j == std::string::npos) j = p.size();
    std::string dir = p.substr(i, j - i);
    i = j + 1;
    if (dir.empty()) dir = ".";
    std::string cand = dir + "/" + name;
    if (usable(cand)) return cand;
  }
  return std::nullopt;
}

int Spawn(const std::vector<std::string>& argv, const std::vector<std::pair<int, int>>& fds, bool null_stdio) {
  if (argv.empty()) throw Error(Code::kInvalidArgument, "exec: empty command line");
  auto args = CStrings(argv);
  // posix_spawn (clone with CLONE_VM | CLONE_VFORK): no copy of the caller's page tables. dup2
  // onto the same fd clears its close-on-exec flag.
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  for (const auto& [from, to] : fds) posix_spawn_file_actions_adddup2(&fa, from, to);
  if (null_stdio) {
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  }
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, args[0], &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) ThrowErrno("failed to execute " + argv[0], rc);
  return pid;
}

int PidfdOpen(int pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

bool Reap(int& pidfd, bool wait, int* status) {
  if (pidfd < 0) return true;
  constexpr int kPidfd = 3;  // P_PIDFD (Linux 5.4)
  siginfo_t si = {};
  int rc;
  do {
    rc = ::waitid(static_cast<idtype_t>(kPidfd), static_cast<id_t>(pidfd), &si, WEXITED | (wait ? 0 : WNOHANG));
  } while (rc < 0 && errno == EINTR);
  if (rc == 0 && si.si_pid == 0) return false;  // still running
  if (status) *status = rc == 0 ? (si.si_code == CLD_EXITED ? si.si_status << 8 : si.si_status) : 0;
  ::close(pidfd);
  pidfd = -1;
  return true;
}

std::string ReadToEof(int fd, std::chrono::milliseconds timeout, size_t max, bool* timed_out) {
  std::string data;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  if (timed_out) *timed_out = false;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      if (timed_out) *timed_out = true;
      break;
    }
    struct pollfd p = {fd, POLLIN, 0};
    int rc = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (rc < 0 && errno != EINTR) break;
    if (rc <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    data.append(buf, static_cast<size_t>(n));
    if (data.size() >= max) break;
  }
  return data;
}

std::string FindHelper(const std::string& name) {
  std::string env = name;
  if (env.rfind("berth-", 0) == 0) env = env.substr(6);
  for (auto& ch : env) ch = static_cast<char>(ch == '-' ? '_' : std::toupper(static_cast<unsigned char>(ch)));
  if (const char* v = std::getenv(("BERTH_" + env + "_PATH").c_str()); v && *v) return v;
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto dir = self.parent_path();
    for (const auto& cand : {dir / name, dir.parent_path() / name / name,
                             dir.parent_path().parent_path() / "cmd" / name / name}) {
      if (std::filesystem::is_regular_file(cand, ec)) return cand.string();
    }
  }
  if (auto p = LookPath(name)) return *p;
  return "";
}

}  // namespace berth::exec
