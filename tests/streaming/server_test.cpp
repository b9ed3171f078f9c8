#include "streaming/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "common/error.h"

namespace {

using berth::streaming::Request;
using berth::streaming::Server;
using berth::streaming::ServerOptions;

std::string StatusLine(uint16_t port, const std::string& request) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return "connect failed";
  (void)!write(s, request.data(), request.size());
  char buf[1024];
  ssize_t n = read(s, buf, sizeof buf);
  close(s);
  std::string got(buf, n > 0 ? n : 0);
  return got.substr(0, got.find("\r\n"));
}

Request PortForward() {
  Request r;
  r.kind = Request::Kind::kPortForward;
  r.dial = [](uint16_t) -> int { throw berth::Error(berth::Code::kUnavailable, "no"); };
  return r;
}

TEST(StreamingServer, TokensAreLimitedAndExpire) {
  ServerOptions o;
  o.max_tokens = 5;
  o.token_ttl = std::chrono::milliseconds(300);
  Server s(o);
  std::string first;
  for (int i = 0; i < 5; ++i) {
    auto url = s.Register(PortForward());
    EXPECT_EQ(url.rfind(s.base_url() + "/portforward/", 0), 0u) << url;
    EXPECT_EQ(url.size(), s.base_url().size() + 13 + 32);  // 128 bits in hex
    if (i == 0) first = url;
  }
  try {
    s.Register(PortForward());
    FAIL() << "a sixth token was handed out";
  } catch (const berth::Error& e) {
    EXPECT_EQ(e.code(), berth::Code::kResourceExhausted);
  }
  std::string path = first.substr(s.base_url().size());
  EXPECT_EQ(StatusLine(s.port(), "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n"),
            "HTTP/1.1 400 Bad Request");
  EXPECT_EQ(StatusLine(s.port(), "GET /exec" + path.substr(12) + " HTTP/1.1\r\nHost: x\r\n\r\n"),
            "HTTP/1.1 404 Not Found");  // a port-forward token is no exec token
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(StatusLine(s.port(), "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n"),
            "HTTP/1.1 404 Not Found");
  s.Register(PortForward());  // expired tokens no longer count
}

TEST(StreamingServer, SlowHeadersAreCut) {
  ServerOptions o;
  o.header_timeout = std::chrono::milliseconds(200);
  Server s(o);
  s.Register(PortForward());  // the server serves from the first URL on
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(StatusLine(s.port(), "GET /exec/x HTTP/1.1\r\n"), "");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

size_t Threads() {
  return std::distance(std::filesystem::directory_iterator("/proc/self/task"),
                       std::filesystem::directory_iterator());
}

// An idle server listens on its port but keeps no thread; the first URL starts the thread, on
// the same port, and an early connection is answered then.
TEST(StreamingServer, ServesFromTheFirstUrlOnTheSamePort) {
  size_t before = Threads();
  Server s(ServerOptions{});
  EXPECT_EQ(Threads(), before);
  uint16_t port = s.port();
  ASSERT_NE(port, 0);
  std::promise<std::string> early;
  auto got = early.get_future();
  std::thread client([&] {
    early.set_value(StatusLine(port, "GET /exec/nosuchtoken HTTP/1.1\r\nHost: x\r\n\r\n"));
  });
  EXPECT_EQ(got.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  auto url = s.Register(PortForward());
  EXPECT_EQ(s.port(), port);
  EXPECT_EQ(url.rfind("http://127.0.0.1:" + std::to_string(port) + "/portforward/", 0), 0u) << url;
  EXPECT_EQ(got.get(), "HTTP/1.1 404 Not Found");
  client.join();
  s.Register(PortForward());
  for (int i = 0; i < 100 && Threads() != before + 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(Threads(), before + 1) << "one thread serves";
}

}  // namespace
