#include "lifecycle/service_impl.h"  // first: its enum Signal names collide with <signal.h> macros

#include "lifecycle/exec.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"

namespace berth::lifecycle {

namespace {

using Clock = std::chrono::steady_clock;

std::string RandomSuffix() {
  static std::atomic<unsigned> seq{0};
  std::random_device rd;
  char buf[32];
  snprintf(buf, sizeof buf, "%08x%04x", rd(), seq.fetch_add(1) & 0xffff);
  return buf;
}

// A file removed when it goes out of scope.
struct ScopedPath {
  std::string path;
  ~ScopedPath() {
    if (!path.empty()) ::unlink(path.c_str());
  }
};

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    Reset();
    fd = std::exchange(o.fd, -1);
    return *this;
  }
  ~Fd() { Reset(); }
  void Reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  int Release() { return std::exchange(fd, -1); }
};

void Pipe(Fd* r, Fd* w) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) ThrowErrno("exec: pipe");
  r->fd = p[0];
  w->fd = p[1];
}

Fd DevNull(int flags) {
  int fd = ::open("/dev/null", flags | O_CLOEXEC);
  if (fd < 0) ThrowErrno("open /dev/null");
  return Fd(fd);
}

// Parent pid of every process (from /proc/<pid>/stat; the command may hold ')' so the fields
// are read after the last one).
std::multimap<int, int> ChildrenByParent() {
  std::multimap<int, int> m;
  DIR* d = ::opendir("/proc");
  if (!d) return m;
  while (auto* e = ::readdir(d)) {
    int pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream f(std::string("/proc/") + e->d_name + "/stat");
    std::string s;
    std::getline(f, s);
    auto close = s.rfind(')');
    if (close == std::string::npos || close + 4 >= s.size()) continue;
    int ppid = std::atoi(s.c_str() + close + 4);  // ") S PPID"
    m.emplace(ppid, pid);
  }
  ::closedir(d);
  return m;
}

std::vector<int> Tree(int root) {
  auto children = ChildrenByParent();
  std::vector<int> out = {root};
  for (size_t i = 0; i < out.size(); ++i) {
    auto [b, e] = children.equal_range(out[i]);
    for (auto it = b; it != e; ++it) out.push_back(it->second);
  }
  return out;
}

// The runtime's log: an error line means that the runtime failed, not the process.
std::string RuntimeFailure(const std::string& log_path) {
  std::string log;
  try {
    log = fs::ReadFile(log_path, 1 << 20);
  } catch (const Error&) {
    return "";
  }
  if (log.find("\"level\":\"error\"") == std::string::npos &&
      log.find("\"level\":\"fatal\"") == std::string::npos)
    return "";
  return runtime::RuntimeErrorMessage(log);
}

struct Spawned {
  int pid = -1;
  int pidfd = -1;
};

std::vector<std::string> ExecArgv(const ExecTarget& t, const std::vector<std::string>& args,
                                  const std::string& log) {
  auto argv = t.cli.Argv(args, log);
  if (argv[0].find('/') == std::string::npos) {
    auto p = exec::LookPath(argv[0]);
    if (!p) throw Error(Code::kFailedPrecondition, "OCI runtime " + argv[0] + " not found in PATH");
    argv[0] = *p;
  }
  return argv;
}

// Whether the runtime exited (reaped then); through its pidfd, or waitpid without one.
bool ReapNoHang(int pid, int* pidfd, int* status) {
  if (*pidfd >= 0) return exec::Reap(*pidfd, false, status);
  return ::waitpid(pid, status, WNOHANG) == pid;
}

int StatusToCode(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st); }

int ReadPidFile(const std::string& path) {
  try {
    return std::atoi(fs::ReadFile(path, 64).c_str());
  } catch (const Error&) {
    return 0;
  }
}

// Files of one `<runtime> exec`: the process object, the pid file and the runtime's log.
struct ExecFiles {
  ScopedPath process, pid, log;
  explicit ExecFiles(const ExecTarget& t) {
    std::string base = fs::Join(t.dir, "exec-" + RandomSuffix());
    process.path = base + ".json";
    fs::WriteFileAtomic(process.path, t.process_json, 0600, false);
    pid.path = base + ".pid";
    log.path = base + ".log";
  }
};

}  // namespace

