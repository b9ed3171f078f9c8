// berth-monitor: one small process per container. It detaches from berthd, creates the container
// with the OCI runtime (`<runtime> <global args> create --bundle B --pid-file P ID`, or with
// --action run `run --detach ...`, which also starts it) with stdio
// pipes it owns, reports "created <pid> <monitor pid>" (or "error <status>\n<details>") through
// the sync fd, then, as a child subreaper, reaps the container's init, copies its stdout/stderr
// into the CRI log file (entries a full disk makes it drop are counted in <bundle>/log-lost),
// reopens the log on SIGUSR1, and writes the exit file (exit code, time, OOM kill) atomically
// before it exits. libc and the C++ standard library only.
//
// Usage:
//   berth-monitor --id ID --bundle DIR --pid-file FILE --log-path FILE --exit-file FILE
//                 [--max-line N] [--sync-fd N] [--runtime-log FILE] [--stdin-fifo FILE]
//                 [--console-socket FILE] [--action create|run]
//                 [--attach-socket FILE] [--stdin open|once]
//                 -- RUNTIME [GLOBAL ARGS...]
//
// --attach-socket serves attached clients (monitor/attach.h); --stdin keeps the container's
// stdin open for them (a pipe, or the terminal), and with `once` closes it when the first
// attached client's stdin ends.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "monitor/attach.h"
#include "monitor/crilog.h"
#include "monitor/exitfile.h"
#include "monitor/loglost.h"

using berth::monitor::ExitInfo;
using berth::monitor::LineSplitter;
using berth::monitor::Stream;

namespace {

struct Options {
  std::string id, bundle, pid_file, log_path, exit_file, runtime_log, stdin_fifo, console_socket;
  long max_line = 16 * 1024;
  int sync_fd = -1;
  bool run = false;  // --action run: `run --detach` (created and started) instead of `create`
  std::string attach_socket;
  bool keep_stdin = false, stdin_once = false;  // --stdin open|once
  std::vector<std::string> runtime;  // binary + global args
};

int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

// Reports to berthd once; later reports are dropped.
void Report(Options& o, std::string_view msg) {
  if (o.sync_fd < 0) return;
  WriteAll(o.sync_fd, msg);
  ::close(o.sync_fd);
  o.sync_fd = -1;
}

[[noreturn]] void Fail(Options& o, const std::string& msg) {
  Report(o, "error -1\n" + msg);
  ::_exit(1);
}

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

bool ParseLong(const char* s, long* v) {
  char* end = nullptr;
  errno = 0;
  long r = std::strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0') return false;
  *v = r;
  return true;
}

std::string ReadSmallFile(const std::string& path, size_t max, bool tail) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > 2 * max) {
      if (!tail) break;
      out.erase(0, out.size() - max);
    }
  }
  ::close(fd);
  if (out.size() > max) out = tail ? out.substr(out.size() - max) : out.substr(0, max);
  return out;
}

// --- CRI log output ---------------------------------------------------------------------------

// Entries that cannot be written (a full or failing disk) are dropped whole and counted in
// "<bundle>/log-lost" (monitor/loglost.h); the container is not held up, and the next entries
// are written again as soon as the disk takes them.
struct LogWriter {
  std::string path, lost_path;
  int fd = -1;
  std::string pending;
  int64_t now = 0;
  berth::monitor::LogLoss lost;
  int lost_fd = -1;

  bool Open() {
    int nfd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
    if (nfd < 0) return false;
    if (fd >= 0) ::close(fd);
    fd = nfd;
    return true;
  }
  void Flush() {
    size_t done = WritePending();
    if (done < pending.size()) Drop(done);
    pending.clear();
    if (pending.capacity() > 256 * 1024) pending.shrink_to_fit();
  }

