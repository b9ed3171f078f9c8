// Internal to the streaming client: connections (TCP or TLS), the HTTP upgrade, and the SPDY and
// WebSocket connections that exec, attach and port-forward run on.
#pragma once

#include "streaming/session.h"  // first of the asio users: <utility> before asio

#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "streaming/client.h"
#include "streaming/spdy.h"

namespace berth::streaming::client {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

inline constexpr size_t kMaxQueued = 4u << 20;  // bytes queued for the socket before readers wait
inline constexpr size_t kChunk = 64u << 10;

struct Url {
  bool tls = false;
  std::string host, port, target, host_header;
};
Url ParseUrl(const std::string& url);

std::unique_ptr<asio::ssl::context> ClientTls(const Tls& t);
awaitable<void> ConnectTcp(beast::tcp_stream& s, const Url& u);
awaitable<void> TlsHandshake(TlsStream& s, const Url& u, const Tls& t);
std::string UpgradeRequest(const Url& u, const std::vector<std::string>& protocols);
void CheckUpgrade(const http::response<http::string_body>& res, const Url& u);
void WriteAll(int fd, std::string_view data);

// Runs `main` on `io` until it ends; rethrows its failure as Error.
void RunLoop(asio::io_context& io, awaitable<void> main);

// Reads a file descriptor on a thread of its own, one chunk at a time: the sink gets each chunk
// on the I/O thread ("" at end of file) and calls Ack() when it wants the next. Stop() before
// the I/O context goes away.
class InputPump : public std::enable_shared_from_this<InputPump> {
 public:
  using Sink = std::function<void(std::string)>;
  void Start(int fd, asio::any_io_executor ex, Sink sink);
  void Ack();
  void Stop();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool acked_ = false, stopped_ = false;
};

// Connects to `u` (TLS for https) and runs `f(stream)`: f gets a beast::tcp_stream, or a
// TlsStream after its handshake.
template <class F>
awaitable<void> Dial(const Url& u, const Tls& t, F& f) {
  auto ex = co_await asio::this_coro::executor;
  beast::tcp_stream s(ex);
  co_await ConnectTcp(s, u);
  if (!u.tls) {
    co_await f(std::move(s));
    co_return;
  }
  auto ctx = ClientTls(t);
  TlsStream ts(std::move(s), *ctx);
  co_await TlsHandshake(ts, u, t);
  co_await f(std::move(ts));
}

// The client side of a SPDY/3.1 connection: streams opened by us (odd ids), frames queued for
// one writer, frames read and handed to the caller (PINGs answered here).
template <class S>
class SpdyConn : public std::enable_shared_from_this<SpdyConn<S>> {
 public:
  SpdyConn(S s, std::string already)
      : s_(std::move(s)),
        in_(std::move(already)),
        wake_(s_.get_executor()),
        drained_(s_.get_executor()),
        window_(s_.get_executor()) {}

  // Sends the upgrade request; the protocol the server chose.
  static awaitable<std::string> Upgrade(S& s, const Url& u, const std::vector<std::string>& protos,
                                        std::string* already) {
    std::string req = UpgradeRequest(u, protos);
    co_await asio::async_write(s, asio::buffer(req), use_awaitable);
    beast::flat_buffer buf;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024);
    parser.skip(false);
    co_await http::async_read_header(s, buf, parser, use_awaitable);
    if (parser.get().result() != http::status::switching_protocols && !parser.is_done())
      co_await http::async_read(s, buf, parser, use_awaitable);
    auto res = parser.release();
    CheckUpgrade(res, u);
    already->assign(static_cast<const char*>(buf.data().data()), buf.size());
    co_return std::string(res["X-Stream-Protocol-Version"]);
  }

