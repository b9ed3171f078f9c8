// port-forward as a client: local listeners on 127.0.0.1; over SPDY/3.1 every local connection
// is a data and an error stream of one session, over WebSocket a session of its own.
#include "streaming/client_conn.h"

#include <signal.h>

#include <map>

#include "common/error.h"

namespace berth::streaming::client {

namespace {

// The per-stream receive window we give the server; reopened as bytes reach the local socket.
constexpr uint32_t kWindow = 8u << 20;

// One local connection: what the remote side sends is queued and written to it.
struct Local : std::enable_shared_from_this<Local> {
  explicit Local(tcp::socket s) : sock(std::move(s)) {}
  tcp::socket sock;
  std::deque<std::string> out;
  bool writing = false, remote_eof = false, closed = false;
  bool close_at_eof = false;  // the connection is gone both ways once the remote side ended
  std::string error;
  // Called after each write with the bytes written (SPDY reopens its window).
  std::function<void(size_t)> written;

  void Push(std::string d) {
    if (closed) return;
    out.push_back(std::move(d));
    Kick();
  }
  void RemoteEof() {
    remote_eof = true;
    Kick();
  }
  void Close() {
    closed = true;
    boost::system::error_code ec;
    sock.close(ec);
  }
  void Kick() {
    if (writing || closed) return;
    writing = true;
    asio::co_spawn(
        sock.get_executor(), [self = shared_from_this()] { return self->WriteLoop(); },
        asio::detached);
  }
  awaitable<void> WriteLoop() {
    while (!out.empty() && !closed) {
      std::string d = std::move(out.front());
      out.pop_front();
      boost::system::error_code ec;
      co_await asio::async_write(sock, asio::buffer(d), asio::redirect_error(use_awaitable, ec));
      if (ec) {
        Close();
        break;
      }
      if (written) written(d.size());
    }
    writing = false;
    if (remote_eof && out.empty() && !closed) {
      boost::system::error_code ec;
      sock.shutdown(tcp::socket::shutdown_send, ec);
      if (close_at_eof) Close();
    }
  }
};

// Copies the local socket to `send` (chunk; "" at end of file) while the queue allows.
template <class Queued>
awaitable<void> LocalReadLoop(std::shared_ptr<Local> l, std::function<void(std::string)> send,
                              Queued queued, Event* drained) {
  std::vector<char> buf(kChunk);
  while (!l->closed) {
    if (queued() > kMaxQueued) {
      co_await drained->Wait();
      continue;
    }
    boost::system::error_code ec;
    size_t n = co_await l->sock.async_read_some(asio::buffer(buf),
                                                asio::redirect_error(use_awaitable, ec));
    if (n > 0) send(std::string(buf.data(), n));
    if (ec) break;
  }
  if (!l->closed) send("");
}

std::vector<std::shared_ptr<tcp::acceptor>> Listen(const asio::any_io_executor& ex,
                                                   const PortForwardOptions& o) {
  std::vector<std::shared_ptr<tcp::acceptor>> out;
  auto addr = asio::ip::make_address(o.address);
  for (const auto& p : o.ports) {
    auto a = std::make_shared<tcp::acceptor>(ex);
    tcp::endpoint ep(addr, p.local);
    boost::system::error_code ec;
    a->open(ep.protocol(), ec);
    if (!ec) a->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) a->bind(ep, ec);
    if (!ec) a->listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      throw Error(Code::kUnavailable,
                  "listen on " + o.address + ":" + std::to_string(p.local) + ": " + ec.message());
    out.push_back(a);
  }
  for (size_t i = 0; i < out.size(); ++i)
    if (o.listening) o.listening(out[i]->local_endpoint().port(), o.ports[i].remote);
  return out;
}

const std::vector<std::string> kSpdyProtocols = {"portforward.k8s.io"};
const std::string kWsProtocols = "v4.channel.k8s.io, portforward.k8s.io";

void Report(const PortForwardOptions& o, uint16_t port, const std::string& what) {
  if (o.connection_error) o.connection_error("port " + std::to_string(port) + ": " + what);
}

// SPDY: the streams of every local connection, by stream id.
struct SpdyState {
  struct Ref {
    std::shared_ptr<Local> l;
    bool error = false;
    uint16_t port = 0;
  };
  std::map<uint32_t, Ref> streams;
  uint64_t next_request = 0;
};

template <class S>
awaitable<void> SpdyAccept(std::shared_ptr<SpdyConn<S>> c, std::shared_ptr<SpdyState> st,
                           std::shared_ptr<tcp::acceptor> a, uint16_t port) {
  while (!c->Dead()) {
    boost::system::error_code ec;
    tcp::socket sock = co_await a->async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::operation_aborted || c->Dead()) co_return;
    if (ec) continue;
    sock.set_option(tcp::no_delay(true), ec);
    auto l = std::make_shared<Local>(std::move(sock));
    std::string rid = std::to_string(st->next_request++), p = std::to_string(port);
    uint32_t error = c->Open({{"streamtype", "error"}, {"port", p}, {"requestid", rid}}, true);
    uint32_t data = c->Open({{"streamtype", "data"}, {"port", p}, {"requestid", rid}}, false);
    l->written = [c, data](size_t n) {
      c->Control(spdy::WindowUpdate(data, static_cast<uint32_t>(n)));
      c->Control(spdy::WindowUpdate(0, static_cast<uint32_t>(n)));
    };
    st->streams[data] = {l, false, port};
    st->streams[error] = {l, true, port};
    asio::co_spawn(a->get_executor(),
                   LocalReadLoop(
                       l, [c, data](std::string d) { c->Data(data, d, d.empty()); },
                       [c] { return c->Queued(); }, &c->Drained()),
                   asio::detached);
  }
}