void KillProcessTree(int pid) {
  if (pid <= 0) return;
  std::set<int> stopped;
  for (int round = 0; round < 64; ++round) {
    bool fresh = false;
    for (int p : Tree(pid)) {
      if (stopped.insert(p).second) {
        ::kill(p, SIGSTOP);
        fresh = true;
      }
    }
    if (!fresh) break;
  }
  for (int p : stopped) ::kill(p, SIGKILL);
}

SyncResult RunExecSync(const ExecTarget& t, std::chrono::milliseconds timeout,
                       std::chrono::milliseconds drain, size_t max_output) {
  ExecFiles files(t);
  Fd out_r, out_w, err_r, err_w;
  Pipe(&out_r, &out_w);
  Pipe(&err_r, &err_w);
  ::fcntl(out_r.fd, F_SETFL, O_NONBLOCK);
  ::fcntl(err_r.fd, F_SETFL, O_NONBLOCK);
  Fd in = DevNull(O_RDONLY);
  auto argv = ExecArgv(
      t, {"exec", "--process", files.process.path, "--pid-file", files.pid.path, t.container_id},
      files.log.path);
  int pid = exec::Spawn(argv, {{in.fd, 0}, {out_w.fd, 1}, {err_w.fd, 2}}, false);
  int pidfd = exec::PidfdOpen(pid);
  out_w.Reset();
  err_w.Reset();
  in.Reset();

  SyncResult r;
  auto deadline = Clock::now() + timeout;
  bool exited = false;
  int status = 0;
  Fd* fds[2] = {&out_r, &err_r};
  std::string* sinks[2] = {&r.out, &r.err};
  while (true) {
    if (!exited && ReapNoHang(pid, &pidfd, &status)) {
      exited = true;
      if (drain.count() > 0) deadline = std::min(deadline, Clock::now() + drain);
    }
    if (exited && out_r.fd < 0 && err_r.fd < 0) break;
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      if (!exited) {
        // The process tree first (the pid file's process and all it started), then the runtime
        // and whatever of the tree is still its descendant.
        KillProcessTree(ReadPidFile(files.pid.path));
        KillProcessTree(pid);
        if (pidfd >= 0)
          exec::Reap(pidfd, true, &status);
        else
          ::waitpid(pid, &status, 0);
        exited = true;
        r.timed_out = true;
      } else {
        r.drain_expired = true;
      }
      break;
    }
    pollfd p[3];
    int n = 0;
    for (auto* f : fds)
      if (f->fd >= 0) p[n++] = {f->fd, POLLIN, 0};
    if (!exited && pidfd >= 0) p[n++] = {pidfd, POLLIN, 0};
    // Without a pidfd (kernels before 5.3) the runtime's exit is polled for.
    int rc = ::poll(p, n, static_cast<int>(pidfd >= 0 || exited ? left : std::min<long>(left, 20)));
    if (rc < 0 && errno != EINTR) ThrowErrno("exec: poll");
    for (int i = 0; i < 2; ++i) {
      if (fds[i]->fd < 0) continue;
      char buf[65536];
      ssize_t k = ::read(fds[i]->fd, buf, sizeof buf);
      if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
        fds[i]->Reset();
      } else if (k > 0 && sinks[i]->size() < max_output) {
        sinks[i]->append(buf, std::min<size_t>(k, max_output - sinks[i]->size()));
      }
    }
  }
  if (!exited) {  // the output's holders outlived the runtime's wait: reap it now
    if (pidfd >= 0)
      exec::Reap(pidfd, true, &status);
    else
      ::waitpid(pid, &status, 0);
  }
  if (!r.timed_out) {
    std::string failure = StatusToCode(status) != 0 ? RuntimeFailure(files.log.path) : "";
    if (!failure.empty()) {
      throw Error(
          runtime::IsNotExistMessage(failure, t.container_id) ? Code::kNotFound : Code::kUnknown,
          t.cli.name() + " exec " + t.container_id + ": " + failure);
    }
  }
  r.exit_code = StatusToCode(status);
  return r;
}