  void Start() {
    asio::co_spawn(
        s_.get_executor(), [self = this->shared_from_this()] { return self->Writer(); },
        asio::detached);
  }
  uint32_t Open(const spdy::Headers& h, bool fin) {
    uint32_t id = next_id_;
    next_id_ += 2;
    windows_.Open(id);
    Queue({0, spdy::SynStream(hw_, id, h, fin), false});
    return id;
  }
  void Data(uint32_t id, std::string_view d, bool fin) {
    do {
      size_t n = std::min(d.size(), kChunk);
      Queue({id, std::string(d.substr(0, n)), fin && n == d.size()});
      d.remove_prefix(n);
    } while (!d.empty());
  }
  // Window updates and settings: sent ahead of queued data, which may wait for the server's
  // windows while the server waits for ours.
  void Control(std::string bytes) {
    if (dead_) return;
    queued_ += bytes.size();
    urgent_.push_back(std::move(bytes));
    wake_.Notify();
    window_.Notify();
  }
  size_t Queued() const { return queued_; }
  Event& Drained() { return drained_; }
  bool Dead() const { return dead_; }

  // Hands each frame to `on` until it returns false, the server says GOAWAY or the connection
  // ends. True when the connection is still up.
  awaitable<bool> ReadFrames(const std::function<bool(spdy::Frame&)>& on) {
    std::vector<char> buf(kChunk);
    while (!dead_) {
      spdy::Frame f;
      std::string err;
      auto r = parser_.Next(in_, &f, &err);
      if (r == spdy::Parser::Result::kError) {
        Close();
        throw Error(Code::kUnavailable, "streaming: bad SPDY frame from the server: " + err);
      }
      if (r == spdy::Parser::Result::kFrame) {
        if (f.type == spdy::Type::kPing) {
          if (f.value % 2 == 0) Control(spdy::Ping(f.value));  // the server's pings are even
          continue;
        }
        if (f.type == spdy::Type::kSettings || f.type == spdy::Type::kWindowUpdate) {
          windows_.OnFrame(f);
          window_.Notify();
          continue;
        }
        if (f.type == spdy::Type::kGoAway) co_return false;
        if (!on(f)) co_return true;
        continue;
      }
      boost::system::error_code ec;
      size_t n =
          co_await s_.async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
      if (ec) break;
      in_.append(buf.data(), n);
    }
    co_return false;
  }

  // Ends the connection; what was queued is dropped (so that no reader waits for it to drain).
  void Close() {
    dead_ = true;
    out_.clear();
    urgent_.clear();
    queued_ = 0;
    wake_.Notify();
    drained_.Notify();
    window_.Notify();
    beast::get_lowest_layer(s_).close();
  }

 private:
  struct Out {
    uint32_t id = 0;    // 0: `bytes` is a control frame; else DATA of this stream
    std::string bytes;  // the frame, or the DATA's payload (sent as the windows allow)
    bool fin = false;
  };
  void Queue(Out o) {
    if (dead_) return;
    queued_ += o.bytes.size();
    out_.push_back(std::move(o));
    wake_.Notify();
  }

  awaitable<void> Writer() {
    auto self = this->shared_from_this();
    while (!dead_) {
      std::string frame;
      if (!urgent_.empty()) {
        frame = std::move(urgent_.front());
        urgent_.pop_front();
        queued_ -= std::min(queued_, frame.size());
      } else if (out_.empty()) {
        co_await wake_.Wait();
        continue;
      } else if (out_.front().id == 0) {
        frame = std::move(out_.front().bytes);
        out_.pop_front();
        queued_ -= std::min(queued_, frame.size());
      } else if (size_t n = windows_.Allowed(out_.front().id, out_.front().bytes.size());
                 n == 0 && !out_.front().bytes.empty()) {
        co_await window_.Wait();  // a window update, or an urgent frame to send meanwhile
        continue;
      } else {
        frame = TakeData(out_.front(), n);
      }
      boost::system::error_code ec;
      co_await asio::async_write(s_, asio::buffer(frame), asio::redirect_error(use_awaitable, ec));
      drained_.Notify();
      if (ec) Close();
    }
  }