 private:
  // Writes `pending`; returns how many bytes the file took.
  size_t WritePending() {
    size_t done = 0;
    while (fd >= 0 && done < pending.size()) {
      ssize_t n = ::write(fd, pending.data() + done, pending.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    return done;
  }
  // The entries from the one the write stopped in are lost: a torn entry is cut off the file
  // (the monitor is its only writer), so that the log stays parseable.
  void Drop(size_t done) {
    size_t keep = 0;  // the whole entries written
    if (done > 0) {
      size_t nl = pending.rfind('\n', done - 1);
      if (nl != std::string::npos) keep = nl + 1;
    }
    if (keep < done) {
      off_t end = ::lseek(fd, 0, SEEK_END);
      if (end >= 0) (void)!::ftruncate(fd, end - static_cast<off_t>(done - keep));
    }
    std::string_view gone(pending.data() + keep, pending.size() - keep);
    for (char c : gone) lost.entries += c == '\n';
    lost.bytes += gone.size();
    ReportLost();
  }
  // Rewritten in place: the counts only grow, so the text never gets shorter.
  void ReportLost() {
    if (lost_fd < 0)
      lost_fd =
          ::open(lost_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
    if (lost_fd < 0) return;  // the state dir is full as well: retried at the next loss
    std::string text = berth::monitor::FormatLogLoss(lost);
    (void)!::pwrite(lost_fd, text.data(), text.size(), 0);
  }
};

struct StreamSink {
  LogWriter* log;
  Stream stream;
};

void EmitEntry(void* ctx, bool partial, std::string_view text) {
  auto* s = static_cast<StreamSink*>(ctx);
  berth::monitor::AppendLogEntry(s->log->pending, s->log->now, s->stream, partial, text);
}

// --- OOM accounting (cgroup v1 memory.oom_control, or cgroup v2 memory.events) -----------------

struct OomCounter {
  int fd = -1;
  long base = -1;     // oom_kill at creation, -1 when the counter is unavailable
};

// Value of "<key> N" in a flat-keyed cgroup file, -1 when absent.
long KeyedValue(std::string_view text, std::string_view key) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ' ') {
      long v = 0;
      for (char c : line.substr(key.size() + 1)) {
        if (c < '0' || c > '9') break;
        v = v * 10 + (c - '0');
      }
      return v;
    }
  }
  return -1;
}

std::string ReadFd(int fd) {
  char buf[1024];
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return "";
  return std::string(buf, static_cast<size_t>(n));
}

