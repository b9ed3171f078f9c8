#include "monitor/attach.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace berth::monitor {

std::string AttachSocketPath(const std::string& dir) { return dir + "/attach/sock"; }

bool UnixAddress(const std::string& path, struct sockaddr_un* addr, int* dir_fd) {
  *dir_fd = -1;
  std::memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  std::string p = path;
  if (p.size() >= sizeof addr->sun_path) {
    size_t slash = path.rfind('/');
    if (slash == std::string::npos || slash == 0) return false;
    *dir_fd = ::open(path.substr(0, slash).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (*dir_fd < 0) return false;
    p = "/proc/self/fd/" + std::to_string(*dir_fd) + path.substr(slash);
    if (p.size() >= sizeof addr->sun_path) {
      ::close(*dir_fd);
      *dir_fd = -1;
      errno = ENAMETOOLONG;
      return false;
    }
  }
  std::memcpy(addr->sun_path, p.c_str(), p.size() + 1);
  return true;
}

namespace {

bool ParseUint(std::string_view s, uint32_t max, uint32_t* v) {
  if (s.empty() || s.size() > 10) return false;
  uint64_t r = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    r = r * 10 + static_cast<uint64_t>(c - '0');
  }
  if (r > max) return false;
  *v = static_cast<uint32_t>(r);
  return true;
}

std::vector<std::string_view> Words(std::string_view s) {
  std::vector<std::string_view> w;
  size_t pos = 0;
  while (pos < s.size() && w.size() < 8) {
    size_t sp = s.find(' ', pos);
    if (sp == std::string_view::npos) sp = s.size();
    w.push_back(s.substr(pos, sp - pos));
    pos = sp + 1;
  }
  return w;
}

void SendMessage(int fd, const std::string& m) {
  if (fd >= 0) ::send(fd, m.data(), m.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

void CloseFd(int* fd) {
  if (*fd >= 0) ::close(*fd);
  *fd = -1;
}

int64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Writes what it can without blocking; the bytes written, or -1 when the reader is gone.
ssize_t WriteSome(int fd, std::string_view data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    return -1;
  }
  return static_cast<ssize_t>(done);
}

}  // namespace

AttachMessage ParseAttachMessage(std::string_view text) {
  AttachMessage m;
  auto w = Words(text);
  uint32_t a = 0, b = 0, c = 0;
  if (w.size() == 4 && w[0] == "attach" && ParseUint(w[1], 1, &a) && ParseUint(w[2], 1, &b) &&
      ParseUint(w[3], 1, &c)) {
    m.kind = "attach";
    m.in = a, m.out = b, m.err = c;
  } else if (w.size() == 3 && w[0] == "resize" && ParseUint(w[1], 65535, &a) &&
             ParseUint(w[2], 65535, &b)) {
    m.kind = "resize";
    m.width = a, m.height = b;
  }
  return m;
}

struct AttachServer::Client {
  int ctl = -1;
  int in = -1;
  int out[3] = {-1, -1, -1};  // [1] stdout, [2] stderr
  bool hello = false, dead = false;
  std::string pending[3];
};

AttachServer::AttachServer() = default;

AttachServer::~AttachServer() {
  for (auto& c : clients_) Drop(*c, "");
  CloseFd(&listen_fd_);
  if (stdin_owned_) CloseFd(&stdin_fd_);
}

std::string AttachServer::Listen(const std::string& path, bool tty) {
  tty_ = tty;
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return "create " + dir + ": " + std::strerror(errno);
  if (::chmod(dir.c_str(), 0700) != 0) return "chmod " + dir + ": " + std::strerror(errno);
  ::unlink(path.c_str());
  struct sockaddr_un addr;
  int dfd = -1;
  if (!UnixAddress(path, &addr, &dfd)) return "address of " + path + ": " + std::strerror(errno);
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  std::string err;
  mode_t old = ::umask(0177);
  if (fd < 0 || ::bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0 ||
      ::chmod(addr.sun_path, 0600) != 0 || ::listen(fd, 16) != 0)
    err = "listen on " + path + ": " + std::strerror(errno);
  ::umask(old);
  if (dfd >= 0) ::close(dfd);
  if (!err.empty()) {
    if (fd >= 0) ::close(fd);
    return err;
  }
  listen_fd_ = fd;
  path_ = path;
  return "";
}

void AttachServer::SetStdin(int fd, bool stdin_once) {
  stdin_fd_ = fd;
  stdin_owned_ = fd >= 0;
  stdin_once_ = stdin_once;
  if (fd >= 0) ::fcntl(fd, F_SETFL, O_NONBLOCK);
}

void AttachServer::SetTerminal(int master, bool has_stdin, bool stdin_once) {
  master_ = master;
  if (has_stdin && !stdin_closed_) {
    stdin_fd_ = master;
    stdin_owned_ = false;
    stdin_once_ = stdin_once;
  }
  if (width_ > 0 && height_ > 0) {
    struct winsize ws = {height_, width_, 0, 0};
    ::ioctl(master_, TIOCSWINSZ, &ws);
  }
}

// Poll entries: roles in the order PollFds appended them.
enum Role : int { kListen, kControl, kClientStdin, kClientStdout, kClientStderr, kContainerStdin };

int AttachServer::PollFds(struct pollfd* p, int max) {
  polled_.clear();
  auto add = [&](int fd, short ev, Client* c, int role) {
    if (static_cast<int>(polled_.size()) >= max) return;
    p[polled_.size()] = {fd, ev, 0};
    polled_.push_back({c, role});
  };
  if (listen_fd_ >= 0) add(listen_fd_, POLLIN, nullptr, kListen);
  if (!stdin_pending_.empty() && stdin_fd_ >= 0) add(stdin_fd_, POLLOUT, nullptr, kContainerStdin);
  for (auto& c : clients_) {
    add(c->ctl, POLLIN, c.get(), kControl);
    if (c->in >= 0 && stdin_pending_.empty()) add(c->in, POLLIN, c.get(), kClientStdin);
    for (int s = 1; s <= 2; ++s)
      if (!c->pending[s].empty())
        add(c->out[s], POLLOUT, c.get(), s == 1 ? kClientStdout : kClientStderr);
  }
  return static_cast<int>(polled_.size());
}

void AttachServer::Handle(const struct pollfd* p, int n) {
  bool accept = false;
  for (int k = 0; k < n && k < static_cast<int>(polled_.size()); ++k) {
    if (!p[k].revents) continue;
    auto [c, role] = polled_[k];
    if (c && c->dead) continue;
    switch (role) {
      case kListen:
        accept = true;
        break;
      case kControl:
        OnControl(*c);
        break;
      case kClientStdin:
        OnStdin(*c);
        break;
      case kClientStdout:
      case kClientStderr:
        WritePending(*c, role == kClientStdout ? 1 : 2);
        break;
      case kContainerStdin:
        WriteStdinPending();
        break;
    }
  }
  polled_.clear();
  Sweep();
  if (accept) Accept();  // last: fds closed above may be reused by the new connection
}

void AttachServer::Accept() {
  int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd < 0) return;
  if (clients_.size() >= kMaxClients) {
    SendMessage(fd, "error " + std::to_string(kMaxClients) + " clients are attached already");
    ::close(fd);
    return;
  }
  auto c = std::make_unique<Client>();
  c->ctl = fd;
  clients_.push_back(std::move(c));
}

