// berth-exec-tty PID_FILE -- RUNTIME ARGS...
//
// Runs a terminal exec for berthd's streaming server with exactly one pty, the container's:
// RUNTIME ARGS is a `<runtime> exec --tty --detach --console-socket @CONSOLE_SOCKET@ ...`
// (the placeholder becomes a socket this program listens on). The runtime sends the container's
// pty master there; this program, a child subreaper, relays it to and from its own stdio (berthd's
// raw pty), copies its stdin's window size to it on SIGWINCH, reaps the exec'd process (its pid
// in PID_FILE), reads what the process wrote before it ended, and exits with its status
// (128+signal when killed). A runtime that fails: its exit status, nothing relayed.
//
// A runtime that is not detached copies through a pty of its own and clears the container's
// ONLCR only after the process may already have written, so a line end could come out as \r\r\n
// or \n; with one pty it is always what the container's terminal made of it.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern char** environ;

namespace {

constexpr const char* kPlaceholder = "@CONSOLE_SOCKET@";

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "berth-exec-tty: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(125);
}

int Code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t k = ::write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

// Copies what `from` has now to `to`; false at its end (EOF, EIO from a pty whose other side
// is closed) or when `to` is gone.
bool CopyOnce(int from, int to) {
  char buf[65536];
  ssize_t n = ::read(from, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) return false;
  return WriteAll(to, buf, static_cast<size_t>(n));
}

void CopySize(int master) {
  winsize ws = {};
  if (::ioctl(0, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) ::ioctl(master, TIOCSWINSZ, &ws);
}

int Listen(const std::string& path) {
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("socket");
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 1) != 0)
    Die("listen on " + path);
  return fd;
}

int ReceiveMaster(int lfd) {
  int c = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  if (c < 0) return -1;
  char data[256];
  iovec iov = {data, sizeof data};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  int master = -1;
  ssize_t n;
  do {
    n = ::recvmsg(c, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n >= 0)
    for (cmsghdr* h = CMSG_FIRSTHDR(&msg); h != nullptr; h = CMSG_NXTHDR(&msg, h))
      if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS)
        std::memcpy(&master, CMSG_DATA(h), sizeof master);
  ::close(c);
  return master;
}

// Starts the runtime and waits for it; the pty master it sent, or exits with its status.
int RunRuntime(std::vector<std::string> args, const sigset_t& old_mask) {
  char dir[] = "/tmp/berth-exec-tty-XXXXXX";
  if (!::mkdtemp(dir)) Die("mkdtemp");
  std::string sock = std::string(dir) + "/console.sock";
  int lfd = Listen(sock);
  std::vector<char*> argv;
  for (auto& a : args) {
    if (a == kPlaceholder) a = sock;
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setsigmask(&attr, &old_mask);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t rt = -1;
  int err = ::posix_spawn(&rt, argv[0], nullptr, &attr, argv.data(), environ);
  if (err != 0) {
    errno = err;
    ::unlink(sock.c_str());
    ::rmdir(dir);
    Die(std::string("start ") + argv[0]);
  }
  int status = 0;
  while (::waitpid(rt, &status, 0) < 0 && errno == EINTR) {
  }
  // The runtime sent the master before it reported the process started.
  int master = -1;
  if (Code(status) == 0) {
    ::fcntl(lfd, F_SETFL, O_NONBLOCK);
    master = ReceiveMaster(lfd);
  }
  ::close(lfd);
  ::unlink(sock.c_str());
  ::rmdir(dir);
  if (Code(status) != 0) std::exit(Code(status));
  if (master < 0) {
    std::fprintf(stderr, "berth-exec-tty: the runtime sent no terminal\n");
    std::exit(125);
  }
  return master;
}

int ReadPid(const char* path) {
  char buf[32] = {};
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) Die(std::string("open ") + path);
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  int pid = n > 0 ? std::atoi(buf) : 0;
  if (pid <= 0) {
    errno = EINVAL;
    Die(std::string("no pid in ") + path);
  }
  return pid;
}

// Whether `pid` was reaped (its status in *status); other orphans are reaped on the way.
bool ReapAll(int pid, int* status) {
  bool found = false;
  int st = 0;
  pid_t p;
  while ((p = ::waitpid(-1, &st, WNOHANG)) > 0) {
    if (p == pid) {
      *status = st;
      found = true;
    }
  }
  return found;
}

// After the process ended: whatever it wrote, up to the end of the terminal (EIO) or, if
// others still hold it, what is there now.
void Drain(int master) {
  ::fcntl(master, F_SETFL, ::fcntl(master, F_GETFL) | O_NONBLOCK);
  char buf[65536];
  while (true) {
    ssize_t n = ::read(master, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || !WriteAll(1, buf, static_cast<size_t>(n))) return;
  }
}

int Relay(int master, int pid, int sfd) {
  CopySize(master);
  bool in_open = true, out_open = true;
  int status = 0;
  if (ReapAll(pid, &status)) {
    Drain(master);
    return Code(status);
  }
  while (true) {
    pollfd p[3] = {
        {sfd, POLLIN, 0}, {out_open ? master : -1, POLLIN, 0}, {in_open ? 0 : -1, POLLIN, 0}};
    if (::poll(p, 3, -1) < 0 && errno != EINTR) Die("poll");
    if (p[1].revents) out_open = CopyOnce(master, 1);
    if (p[2].revents) in_open = CopyOnce(0, master);
    if (p[0].revents) {
      signalfd_siginfo si;
      while (::read(sfd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGWINCH) CopySize(master);
      }
      if (ReapAll(pid, &status)) {
        if (out_open) Drain(master);
        return Code(status);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4 || std::strcmp(argv[2], "--") != 0) {
    std::fprintf(stderr, "usage: berth-exec-tty PID_FILE -- RUNTIME ARGS...\n");
    return 125;
  }
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t mask, old_mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGWINCH);
  ::sigprocmask(SIG_BLOCK, &mask, &old_mask);
  int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) Die("signalfd");
  // The exec'd process is the runtime's grandchild: it becomes ours when the runtime exits.
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) Die("PR_SET_CHILD_SUBREAPER");
  int master = RunRuntime(std::vector<std::string>(argv + 3, argv + argc), old_mask);
  int pid = ReadPid(argv[1]);
  return Relay(master, pid, sfd);
}
