#include "streaming/server.h"

#include "streaming/session.h"  // first of the asio users: <utility> before asio

#include <openssl/rand.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>

#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "common/error.h"
#include "streaming/protocols.h"
#include "streaming/tls.h"

namespace berth::streaming {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

std::string NewToken() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1)
    throw Error(Code::kInternal, "streaming: no random bytes for a token");
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned char c : b) {
    s += hex[c >> 4];
    s += hex[c & 15];
  }
  return s;
}

const char* KindPath(Request::Kind k) {
  switch (k) {
    case Request::Kind::kExec:
      return "exec";
    case Request::Kind::kAttach:
      return "attach";
    case Request::Kind::kPortForward:
      return "portforward";
  }
  return "exec";
}

}  // namespace

struct Server::Impl {
  ServerOptions opts;
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  std::thread thread;
  mutable std::mutex mu;
  struct Entry {
    Request req;
    std::chrono::steady_clock::time_point expires;
  };
  std::map<std::string, Entry> tokens;
  std::string base;
  std::unique_ptr<asio::ssl::context> tls;  // null: plain HTTP
  std::string cert_pem;

  std::once_flag serving;

  // The accept loop and its thread start with the first URL handed out: until then no client
  // holds a URL, and an idle berthd keeps no thread for the server. The socket listens from the
  // start, so its port stays the same for the server's lifetime (an early connection waits in
  // the listen backlog until then).
  void StartServing() {
    std::call_once(serving, [this] {
      asio::co_spawn(io, Accept(), asio::detached);
      thread = std::thread([this] { io.run(); });
    });
  }

  void Purge() {
    auto now = std::chrono::steady_clock::now();
    for (auto it = tokens.begin(); it != tokens.end();)
      it = it->second.expires <= now ? tokens.erase(it) : std::next(it);
  }
  // The request behind `token` for `kind`, removed (one use); nullopt when unknown or expired.
  std::optional<Request> Take(const std::string& kind, const std::string& token) {
    std::lock_guard<std::mutex> lock(mu);
    Purge();
    auto it = tokens.find(token);
    if (it == tokens.end() || KindPath(it->second.req.kind) != kind) return std::nullopt;
    Request r = std::move(it->second.req);
    tokens.erase(it);
    return r;
  }
  bool Known(const std::string& kind, const std::string& token) {
    std::lock_guard<std::mutex> lock(mu);
    Purge();
    auto it = tokens.find(token);
    return it != tokens.end() && KindPath(it->second.req.kind) == kind;
  }

  awaitable<void> Accept();
  awaitable<void> Serve(tcp::socket s);
  template <class Stream>
  awaitable<void> ServeHttp(Stream s);
};

namespace {

void ShutdownBoth(beast::tcp_stream& s) {
  boost::system::error_code ec;
  s.socket().shutdown(tcp::socket::shutdown_both, ec);
}
void ShutdownBoth(beast::ssl_stream<beast::tcp_stream>& s) {
  boost::system::error_code ec;
  s.next_layer().socket().shutdown(tcp::socket::shutdown_both, ec);
}

template <class Stream>
awaitable<void> Reply(Stream& s, http::status st, std::string_view body) {
  http::response<http::string_body> res{st, 11};
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.set(http::field::connection, "close");
  res.body() = std::string(body) + "\n";
  res.prepare_payload();
  boost::system::error_code ec;
  co_await http::async_write(s, res, asio::redirect_error(use_awaitable, ec));
  ShutdownBoth(s);
}

bool HasToken(beast::string_view list, beast::string_view word) {
  for (size_t pos = 0; pos <= list.size();) {
    size_t comma = list.find(',', pos);
    if (comma == beast::string_view::npos) comma = list.size();
    auto t = list.substr(pos, comma - pos);
    while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
    while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
    if (beast::iequals(t, word)) return true;
    pos = comma + 1;
  }
  return false;
}

}  // namespace

awaitable<void> Server::Impl::Accept() {
  while (true) {
    boost::system::error_code ec;
    tcp::socket s = co_await acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) continue;
    // Frames are written as they come: no Nagle delay (with the peer's delayed ACK, 40 ms).
    s.set_option(tcp::no_delay(true), ec);
    asio::co_spawn(io, Serve(std::move(s)), asio::detached);
  }
}

awaitable<void> Server::Impl::Serve(tcp::socket sock) {
  beast::tcp_stream s(std::move(sock));
  if (!tls) {
    co_await ServeHttp(std::move(s));
    co_return;
  }
  beast::ssl_stream<beast::tcp_stream> ss(std::move(s), *tls);
  ss.next_layer().expires_after(opts.header_timeout);
  boost::system::error_code ec;
  co_await ss.async_handshake(asio::ssl::stream_base::server,
                              asio::redirect_error(use_awaitable, ec));
  if (ec) co_return;  // not TLS, or a client that does not trust the certificate
  co_await ServeHttp(std::move(ss));
}

