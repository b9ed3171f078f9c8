#include "metrics/http.h"

#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "metrics/metrics.h"

namespace berth::metrics {

namespace {

constexpr size_t kMaxHead = 8192;

std::string Response(int status, std::string_view reason, std::string_view type,
                     std::string_view body, std::string_view extra = "") {
  std::string r = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
  r += "Content-Type: " + std::string(type) + "\r\n";
  r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  r += extra;
  r += "Connection: close\r\n\r\n";
  r += body;
  return r;
}

bool IsTchar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

// Splits "host:port" / "[v6]:port" / ":port".
void SplitAddress(const std::string& address, std::string& host, std::string& port) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) {
    throw Error(Code::kInvalidArgument, "[metrics] address " + address + ": expected host:port");
  }
  host = address.substr(0, colon);
  port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos) {
    throw Error(Code::kInvalidArgument, "[metrics] address " + address + ": port must be a number");
  }
}

int Listen(const std::string& address, int* port_out) {
  std::string host, port;
  SplitAddress(address, host, port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    throw Error(Code::kInvalidArgument, "[metrics] address " + address + ": " + ::gai_strerror(rc));
  }
  std::string err = "no address";
  int fd = -1;
  for (auto* ai = res; ai && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, 16) != 0) {
      err = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(res);
  if (fd < 0)
    throw Error(Code::kUnavailable,
                "failed to listen on [metrics] address " + address + ": " + err);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  *port_out = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return fd;
}

void WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data.remove_prefix(size_t(n));
  }
}

}  // namespace

std::optional<RequestLine> ParseRequestLine(std::string_view head, std::string* error) {
  auto eol = head.find("\r\n");
  if (eol == std::string_view::npos) {
    *error = "request line not terminated by CRLF";
    return std::nullopt;
  }
  std::string_view line = head.substr(0, eol);
  auto sp1 = line.find(' ');
  auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    *error = "malformed request line";
    return std::nullopt;
  }
  RequestLine r{std::string(line.substr(0, sp1)), std::string(line.substr(sp1 + 1, sp2 - sp1 - 1))};
  std::string_view version = line.substr(sp2 + 1);
  if (r.method.empty()) {
    *error = "empty method";
    return std::nullopt;
  }
  for (char c : r.method) {
    if (!IsTchar(c)) {
      *error = "invalid character in method";
      return std::nullopt;
    }
  }
  if (r.target.empty() || r.target[0] != '/') {
    *error = "request target must be an absolute path";
    return std::nullopt;
  }
  for (char c : r.target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      *error = "invalid character in request target";
      return std::nullopt;
    }
  }
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    *error = "unsupported HTTP version";
    return std::nullopt;
  }
  return r;
}

std::string Respond(std::string_view head) {
  std::string error;
  auto req = ParseRequestLine(head, &error);
  if (!req) return Response(400, "Bad Request", "text/plain; charset=utf-8", error + "\n");
  std::string_view path = req->target;
  if (auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  if (path != kMetricsPath)
    return Response(404, "Not Found", "text/plain; charset=utf-8", "404 page not found\n");
  if (req->method != "GET" && req->method != "HEAD") {
    return Response(405, "Method Not Allowed", "text/plain; charset=utf-8", "method not allowed\n",
                    "Allow: GET, HEAD\r\n");
  }
  std::string body = Render();
  std::string r = Response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
  if (req->method == "HEAD") r.resize(r.size() - body.size());
  return r;
}

HttpServer::HttpServer(const std::string& address) {
  listen_fd_ = Listen(address, &port_);
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (stop_fd_ < 0) {
    ::close(listen_fd_);
    ThrowErrno("failed to create an eventfd");
  }
  thread_ = std::thread([this] { Loop(); });
}

HttpServer::~HttpServer() {
  uint64_t one = 1;
  if (::write(stop_fd_, &one, sizeof one) < 0) {
    // The thread polls the eventfd; a failed write leaves nothing to wake, and join would hang.
    ::shutdown(listen_fd_, SHUT_RDWR);
  }
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
  ::close(stop_fd_);
}

void HttpServer::Loop() {
  pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    if (!(fds[0].revents & POLLIN)) {
      if (fds[0].revents) return;
      continue;
    }
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    Serve(fd);
    ::close(fd);
  }
}

// Reads the request head (bounded in size and time) and answers.
void HttpServer::Serve(int fd) {
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::string head;
  char buf[2048];
  while (head.find("\r\n\r\n") == std::string::npos) {
    if (head.size() >= kMaxHead) {
      WriteAll(fd, Response(431, "Request Header Fields Too Large", "text/plain; charset=utf-8",
                            "request head too large\n"));
      return;
    }
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    head.append(buf, size_t(n));
  }
  WriteAll(fd, Respond(head));
}

}  // namespace berth::metrics