void AttachServer::OnControl(Client& c) {
  char buf[256];
  alignas(struct cmsghdr) char control[CMSG_SPACE(3 * sizeof(int))];
  struct iovec iov = {buf, sizeof buf - 1};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = ::recvmsg(c.ctl, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  int fds[3];
  int nfds = 0;
  for (struct cmsghdr* h = CMSG_FIRSTHDR(&msg); h != nullptr; h = CMSG_NXTHDR(&msg, h)) {
    if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof fd);
      if (nfds < 3) {
        fds[nfds++] = fd;
      } else {
        ::close(fd);
      }
    }
  }
  auto reject = [&](const std::string& why) {
    for (int i = 0; i < nfds; ++i) ::close(fds[i]);
    Drop(c, why.empty() ? "" : "error " + why);
  };
  if (n <= 0) return reject("");  // the client went away
  if (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) return reject("message too long");
  AttachMessage m = ParseAttachMessage(std::string_view(buf, static_cast<size_t>(n)));
  if (!c.hello) {
    if (m.kind != "attach") return reject("expected \"attach <stdin> <stdout> <stderr>\"");
    if (nfds != int(m.in) + int(m.out) + int(m.err))
      return reject("\"attach\" came with " + std::to_string(nfds) + " fds, not one per stream");
    return OnHello(c, m, fds);
  }
  if (m.kind != "resize" || nfds > 0) return reject("unexpected message");
  if (m.width == 0 || m.height == 0) return;
  width_ = static_cast<uint16_t>(m.width);
  height_ = static_cast<uint16_t>(m.height);
  if (master_ >= 0) {
    struct winsize ws = {height_, width_, 0, 0};
    ::ioctl(master_, TIOCSWINSZ, &ws);
  }
}