  S s_;
  std::string in_;
  spdy::Parser parser_;
  spdy::HeaderWriter hw_;
  // The DATA frame of the entry's first n bytes (the entry goes once all are sent); charged
  // to the windows.
  std::string TakeData(Out& o, size_t n) {
    bool last = n == o.bytes.size();
    std::string frame = spdy::Data(o.id, std::string_view(o.bytes).substr(0, n), last && o.fin);
    windows_.Charge(o.id, n);
    queued_ -= std::min(queued_, n);
    if (last) {
      out_.pop_front();
    } else {
      o.bytes.erase(0, n);
    }
    return frame;
  }

  std::deque<Out> out_;
  std::deque<std::string> urgent_;
  size_t queued_ = 0;
  uint32_t next_id_ = 1;
  bool dead_ = false;
  spdy::SendWindows windows_;  // the server's
  Event wake_, drained_, window_;
};

// The client side of a WebSocket connection of channel messages.
template <class Next>
class WsConn : public std::enable_shared_from_this<WsConn<Next>> {
 public:
  explicit WsConn(Next s)
      : ws_(std::move(s)), wake_(ws_.get_executor()), drained_(ws_.get_executor()) {}

  // The handshake offering `protos`; the protocol the server chose.
  awaitable<std::string> Handshake(const Url& u, const std::string& protos) {
    ws_.set_option(websocket::stream_base::decorator([protos](websocket::request_type& r) {
      r.set(http::field::sec_websocket_protocol, protos);
    }));
    ws_.read_message_max(16u << 20);
    ws_.write_buffer_bytes(256u << 10);  // masked in 4 KiB pieces by default: one write each
    websocket::response_type res;
    boost::system::error_code ec;
    co_await ws_.async_handshake(res, u.host_header, u.target,
                                 asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (res.result() != http::status::switching_protocols && res.result_int() != 0)
        CheckUpgrade(res, u);
      throw Error(Code::kUnavailable,
                  "WebSocket handshake with " + u.host_header + ": " + ec.message());
    }
    ws_.binary(true);
    co_return std::string(res[http::field::sec_websocket_protocol]);
  }

  void Start() {
    asio::co_spawn(
        ws_.get_executor(), [self = this->shared_from_this()] { return self->Writer(); },
        asio::detached);
  }
  void Send(int channel, std::string_view data) {
    if (dead_) return;
    std::string m(1, static_cast<char>(channel));
    m.append(data);
    queued_ += m.size();
    out_.push_back(std::move(m));
    wake_.Notify();
  }
  size_t Queued() const { return queued_; }
  Event& Drained() { return drained_; }

  // Hands each message (channel, payload) to `on` until the connection closes.
  awaitable<void> ReadMessages(const std::function<void(int, std::string_view)>& on) {
    beast::flat_buffer buf;
    while (!dead_) {
      boost::system::error_code ec;
      co_await ws_.async_read(buf, asio::redirect_error(use_awaitable, ec));
      if (ec) break;
      std::string_view m(static_cast<const char*>(buf.data().data()), buf.size());
      if (!m.empty()) on(static_cast<unsigned char>(m[0]), m.substr(1));
      buf.consume(buf.size());
    }
  }

  // Ends the connection; what was queued is dropped (so that no reader waits for it to drain).
  void Close() {
    dead_ = true;
    out_.clear();
    queued_ = 0;
    wake_.Notify();
    drained_.Notify();
    beast::get_lowest_layer(ws_).close();
  }

 private:
  awaitable<void> Writer() {
    auto self = this->shared_from_this();
    while (!dead_) {
      if (out_.empty()) {
        co_await wake_.Wait();
        continue;
      }
      std::string m = std::move(out_.front());
      out_.pop_front();
      boost::system::error_code ec;
      co_await ws_.async_write(asio::buffer(m), asio::redirect_error(use_awaitable, ec));
      queued_ -= std::min(queued_, m.size());
      drained_.Notify();
      if (ec) Close();
    }
  }

  websocket::stream<Next> ws_;
  std::deque<std::string> out_;
  size_t queued_ = 0;
  bool dead_ = false;
  Event wake_, drained_;
};

}  // namespace berth::streaming::client