template <class Stream>
awaitable<void> Server::Impl::ServeHttp(Stream s) {
  beast::flat_buffer buf;
  http::request_parser<http::empty_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(0);
  beast::get_lowest_layer(s).expires_after(opts.header_timeout);
  boost::system::error_code ec;
  co_await http::async_read(s, buf, parser, asio::redirect_error(use_awaitable, ec));
  if (ec) {
    if (ec != beast::error::timeout && ec != http::error::end_of_stream && ec != asio::error::eof &&
        ec != asio::error::connection_reset) {
      // No temporaries of class type in a co_await expression: GCC 12 destroys them twice.
      std::string msg = "bad request: " + ec.message();
      co_await Reply(s, http::status::bad_request, msg);
    }
    co_return;
  }
  beast::get_lowest_layer(s).expires_never();
  auto req = parser.release();
  std::string target(req.target());
  std::string query;
  if (auto q = target.find('?'); q != std::string::npos) {
    query = target.substr(q + 1);
    target.resize(q);
  }
  // /{exec,attach,portforward}/TOKEN
  std::string kind, token;
  if (target.size() > 1 && target[0] == '/') {
    auto slash = target.find('/', 1);
    if (slash != std::string::npos) {
      kind = target.substr(1, slash - 1);
      token = target.substr(slash + 1);
    }
  }
  if (req.method() != http::verb::get && req.method() != http::verb::post) {
    co_await Reply(s, http::status::method_not_allowed, "method not allowed");
    co_return;
  }
  if (!Known(kind, token)) {
    co_await Reply(s, http::status::not_found, "404 page not found");
    co_return;
  }
  bool websocket = beast::websocket::is_upgrade(req);
  bool spdy = HasToken(req[http::field::connection], "upgrade") &&
              beast::iequals(req[http::field::upgrade], "SPDY/3.1");
  if (!websocket && !spdy) {
    co_await Reply(
        s, http::status::bad_request,
        "unable to upgrade: missing upgrade headers in request (Connection: Upgrade with Upgrade: "
        "SPDY/3.1 or websocket)");
    co_return;
  }
  auto r = Take(kind, token);
  if (!r) {
    co_await Reply(s, http::status::not_found, "404 page not found");
    co_return;
  }
  // The protocols the client offers, in its order.
  std::vector<std::string> offered;
  for (const auto& f : req) {
    bool proto = websocket ? f.name() == http::field::sec_websocket_protocol
                           : beast::iequals(f.name_string(), "X-Stream-Protocol-Version");
    if (!proto) continue;
    std::string v(f.value());
    for (size_t pos = 0; pos <= v.size();) {
      size_t c = v.find(',', pos);
      if (c == std::string::npos) c = v.size();
      std::string t = v.substr(pos, c - pos);
      t.erase(0, t.find_first_not_of(' '));
      t.erase(t.find_last_not_of(' ') + 1);
      if (!t.empty()) offered.push_back(t);
      pos = c + 1;
    }
  }
  SessionParams p{std::move(*r), offered, query, opts.idle_timeout, opts.stream_creation_timeout};
  if (websocket) {
    co_await ServeWebSocket(std::move(s), std::move(req), std::move(p));
  } else {
    co_await ServeSpdy(std::move(s),
                       std::string(static_cast<const char*>(buf.data().data()), buf.size()),
                       std::move(p));
  }
}

Server::Server(ServerOptions opts) : impl_(std::make_unique<Impl>()) {
  impl_->opts = std::move(opts);
  auto& I = *impl_;
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(I.opts.address, ec);
  if (ec)
    throw Error(Code::kInvalidArgument,
                "stream_server_address " + I.opts.address + ": " + ec.message());
  tcp::endpoint ep(addr, I.opts.port);
  I.acceptor.open(ep.protocol(), ec);
  if (!ec) I.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) I.acceptor.bind(ep, ec);
  if (!ec) I.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw Error(Code::kUnavailable, "streaming server: listen on " + I.opts.address + ":" +
                                        std::to_string(I.opts.port) + ": " + ec.message());
  }
  if (I.opts.tls) I.tls = MakeServerTls(I.opts, &I.cert_pem);
  auto local = I.acceptor.local_endpoint();
  std::string host = local.address().to_string();
  if (local.address().is_v6()) host = "[" + host + "]";
  I.base = (I.tls ? "https://" : "http://") + host + ":" + std::to_string(local.port());
}

Server::~Server() {
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::string Server::Register(Request r) {
  auto& I = *impl_;
  I.StartServing();
  std::lock_guard<std::mutex> lock(I.mu);
  I.Purge();
  if (I.tokens.size() >= I.opts.max_tokens) {
    throw Error(Code::kResourceExhausted,
                "streaming server: " + std::to_string(I.opts.max_tokens) +
                    " requests are outstanding already; try again in a minute");
  }
  std::string token;
  do {
    token = NewToken();
  } while (I.tokens.count(token));
  const char* kind = KindPath(r.kind);
  I.tokens[token] = Impl::Entry{std::move(r), std::chrono::steady_clock::now() + I.opts.token_ttl};
  return I.base + "/" + kind + "/" + token;
}

uint16_t Server::port() const { return impl_->acceptor.local_endpoint().port(); }
std::string Server::base_url() const { return impl_->base; }
std::string Server::certificate_pem() const { return impl_->cert_pem; }

}  // namespace berth::streaming