void AttachServer::OnHello(Client& c, const AttachMessage& m, const int* fds) {
  int k = 0;
  if (m.in) c.in = fds[k++];
  if (m.out) c.out[1] = fds[k++];
  if (m.err) c.out[2] = fds[k++];
  if (c.in >= 0 && (stdin_fd_ < 0 || stdin_closed_)) CloseFd(&c.in);
  if (c.in >= 0) ::fcntl(c.in, F_SETFL, O_NONBLOCK);
  for (int s = 1; s <= 2; ++s) {
    if (c.out[s] < 0) continue;
    ::fcntl(c.out[s], F_SETFL, O_NONBLOCK);
    ::fcntl(c.out[s], F_SETPIPE_SZ, 1 << 20);  // best effort: up to pipe-max-size
  }
  c.hello = true;
  SendMessage(c.ctl, std::string("ok ") + (tty_ ? "1" : "0") + (c.in >= 0 ? " 1" : " 0"));
}

void AttachServer::OnStdin(Client& c) {
  char buf[16384];
  ssize_t n = ::read(c.in, buf, sizeof buf);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) return StdinEnded(c);
  if (stdin_closed_ || stdin_fd_ < 0) return;
  stdin_pending_.assign(buf, static_cast<size_t>(n));
  WriteStdinPending();
}

void AttachServer::WriteStdinPending() {
  if (stdin_fd_ < 0 || stdin_closed_) {
    stdin_pending_.clear();
    return;
  }
  ssize_t n = WriteSome(stdin_fd_, stdin_pending_);
  if (n < 0) {  // nobody reads the container's stdin any more
    stdin_pending_.clear();
    close_stdin_wanted_ = true;
  } else {
    stdin_pending_.erase(0, static_cast<size_t>(n));
  }
  if (stdin_pending_.empty() && close_stdin_wanted_) CloseContainerStdin();
}

// The client's stdin ended: with stdin_once the container's stdin is closed and the client
// stays for the output; without, the client is let go, as containerd's CRI does.
void AttachServer::StdinEnded(Client& c) {
  CloseFd(&c.in);
  if (stdin_once_) {
    CloseContainerStdin();
    if (c.out[1] >= 0 || c.out[2] >= 0) return;
  }
  Drop(c, "detach");
}

