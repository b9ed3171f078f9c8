// The HTTP/1.1 endpoint of the metrics ([metrics] address): GET /v1/metrics answers the text
// exposition (metrics::Render), anything else 404 or 405. One thread, one request per connection.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

namespace berth::metrics {

struct RequestLine {
  std::string method, target;
};
// Parses the request line of an HTTP/1.0 or 1.1 request ("GET /v1/metrics HTTP/1.1"; what comes
// after the first CRLF is ignored). nullopt with *error set for anything else.
std::optional<RequestLine> ParseRequestLine(std::string_view head, std::string* error);
// The full response (status line, headers, body) to a request head.
std::string Respond(std::string_view head);

inline constexpr const char* kMetricsPath = "/v1/metrics";

class HttpServer {
 public:
  // Listens on "host:port" ("127.0.0.1:1338", "[::1]:0", ":1338" for every address; port 0 picks
  // a free one) and serves from a thread. Throws berth::Error naming the address and the cause.
  explicit HttpServer(const std::string& address);
  ~HttpServer();  // stops the thread and closes the socket
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  int port() const { return port_; }

 private:
  void Loop();
  void Serve(int fd);
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // eventfd
  int port_ = 0;
  std::thread thread_;
};

}  // namespace berth::metrics
