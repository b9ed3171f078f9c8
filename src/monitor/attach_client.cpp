#include "monitor/attach_client.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "monitor/attach.h"

namespace berth::monitor {

namespace {

void CloseFd(int* fd) {
  if (*fd >= 0) ::close(*fd);
  *fd = -1;
}

int Connect(const std::string& path) {
  struct sockaddr_un addr;
  int dfd = -1;
  if (!UnixAddress(path, &addr, &dfd)) {
    int e = errno;
    throw Error(e == ENOENT ? Code::kFailedPrecondition : Code::kInternal,
                "attach socket " + path + ": " + std::strerror(e));
  }
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  int rc = fd < 0 ? -1 : ::connect(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr);
  int e = errno;
  if (dfd >= 0) ::close(dfd);
  if (rc != 0) {
    if (fd >= 0) ::close(fd);
    bool gone = e == ENOENT || e == ECONNREFUSED;
    throw Error(gone ? Code::kFailedPrecondition : Code::kInternal,
                "connect to the container's berth-monitor at " + path + ": " + std::strerror(e) +
                    (gone ? " (the container is not running)" : ""));
  }
  return fd;
}

std::string Receive(int fd, const std::string& what) {
  char buf[512];
  ssize_t n;
  do {
    n = ::recv(fd, buf, sizeof buf, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) ThrowErrno(what);
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace

std::unique_ptr<AttachConnection> AttachConnection::Open(const std::string& socket_path, bool in,
                                                         bool out, bool err) {
  std::unique_ptr<AttachConnection> c(new AttachConnection());
  c->socket_ = socket_path;
  c->ctl_ = Connect(socket_path);
  // Pipes: ours in c->in_/out_/err_, theirs sent with the hello and closed here.
  int theirs[3];
  int n = 0;
  auto pipe_for = [&](bool want, int* ours, bool we_write) {
    if (!want) return;
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
      for (int i = 0; i < n; ++i) ::close(theirs[i]);
      ThrowErrno("attach: pipe");
    }
    *ours = we_write ? p[1] : p[0];
    theirs[n++] = we_write ? p[0] : p[1];
  };
  pipe_for(in, &c->in_, true);
  pipe_for(out, &c->out_, false);
  pipe_for(err, &c->err_, false);
  std::string hello =
      std::string("attach ") + (in ? "1" : "0") + (out ? " 1" : " 0") + (err ? " 1" : " 0");
  struct iovec iov = {hello.data(), hello.size()};
  alignas(struct cmsghdr) char control[CMSG_SPACE(3 * sizeof(int))] = {};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (n > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(n * sizeof(int));
    struct cmsghdr* h = CMSG_FIRSTHDR(&msg);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(n * sizeof(int));
    std::memcpy(CMSG_DATA(h), theirs, n * sizeof(int));
  }
  ssize_t sent = ::sendmsg(c->ctl_, &msg, MSG_NOSIGNAL);
  int e = errno;
  for (int i = 0; i < n; ++i) ::close(theirs[i]);
  if (sent < 0) ThrowErrno("attach: send to berth-monitor at " + socket_path, e);
  struct timeval tv = {10, 0};
  ::setsockopt(c->ctl_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string reply = Receive(c->ctl_, "attach: no answer from berth-monitor at " + socket_path);
  tv = {0, 0};
  ::setsockopt(c->ctl_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (reply.rfind("error ", 0) == 0)
    throw Error(Code::kUnavailable, "berth-monitor refused to attach: " + reply.substr(6));
  if (reply.size() != 6 || reply.rfind("ok ", 0) != 0)
    throw Error(Code::kFailedPrecondition,
                reply.empty() ? "the container's berth-monitor closed the attach connection "
                                "(the container exited)"
                              : "malformed answer from berth-monitor: " + reply);
  c->tty_ = reply[3] == '1';
  if (reply[5] != '1') CloseFd(&c->in_);  // the container's stdin is closed (or it has none)
  return c;
}

AttachConnection::~AttachConnection() {
  CloseFd(&ctl_);
  CloseFd(&in_);
  CloseFd(&out_);
  CloseFd(&err_);
}

int AttachConnection::TakeStdin() { return std::exchange(in_, -1); }
int AttachConnection::TakeStdout() { return std::exchange(out_, -1); }
int AttachConnection::TakeStderr() { return std::exchange(err_, -1); }

void AttachConnection::Resize(uint16_t width, uint16_t height) {
  std::string m = "resize " + std::to_string(width) + " " + std::to_string(height);
  ::send(ctl_, m.data(), m.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

void AttachConnection::Wait() {
  while (true) {
    std::string m = Receive(ctl_, "attach: read from berth-monitor at " + socket_);
    if (m.rfind("exit ", 0) == 0 || m == "detach") return;
    if (m.empty()) {
      if (cancelled_) return;
      throw Error(Code::kUnavailable, "the container's berth-monitor closed the attach connection");
    }
    if (m.rfind("error ", 0) == 0) throw Error(Code::kUnavailable, "berth-monitor: " + m.substr(6));
  }
}

void AttachConnection::Cancel() {
  cancelled_ = true;
  ::shutdown(ctl_, SHUT_RDWR);
}

}  // namespace berth::monitor