void OpenOomCounter(pid_t pid, OomCounter* oc) {
  std::string cg = ReadSmallFile("/proc/" + std::to_string(pid) + "/cgroup", 8192, false);
  std::string v1, v2;
  size_t pos = 0;
  while (pos < cg.size()) {
    size_t nl = cg.find('\n', pos);
    if (nl == std::string::npos) nl = cg.size();
    std::string line = cg.substr(pos, nl - pos);
    pos = nl + 1;
    size_t c1 = line.find(':');
    size_t c2 = c1 == std::string::npos ? std::string::npos : line.find(':', c1 + 1);
    if (c2 == std::string::npos) continue;
    std::string ctrls = line.substr(c1 + 1, c2 - c1 - 1);
    std::string path = line.substr(c2 + 1);
    if (ctrls.empty()) {
      v2 = path;
      continue;
    }
    size_t s = 0;
    while (s <= ctrls.size()) {
      size_t e = ctrls.find(',', s);
      if (e == std::string::npos) e = ctrls.size();
      if (ctrls.compare(s, e - s, "memory") == 0) v1 = path;
      s = e + 1;
    }
  }
  std::vector<std::string> candidates;
  if (!v1.empty()) candidates.push_back("/sys/fs/cgroup/memory" + v1 + "/memory.oom_control");
  if (!v2.empty()) {
    candidates.push_back("/sys/fs/cgroup/unified" + v2 + "/memory.events");
    candidates.push_back("/sys/fs/cgroup" + v2 + "/memory.events");
  }
  for (const auto& c : candidates) {
    int fd = ::open(c.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    oc->fd = fd;
    oc->base = KeyedValue(ReadFd(fd), "oom_kill");
    return;
  }
}

// The OOM rule: the container counts as OOM-killed when its memory cgroup's oom_kill counter grew
// while it ran (any of its processes was killed by the OOM killer). Where the kernel has no
// oom_kill counter, it counts when the cgroup is still under_oom and init died of SIGKILL.
bool OomKilled(const OomCounter& oc, int signal) {
  if (oc.fd < 0) return false;
  std::string now = ReadFd(oc.fd);
  if (oc.base >= 0) {
    long v = KeyedValue(now, "oom_kill");
    return v > oc.base;
  }
  return signal == SIGKILL && KeyedValue(now, "under_oom") == 1;
}

// --- main loop -------------------------------------------------------------------------------

[[noreturn]] void Usage(Options& o, const std::string& msg) {
  Report(o, "error -1\nberth-monitor: " + msg);
  const char* m = "usage: berth-monitor --id ID --bundle DIR --pid-file FILE --log-path FILE "
                  "--exit-file FILE [--max-line N] [--sync-fd N] [--runtime-log FILE] "
                  "[--stdin-fifo FILE] [--console-socket FILE] [--action create|run] "
                  "[--attach-socket FILE] [--stdin open|once] "
                  "-- RUNTIME [ARGS...]\n";
  WriteAll(2, "berth-monitor: " + msg + "\n");
  WriteAll(2, m);
  ::_exit(2);
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  int i = 1;
  // --sync-fd first, so that usage errors reach berthd.
  for (int j = 1; j + 1 < argc; ++j) {
    if (std::strcmp(argv[j], "--") == 0) break;
    long v;
    if (std::strcmp(argv[j], "--sync-fd") == 0 && ParseLong(argv[j + 1], &v) && v >= 0 && v < 65536)
      o.sync_fd = static_cast<int>(v);
  }
  for (; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (i + 1 >= argc) Usage(o, "missing value for " + std::string(a));
    const char* v = argv[++i];
    if (a == "--id") o.id = v;
    else if (a == "--bundle") o.bundle = v;
    else if (a == "--pid-file") o.pid_file = v;
    else if (a == "--log-path") o.log_path = v;
    else if (a == "--exit-file") o.exit_file = v;
    else if (a == "--runtime-log") o.runtime_log = v;
    else if (a == "--stdin-fifo") o.stdin_fifo = v;
    else if (a == "--console-socket") o.console_socket = v;
    else if (a == "--attach-socket") o.attach_socket = v;
    else if (a == "--stdin") {
      if (std::strcmp(v, "open") != 0 && std::strcmp(v, "once") != 0)
        Usage(o, "invalid --stdin " + std::string(v) + " (open or once)");
      o.keep_stdin = true;
      o.stdin_once = std::strcmp(v, "once") == 0;
    }
    else if (a == "--sync-fd") continue;
    else if (a == "--action") {
      if (std::strcmp(v, "create") != 0 && std::strcmp(v, "run") != 0)
        Usage(o, "invalid --action " + std::string(v) + " (create or run)");
      o.run = std::strcmp(v, "run") == 0;
    }
    else if (a == "--max-line") {
      if (!ParseLong(v, &o.max_line)) Usage(o, "invalid --max-line " + std::string(v));
    } else {
      Usage(o, "unknown option " + std::string(a));
    }
  }
  for (; i < argc; ++i) o.runtime.emplace_back(argv[i]);
  if (o.id.empty()) Usage(o, "--id is required");
  if (o.bundle.empty()) Usage(o, "--bundle is required");
  if (o.pid_file.empty()) Usage(o, "--pid-file is required");
  if (o.log_path.empty()) Usage(o, "--log-path is required");
  if (o.exit_file.empty()) Usage(o, "--exit-file is required");
  if (o.runtime.empty()) Usage(o, "the runtime command line after -- is required");
  return o;
}

// berthd keeps a pidfd of the monitor and reaps it (after a restart of berthd, init does): no
// fork to detach. A session of its own keeps berthd's terminal and process group out of it.
void Detach(Options& o) {
  ::setsid();
  if (::chdir("/") != 0) Fail(o, Errno("berth-monitor: chdir /"));
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    for (int fd = 0; fd < 3; ++fd)
      if (fd != o.sync_fd) ::dup2(null, fd);
    if (null > 2) ::close(null);
  }
}