template <class S>
awaitable<void> SpdyPortForward(S s, const Url& u, const PortForwardOptions& o,
                                const std::vector<std::shared_ptr<tcp::acceptor>>& acceptors) {
  std::string already;
  co_await SpdyConn<S>::Upgrade(s, u, kSpdyProtocols, &already);
  auto c = std::make_shared<SpdyConn<S>>(std::move(s), std::move(already));
  c->Start();
  // Flow control towards us: the server sends no more than we pass on to the local sockets.
  c->Control(spdy::Settings({{spdy::kSettingsInitialWindowSize, kWindow}}));
  c->Control(spdy::WindowUpdate(0, 0x7fffffffu - spdy::kInitialWindow));
  auto st = std::make_shared<SpdyState>();
  for (size_t i = 0; i < acceptors.size(); ++i)
    asio::co_spawn(acceptors[i]->get_executor(), SpdyAccept(c, st, acceptors[i], o.ports[i].remote),
                   asio::detached);
  std::function<bool(spdy::Frame&)> on = [&](spdy::Frame& f) {
    if (f.type != spdy::Type::kData && f.type != spdy::Type::kRstStream) return true;
    auto it = st->streams.find(f.stream_id);
    if (it == st->streams.end()) return true;
    auto ref = it->second;
    if (f.type == spdy::Type::kRstStream) {
      ref.l->Close();
      st->streams.erase(it);
      return true;
    }
    if (ref.error) {
      ref.l->error += f.data;
    } else if (!f.data.empty()) {
      ref.l->Push(std::move(f.data));
    }
    if (!f.fin()) return true;
    if (ref.error && !ref.l->error.empty()) {
      Report(o, ref.port, ref.l->error);
      ref.l->Close();
    } else if (!ref.error) {
      ref.l->RemoteEof();
    }
    st->streams.erase(it);
    return true;
  };
  co_await c->ReadFrames(on);
  for (auto& [id, ref] : st->streams) ref.l->Close();
  c->Close();
  throw Error(Code::kUnavailable, "the port-forward session with " + u.host_header + " ended");
}

template <class Next>
awaitable<void> WsForward(Next s, const Url& u, std::shared_ptr<Local> l, uint16_t port,
                          const PortForwardOptions& o) {
  auto c = std::make_shared<WsConn<Next>>(std::move(s));
  co_await c->Handshake(u, kWsProtocols);
  c->Start();
  auto ex = co_await asio::this_coro::executor;
  asio::co_spawn(ex,
                 LocalReadLoop(
                     l,
                     [c](std::string d) {
                       if (!d.empty()) c->Send(0, d);
                     },
                     [c] { return c->Queued(); }, &c->Drained()),
                 asio::detached);
  bool prefix[2] = {true, true};  // the first message of each channel starts with the port
  std::string error;
  std::function<void(int, std::string_view)> on = [&](int ch, std::string_view d) {
    if (ch != 0 && ch != 1) return;
    if (prefix[ch]) {
      prefix[ch] = false;
      d.remove_prefix(std::min<size_t>(2, d.size()));
    }
    if (ch == 1) {
      error.append(d);
    } else if (!d.empty()) {
      l->Push(std::string(d));
    }
  };
  co_await c->ReadMessages(on);
  c->Close();
  if (!error.empty()) {
    Report(o, port, error);
    l->Close();
  } else {
    l->close_at_eof = true;  // a WebSocket carries no half-close: nothing more can be sent
    l->RemoteEof();
  }
}

awaitable<void> WsForwardOne(std::shared_ptr<Local> l, uint16_t port, const PortForwardOptions& o) {
  try {
    std::string url = o.new_url();
    url += (url.find('?') == std::string::npos ? "?port=" : "&port=") + std::to_string(port);
    Url u = ParseUrl(url);
    auto run = [&](auto s) -> awaitable<void> { co_await WsForward(std::move(s), u, l, port, o); };
    co_await Dial(u, o.tls, run);
  } catch (const std::exception& e) {
    Report(o, port, e.what());
    l->Close();
  }
}

awaitable<void> WsAccept(std::shared_ptr<tcp::acceptor> a, uint16_t port,
                         const PortForwardOptions& o) {
  while (true) {
    boost::system::error_code ec;
    tcp::socket sock = co_await a->async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) continue;
    sock.set_option(tcp::no_delay(true), ec);
    auto l = std::make_shared<Local>(std::move(sock));
    asio::co_spawn(a->get_executor(), WsForwardOne(l, port, o), asio::detached);
  }
}

}  // namespace

void RunPortForward(const PortForwardOptions& o) {
  asio::io_context ctx(1);
  auto acceptors = Listen(ctx.get_executor(), o);
  asio::signal_set sigs(ctx, SIGINT, SIGTERM);
  sigs.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) ctx.stop();
  });
  if (o.transport == Transport::kWebSocket) {
    for (size_t i = 0; i < acceptors.size(); ++i)
      asio::co_spawn(ctx, WsAccept(acceptors[i], o.ports[i].remote, o), asio::detached);
    ctx.run();
    return;
  }
  Url u = ParseUrl(o.new_url());
  auto run = [&](auto s) -> awaitable<void> {
    co_await SpdyPortForward(std::move(s), u, o, acceptors);
  };
  RunLoop(ctx, Dial(u, o.tls, run));
}

}  // namespace berth::streaming::client