void AttachServer::CloseContainerStdin() {
  if (stdin_closed_ || stdin_fd_ < 0) return;
  if (!stdin_pending_.empty()) {  // what a client sent before the end goes first
    close_stdin_wanted_ = true;
    return;
  }
  stdin_closed_ = true;
  close_stdin_wanted_ = false;
  if (stdin_owned_) {
    CloseFd(&stdin_fd_);
  } else {
    // A terminal stays open (it carries the output too): in canonical mode, the end-of-file
    // character is what a reader of the terminal sees as its end.
    struct termios t;
    if (::tcgetattr(stdin_fd_, &t) == 0 && (t.c_lflag & ICANON)) {
      char eof = static_cast<char>(t.c_cc[VEOF]);
      WriteSome(stdin_fd_, std::string_view(&eof, 1));
    }
    stdin_fd_ = -1;
  }
  for (auto& o : clients_) CloseFd(&o->in);
}

void AttachServer::Output(int stream, std::string_view data) {
  if (stream < 1 || stream > 2 || data.empty()) return;
  for (auto& c : clients_) {
    if (c->dead || !c->hello || c->out[stream] < 0) continue;
    std::string& pending = c->pending[stream];
    if (pending.empty()) {
      ssize_t n = WriteSome(c->out[stream], data);
      if (n < 0) {
        Drop(*c, "");
        continue;
      }
      pending.assign(data.substr(static_cast<size_t>(n)));
    } else {
      pending.append(data);
    }
    if (pending.size() > kMaxLag)
      Drop(*c, "error the client fell more than " + std::to_string(kMaxLag >> 20) +
                   " MiB behind the container's output");
  }
  Sweep();
}

void AttachServer::WritePending(Client& c, int stream) {
  std::string& pending = c.pending[stream];
  ssize_t n = WriteSome(c.out[stream], pending);
  if (n < 0) return Drop(c, "");
  pending.erase(0, static_cast<size_t>(n));
  if (pending.empty()) std::string().swap(pending);
}

void AttachServer::Drop(Client& c, const std::string& message) {
  if (c.dead) return;
  c.dead = true;
  // A client that goes away with its stdin open ends it, as closing it would.
  if (c.in >= 0 && stdin_once_) CloseContainerStdin();
  CloseFd(&c.in);
  CloseFd(&c.out[1]);
  CloseFd(&c.out[2]);
  if (!message.empty()) SendMessage(c.ctl, message);
  CloseFd(&c.ctl);
}

void AttachServer::Sweep() {
  for (size_t i = 0; i < clients_.size();) {
    if (clients_[i]->dead) {
      clients_.erase(clients_.begin() + static_cast<long>(i));
    } else {
      ++i;
    }
  }
}

void AttachServer::Exited(int code, int flush_ms) {
  CloseFd(&listen_fd_);
  if (!path_.empty()) ::unlink(path_.c_str());
  int64_t deadline = NowMs() + flush_ms;
  for (;;) {
    std::vector<struct pollfd> p;
    std::vector<std::pair<Client*, int>> who;
    for (auto& c : clients_)
      for (int s = 1; s <= 2; ++s)
        if (!c->dead && !c->pending[s].empty()) {
          p.push_back({c->out[s], POLLOUT, 0});
          who.emplace_back(c.get(), s);
        }
    int64_t left = deadline - NowMs();
    if (p.empty() || left <= 0) break;
    if (::poll(p.data(), p.size(), static_cast<int>(left)) < 0 && errno != EINTR) break;
    for (size_t k = 0; k < p.size(); ++k)
      if (p[k].revents && !who[k].first->dead) WritePending(*who[k].first, who[k].second);
  }
  for (auto& c : clients_) {
    if (c->dead) continue;
    bool complete = c->pending[1].empty() && c->pending[2].empty();
    CloseFd(&c->out[1]);
    CloseFd(&c->out[2]);
    Drop(*c, complete ? "exit " + std::to_string(code)
                      : "error the container exited; its output did not reach the client in time");
  }
  Sweep();
}

}  // namespace berth::monitor
