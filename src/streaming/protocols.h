// Internal to berth_streaming: a connection after its HTTP request, served by SPDY/3.1 or
// WebSocket, and what both write.
#pragma once

#include "streaming/session.h"

#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace berth::streaming {

struct SessionParams {
  Request req;
  std::vector<std::string> offered;  // protocols offered by the client, in its order
  std::string query;                 // of the request's URL
  std::chrono::milliseconds idle_timeout{0};
  std::chrono::milliseconds stream_creation_timeout{30000};
};

using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;
using HttpRequest = boost::beast::http::request<boost::beast::http::empty_body>;
awaitable<void> ServeSpdy(boost::beast::tcp_stream s, std::string already_read, SessionParams p);
awaitable<void> ServeSpdy(TlsStream s, std::string already_read, SessionParams p);
awaitable<void> ServeWebSocket(boost::beast::tcp_stream s, HttpRequest req, SessionParams p);
awaitable<void> ServeWebSocket(TlsStream s, HttpRequest req, SessionParams p);

// Dials `port` with (a copy of) `dial` on a thread of its own (dialling may block); the connected
// fd, or -1 with *error set.
awaitable<int> DialOffThread(const asio::any_io_executor& ex, const PortDialer& dial, uint16_t port,
                             std::string* error);

// The first protocol of `ours` (in our order of preference) that the client offers; "" when none.
std::string Negotiate(const std::vector<std::string>& offered,
                      const std::vector<std::string>& ours);

// What the error stream carries at the end of a remotecommand: with `status_json` (v4 and
// later) a metav1.Status (Success, or NonZeroExitCode with an ExitCode cause, or InternalError);
// before v4 only a failure's message ("" on success).
std::string ExitStatus(bool status_json, int exit_code, const std::string& error);

// The values of query parameter `name` ("port=80&port=8080").
std::vector<std::string> QueryValues(const std::string& query, const std::string& name);

// Copies between a TCP connection into the pod and one port-forward stream of a session:
// Input() queues bytes for the pod (counted in the session's `budget` until written),
// InputEof() half-closes; what the pod sends goes to `out`.
class PortPipe : public std::enable_shared_from_this<PortPipe> {
 public:
  using Out = std::function<void(std::string data)>;  // "" = end of file
  PortPipe(asio::any_io_executor ex, int fd, Out out, std::function<size_t()> queued,
           Event* drained, std::shared_ptr<InputBudget> budget);
  void Start();
  void Input(std::string data);
  void InputEof();
  void Close();

 private:
  awaitable<void> ReadLoop();
  awaitable<void> WriteLoop();
  void DropInput();
  asio::ip::tcp::socket sock_;
  Out out_;
  std::function<size_t()> queued_;
  Event* drained_;
  std::shared_ptr<InputBudget> budget_;
  std::deque<std::string> in_;
  bool writing_ = false, eof_ = false, closed_ = false;
};

}  // namespace berth::streaming