namespace {

class ExecProcess : public streaming::Process {
 public:
  ExecProcess(const ExecTarget& t, const streaming::CommandOptions& o) : target_(t), files_(t) {
    if (o.tty) {
      StartTty(o);
    } else {
      StartPipes(o);
    }
  }
  ~ExecProcess() override {
    if (pidfd_ >= 0) {
      Cancel();
      exec::Reap(pidfd_, true);
    }
  }
  int TakeStdin() override { return stdin_.Release(); }
  int TakeStdout() override { return stdout_.Release(); }
  int TakeStderr() override { return stderr_.Release(); }
  void Resize(streaming::TermSize s) override {
    if (master_.fd < 0) return;
    winsize ws = {};
    ws.ws_col = s.width;
    ws.ws_row = s.height;
    ::ioctl(master_.fd, TIOCSWINSZ, &ws);
    if (!done_) ::kill(pid_, SIGWINCH);
  }
  int Wait() override {
    int status = 0;
    if (pidfd_ >= 0) {
      exec::Reap(pidfd_, true, &status);
    } else {
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
    done_ = true;
    if (StatusToCode(status) != 0) {
      std::string failure = RuntimeFailure(files_.log.path);
      if (!failure.empty())
        throw Error(Code::kUnknown,
                    target_.cli.name() + " exec " + target_.container_id + ": " + failure);
    }
    return StatusToCode(status);
  }
  void Cancel() override {
    if (done_) return;
    KillProcessTree(ReadPidFile(files_.pid.path));
    KillProcessTree(pid_);
  }

 private:
  void StartPipes(const streaming::CommandOptions& o) {
    Fd in_r, out_w, err_w;
    if (o.stdin) {
      Pipe(&in_r, &stdin_);
    } else {
      in_r = DevNull(O_RDONLY);
    }
    if (o.stdout) {
      Pipe(&stdout_, &out_w);
    } else {
      out_w = DevNull(O_WRONLY);
    }
    if (o.stderr) {
      Pipe(&stderr_, &err_w);
    } else {
      err_w = DevNull(O_WRONLY);
    }
    Spawn({"exec", "--process", files_.process.path, "--pid-file", files_.pid.path,
           target_.container_id},
          {{in_r.fd, 0}, {out_w.fd, 1}, {err_w.fd, 2}});
  }
  // A terminal: the container's pty, made by the runtime and relayed by berth-exec-tty (which
  // waits for the process, so its exit status comes back) to and from berth's raw pty. Resizes
  // go to berth's pty; berth-exec-tty copies them to the container's on SIGWINCH.
  void StartTty(const streaming::CommandOptions& o) {
    static const std::string helper = exec::FindHelper("berth-exec-tty");
    if (helper.empty())
      throw Error(Code::kFailedPrecondition, "berth-exec-tty not found (BERTH_EXEC_TTY_PATH)");
    int m = -1, sl = -1;
    termios raw = {};
    ::cfmakeraw(&raw);
    if (::openpty(&m, &sl, nullptr, &raw, nullptr) != 0) ThrowErrno("exec: openpty");
    master_.fd = m;
    Fd slave(sl);
    ::fcntl(m, F_SETFD, FD_CLOEXEC);
    ::fcntl(sl, F_SETFD, FD_CLOEXEC);
    auto argv =
        ExecArgv(target_,
                 {"exec", "--tty", "--detach", "--console-socket", "@CONSOLE_SOCKET@", "--process",
                  files_.process.path, "--pid-file", files_.pid.path, target_.container_id},
                 files_.log.path);
    argv.insert(argv.begin(), {helper, files_.pid.path, "--"});
    SpawnArgv(argv, {{slave.fd, 0}, {slave.fd, 1}, {slave.fd, 2}});
    if (o.stdin) stdin_.fd = ::fcntl(master_.fd, F_DUPFD_CLOEXEC, 0);
    stdout_.fd = ::fcntl(master_.fd, F_DUPFD_CLOEXEC, 0);
  }
  void SpawnArgv(const std::vector<std::string>& argv,
                 const std::vector<std::pair<int, int>>& fds) {
    pid_ = exec::Spawn(argv, fds, false);
    pidfd_ = exec::PidfdOpen(pid_);
  }
  void Spawn(const std::vector<std::string>& args, const std::vector<std::pair<int, int>>& fds) {
    pid_ = exec::Spawn(ExecArgv(target_, args, files_.log.path), fds, false);
    pidfd_ = exec::PidfdOpen(pid_);
  }

  ExecTarget target_;
  ExecFiles files_;
  int pid_ = -1, pidfd_ = -1;
  std::atomic<bool> done_{false};
  Fd stdin_, stdout_, stderr_, master_;
};

}  // namespace

std::unique_ptr<streaming::Process> StartExec(const ExecTarget& t,
                                              const streaming::CommandOptions& opts) {
  return std::make_unique<ExecProcess>(t, opts);
}

}  // namespace berth::lifecycle