// A listening unix socket for the runtime's --console-socket (it sends the pty master).
int ListenConsoleSocket(Options& o) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (o.console_socket.size() >= sizeof addr.sun_path)
    Fail(o, "berth-monitor: console socket path too long: " + o.console_socket);
  std::memcpy(addr.sun_path, o.console_socket.c_str(), o.console_socket.size() + 1);
  ::unlink(o.console_socket.c_str());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Fail(o, Errno("berth-monitor: socket"));
  if (::bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 1) != 0)
    Fail(o, Errno("berth-monitor: listen on " + o.console_socket));
  ::fcntl(fd, F_SETFL, O_NONBLOCK);
  return fd;
}

// Accepts the runtime's connection and receives the pty master (SCM_RIGHTS); -1 on failure.
int ReceiveConsole(int lfd) {
  int c = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  if (c < 0) return -1;
  char data[256];
  struct iovec iov = {data, sizeof data};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  int master = -1;
  ssize_t n;
  do {
    n = ::recvmsg(c, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n >= 0) {
    for (struct cmsghdr* h = CMSG_FIRSTHDR(&msg); h != nullptr; h = CMSG_NXTHDR(&msg, h))
      if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS)
        std::memcpy(&master, CMSG_DATA(h), sizeof master);
  }
  ::close(c);
  return master;
}

struct Reaped {
  pid_t pid;
  int status;
};

}  // namespace

int main(int argc, char** argv) {
  Options o = ParseArgs(argc, argv);
  // Nothing berthd leaked reaches the runtime or the container.
  ::syscall(SYS_close_range, 3u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */);
  if (o.sync_fd >= 0) ::fcntl(o.sync_fd, F_SETFD, FD_CLOEXEC);
  for (int s = 1; s < NSIG; ++s) ::signal(s, SIG_DFL);
  ::signal(SIGPIPE, SIG_IGN);
  Detach(o);
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) Fail(o, Errno("berth-monitor: PR_SET_CHILD_SUBREAPER"));

  sigset_t mask;
  sigemptyset(&mask);
  for (int s : {SIGCHLD, SIGUSR1, SIGTERM, SIGINT, SIGHUP, SIGQUIT}) sigaddset(&mask, s);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) Fail(o, Errno("berth-monitor: signalfd"));

  LogWriter log;
  log.path = o.log_path;
  log.lost_path = berth::monitor::LogLossPath(o.bundle);
  if (!log.Open()) Fail(o, Errno("failed to open container log " + o.log_path));

  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
    Fail(o, Errno("berth-monitor: pipe"));
  bool tty = !o.console_socket.empty();
  berth::monitor::AttachServer attach;
  if (!o.attach_socket.empty()) {
    std::string e = attach.Listen(o.attach_socket, tty);
    if (!e.empty()) Fail(o, "berth-monitor: attach socket: " + e);
  }
  int in = -1;
  if (o.keep_stdin && o.stdin_fifo.empty() && !tty) {
    int sp[2];  // the container reads its stdin from a pipe held open here for attached clients
    if (::pipe2(sp, O_CLOEXEC) != 0) Fail(o, Errno("berth-monitor: stdin pipe"));
    in = sp[0];
    attach.SetStdin(sp[1], o.stdin_once);
  } else if (!o.stdin_fifo.empty()) {
    if (::mkfifo(o.stdin_fifo.c_str(), 0600) != 0 && errno != EEXIST)
      Fail(o, Errno("failed to create stdin fifo " + o.stdin_fifo));
    in = ::open(o.stdin_fifo.c_str(), O_RDWR | O_CLOEXEC);
  } else {
    in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  if (in < 0) Fail(o, Errno("berth-monitor: open container stdin"));

  int lfd = tty ? ListenConsoleSocket(o) : -1;
  std::vector<std::string> args = o.runtime;
  if (o.run) {
    args.emplace_back("run");
    args.emplace_back("--detach");
  } else {
    args.emplace_back("create");
  }
  if (tty) {
    args.emplace_back("--console-socket");
    args.push_back(o.console_socket);
  }
  args.emplace_back("--bundle");
  args.push_back(o.bundle);
  args.emplace_back("--pid-file");
  args.push_back(o.pid_file);
  args.push_back(o.id);
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);

  ::unlink(o.pid_file.c_str());
  pid_t create_pid = ::fork();
  if (create_pid < 0) Fail(o, Errno("berth-monitor: fork"));
  if (create_pid == 0) {
    ::dup2(in, 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::execv(cargs[0], cargs.data());
    WriteAll(2, Errno("failed to run " + args[0]) + "\n");
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  // With a terminal, stdin reaches the container through the pty master: keep the fifo.
  int tty_in = -1;
  if (tty && !o.stdin_fifo.empty()) {
    tty_in = in;
    ::fcntl(tty_in, F_SETFL, O_NONBLOCK);
  } else {
    ::close(in);
  }
  ::fcntl(out[0], F_SETFL, O_NONBLOCK);
  ::fcntl(err[0], F_SETFL, O_NONBLOCK);

  StreamSink sinks[2] = {{&log, Stream::kStdout}, {&log, Stream::kStderr}};
  LineSplitter split_out(o.max_line, EmitEntry, &sinks[0]);
  LineSplitter split_err(o.max_line, EmitEntry, &sinks[1]);
  LineSplitter split_tty(o.max_line, EmitEntry, &sinks[0]);  // a terminal is one stream: stdout
  LineSplitter* splitters[3] = {&split_out, &split_err, &split_tty};
  int fds[3] = {out[0], err[0], -1};
  std::string create_output;  // what the runtime printed before the container existed

  pid_t container_pid = 0;
  bool created = false, exited = false;
  int status = 0;
  int64_t exited_at = 0;
  Reaped early[16];
  int nearly = 0;
  OomCounter oom;
  int64_t drain_deadline = 0;
  char buf[16384];

  for (;;) {
    if (exited && fds[0] < 0 && fds[1] < 0 && fds[2] < 0) break;
    constexpr int kPoll = 6 + 4 * berth::monitor::AttachServer::kMaxClients;
    struct pollfd p[kPoll];
    p[0] = {sfd, POLLIN, 0};
    int np = 1;
    int map[6] = {-1, -1, -1, -1, -1, -1};
    for (int k = 0; k < 3; ++k)
      if (fds[k] >= 0) {
        p[np] = {fds[k], POLLIN, 0};
        map[np++] = k;
      }
    if (lfd >= 0) {
      p[np] = {lfd, POLLIN, 0};
      map[np++] = 10;
    }
    if (tty_in >= 0 && fds[2] >= 0) {
      p[np] = {tty_in, POLLIN, 0};
      map[np++] = 11;
    }
    int attach_first = np;
    np += attach.PollFds(p + np, kPoll - np);
    int timeout = -1;
    if (exited) {
      int64_t left = (drain_deadline - NowNs()) / 1000000;
      if (left <= 0) break;  // processes outside the container's pid namespace hold the pipes
      timeout = static_cast<int>(left);
    }
    int rc = ::poll(p, static_cast<nfds_t>(np), timeout);
    if (rc < 0 && errno != EINTR) break;
    if (rc <= 0) continue;
    attach.Handle(p + attach_first, np - attach_first);
    for (int k = 1; k < attach_first; ++k) {
      if (!p[k].revents) continue;
      int s = map[k];
      if (s == 10) {  // the runtime hands over the pty master
        int master = ReceiveConsole(lfd);
        if (master >= 0) {
          ::fcntl(master, F_SETFL, O_NONBLOCK);
          fds[2] = master;
          attach.SetTerminal(master, o.keep_stdin, o.stdin_once);
          ::close(lfd);
          lfd = -1;
          ::unlink(o.console_socket.c_str());
        }
        continue;
      }
      if (s == 11) {  // stdin fifo -> terminal
        ssize_t n = ::read(tty_in, buf, sizeof buf);
        if (n > 0 && fds[2] >= 0) WriteAll(fds[2], std::string_view(buf, static_cast<size_t>(n)));
        continue;
      }
      ssize_t n = ::read(fds[s], buf, sizeof buf);
      if (n > 0) {
        if (!created && create_output.size() < 8192) create_output.append(buf, static_cast<size_t>(n));
        // With `run`, the container may print before the runtime has exited: from the start,
        // everything is the container's output (and, if the runtime fails, also its message).
        if (created || o.run) {
          log.now = NowNs();
          splitters[s]->Feed(std::string_view(buf, static_cast<size_t>(n)));
          log.Flush();
          attach.Output(s == 1 ? 2 : 1, std::string_view(buf, static_cast<size_t>(n)));
        }
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        log.now = NowNs();
        splitters[s]->Finish();
        log.Flush();
        ::close(fds[s]);
        fds[s] = -1;
      }
    }
    if (!(p[0].revents & POLLIN)) continue;
    struct signalfd_siginfo si;
    bool child = false;
    while (::read(sfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
      if (si.ssi_signo == SIGCHLD) child = true;
      if (si.ssi_signo == SIGUSR1) log.Open();  // on failure keeps writing to the old file
    }
    if (!child) continue;
    for (;;) {
      int st = 0;
      // Until the runtime has exited, only it is reaped: the container's init, reparented to
      // this subreaper when the runtime exits, stays (if it has exited already) a zombie whose
      // /proc entry still names its cgroup.
      pid_t w = ::waitpid(created || create_pid <= 0 ? -1 : create_pid, &st, WNOHANG);
      if (w <= 0) break;
      if (w == create_pid) {
        create_pid = -1;
        if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
          int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
          // Collect whatever the runtime still printed, then report.
          for (int k = 0; k < 2; ++k) {
            ssize_t n;
            while (fds[k] >= 0 && (n = ::read(fds[k], buf, sizeof buf)) > 0)
              if (create_output.size() < 8192) create_output.append(buf, static_cast<size_t>(n));
          }
          std::string details = o.runtime_log.empty() ? "" : ReadSmallFile(o.runtime_log, 16384, true);
          if (!create_output.empty()) details += (details.empty() ? "" : "\n") + create_output;
          Report(o, "error " + std::to_string(code) + "\n" + details);
          ::_exit(1);
        }
        std::string pid_text = ReadSmallFile(o.pid_file, 64, false);
        long cpid = 0;
        while (!pid_text.empty() && (pid_text.back() == '\n' || pid_text.back() == ' '))
          pid_text.pop_back();
        if (!ParseLong(pid_text.c_str(), &cpid) || cpid <= 0)
          Fail(o, "berth-monitor: runtime wrote no valid pid to " + o.pid_file);
        container_pid = static_cast<pid_t>(cpid);
        created = true;
        OpenOomCounter(container_pid, &oom);
        // After `run` the container has been running for a while already: count from the
        // (new) cgroup's start.
        if (o.run && oom.base > 0) oom.base = 0;
        // Output printed by the runtime during create belongs to no container stream (with
        // `run` it was logged already).
        create_output.clear();
        create_output.shrink_to_fit();
        for (int k = 0; k < nearly; ++k)
          if (early[k].pid == container_pid) {
            exited = true;
            status = early[k].status;
            exited_at = NowNs();
          }
        Report(o, "created " + std::to_string(container_pid) + " " + std::to_string(::getpid()) + "\n");
      } else if (created && w == container_pid) {
        exited = true;
        status = st;
        exited_at = NowNs();
      } else if (!created && nearly < 16) {
        early[nearly++] = {w, st};
      }
    }
    if (exited && drain_deadline == 0) drain_deadline = NowNs() + 2000000000LL;
  }

  for (int k = 0; k < 3; ++k)
    if (fds[k] >= 0) {
      log.now = NowNs();
      splitters[k]->Finish();
      log.Flush();
      ::close(fds[k]);
    }
  ExitInfo info;
  info.exited_at_ns = exited_at ? exited_at : NowNs();
  if (!exited) {
    info.error = "berth-monitor lost track of the container";
  } else if (WIFEXITED(status)) {
    info.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    info.signal = WTERMSIG(status);
    info.exit_code = 128 + info.signal;
  }
  info.oom_killed = OomKilled(oom, info.signal);
  int e = berth::monitor::WriteFileAtomicRaw(o.exit_file, berth::monitor::FormatExitInfo(info));
  attach.Exited(info.exit_code, 2000);
  return e == 0 ? 0 : 1;
}
