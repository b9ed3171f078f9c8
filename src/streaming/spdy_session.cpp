// remotecommand and port-forward over SPDY/3.1, as kubelet's streaming server speaks them.
#include "streaming/protocols.h"

#include <unistd.h>

#include <map>

#include "common/error.h"
#include "streaming/spdy.h"

namespace berth::streaming {

namespace beast = boost::beast;
using tcp = asio::ip::tcp;

namespace {

const std::vector<std::string> kCommandProtocols = {"v4.channel.k8s.io", "v3.channel.k8s.io",
                                                    "v2.channel.k8s.io", "channel.k8s.io"};
const std::vector<std::string> kPortForwardProtocols = {"portforward.k8s.io"};
constexpr uint32_t kReceiveWindow = 8u << 20;

int ChannelOf(const std::string& type) {
  if (type == "stdin") return kStdin;
  if (type == "stdout") return kStdout;
  if (type == "stderr") return kStderr;
  if (type == "error") return kError;
  if (type == "resize") return kResize;
  return -1;
}

// Half-closes the sending side: FIN on plain TCP. With TLS nothing is done: the client closes
// once it has read what it waits for, and the connection is closed then (or after the linger).
void ShutdownSend(tcp::socket& s) {
  boost::system::error_code ec;
  s.shutdown(tcp::socket::shutdown_send, ec);
}
void ShutdownSend(TlsStream&) {}
void CloseSocket(tcp::socket& s) {
  boost::system::error_code ec;
  s.close(ec);
}
void CloseSocket(TlsStream& s) { beast::get_lowest_layer(s).close(); }

// Sock: tcp::socket, or TlsStream.
template <class Sock>
class SpdySession : public CommandSink, public std::enable_shared_from_this<SpdySession<Sock>> {
 public:
  SpdySession(Sock s, std::string already, SessionParams p, std::string protocol)
      : sock_(std::move(s)),
        in_(std::move(already)),
        p_(std::move(p)),
        protocol_(std::move(protocol)),
        wake_(sock_.get_executor()),
        window_(sock_.get_executor()),
        drained_(sock_.get_executor()),
        idle_(sock_.get_executor()),
        creation_(sock_.get_executor()),
        linger_(sock_.get_executor()),
        budget_(std::make_shared<InputBudget>(sock_.get_executor())) {}

  awaitable<void> Run() {
    // Our receive windows, for clients that honour them: large, since what a client sends is
    // bounded by the session's input budget (kubelet's spdystream honours none).
    QueueUrgent(spdy::Settings({{spdy::kSettingsInitialWindowSize, kReceiveWindow}}));
    QueueUrgent(spdy::WindowUpdate(0, kReceiveWindow - spdy::kInitialWindow));
    auto self = this->shared_from_this();
    asio::co_spawn(
        sock_.get_executor(), [self] { return self->Writer(); }, asio::detached);
    if (p_.idle_timeout.count() > 0)
      asio::co_spawn(
          sock_.get_executor(), [self] { return self->IdleWatch(); }, asio::detached);
    if (Command())
      asio::co_spawn(
          sock_.get_executor(), [self] { return self->CreationWatch(); }, asio::detached);
    co_await Reader();
    Shutdown();
  }

  // CommandSink
  void Output(int channel, std::string data) override {
    if (auto id = StreamFor(channel)) QueueData(id, std::move(data), false);
  }
  void CloseOutput(int channel) override {
    if (auto id = StreamFor(channel)) QueueData(id, "", true);
  }
  size_t Queued() const override { return queued_; }
  Event& Drained() override { return drained_; }
  void Finish(int exit_code, const std::string& error) override {
    std::string status = ExitStatus(protocol_ == "v4.channel.k8s.io", exit_code, error);
    if (auto id = StreamFor(kError)) {
      if (!status.empty()) QueueData(id, status, false);
    }
    for (auto& [id, st] : streams_)
      if (!st.local_fin) QueueData(id, "", true);
    QueueControl(spdy::GoAway(last_id_, 0));
    closing_ = true;
    wake_.Notify();
  }

 private:
  struct Stream {
    std::string type;
    int channel = -1;
    bool local_fin = false, remote_fin = false;
    std::shared_ptr<PortPipe> pipe;  // port-forward data streams
    uint32_t pair = 0;               // port-forward: the other stream of the request
    std::string early;               // port-forward: data that came while the port was dialled
    bool no_port = false;            // port-forward: the port could not be dialled
  };
  struct Out {
    uint32_t id = 0;  // 0: control bytes
    std::string bytes;
    bool fin = false;
  };

  bool Command() const { return p_.req.kind != Request::Kind::kPortForward; }

  uint32_t StreamFor(int channel) {
    for (auto& [id, st] : streams_)
      if (st.channel == channel && Command()) return id;
    return 0;
  }

  void QueueControl(std::string bytes) {
    queued_ += bytes.size();
    out_.push_back({0, std::move(bytes), false});
    wake_.Notify();
  }
  // Window updates, settings and ping replies go ahead of queued data, which may wait for the
  // client's windows while the client waits for ours.
  void QueueUrgent(std::string bytes) {
    queued_ += bytes.size();
    urgent_.push_back(std::move(bytes));
    wake_.Notify();
    window_.Notify();
  }
  void QueueData(uint32_t id, std::string data, bool fin) {
    auto it = streams_.find(id);
    if (it == streams_.end() || it->second.local_fin) return;
    if (fin) it->second.local_fin = true;
    queued_ += data.size();
    out_.push_back({id, std::move(data), fin});
    wake_.Notify();
  }

  awaitable<void> Writer() {
    while (!dead_) {
      std::string frame;
      if (!urgent_.empty()) {
        frame = std::move(urgent_.front());
        urgent_.pop_front();
        queued_ -= frame.size();
        co_await Write(frame);
        continue;
      }
      if (out_.empty()) {
        if (closing_) break;
        co_await wake_.Wait();
        continue;
      }
      Out& o = out_.front();
      if (o.id == 0) {
        frame = std::move(o.bytes);
        queued_ -= frame.size();
        out_.pop_front();
      } else {
        size_t n = windows_.Allowed(o.id, std::min<size_t>(o.bytes.size(), 64 * 1024));
        if (n == 0 && !o.bytes.empty()) {
          co_await window_.Wait();
          continue;
        }
        bool last = n == o.bytes.size();
        frame = spdy::Data(o.id, std::string_view(o.bytes).substr(0, n), last && o.fin);
        windows_.Charge(o.id, n);
        queued_ -= n;
        if (last) {
          out_.pop_front();
        } else {
          o.bytes.erase(0, n);
        }
      }
      co_await Write(frame);
    }
    boost::system::error_code ec;
    if (closing_ && !dead_) {
      // Everything is written: the client reads it and closes the connection (its frames
      // meanwhile are read and dropped). One that does not gets end of file after a grace
      // period (at once, some clients drop what they had read but not yet handed on), and is
      // cut off after a minute.
      linger_.expires_after(std::chrono::seconds(2));
      co_await linger_.async_wait(asio::redirect_error(use_awaitable, ec));
    }
    ShutdownSend(sock_);
    if (closing_ && !dead_) {
      linger_.expires_after(std::chrono::minutes(1));
      co_await linger_.async_wait(asio::redirect_error(use_awaitable, ec));
      Close();
    }
  }

  awaitable<void> Write(const std::string& frame) {
    drained_.Notify();
    boost::system::error_code ec;
    co_await asio::async_write(sock_, asio::buffer(frame), asio::redirect_error(use_awaitable, ec));
    active_ = true;
    if (ec) dead_ = true;
  }

  void Close() { CloseSocket(sock_); }

  awaitable<void> Reader() {
    std::vector<char> buf(64 * 1024);
    while (!dead_) {
      spdy::Frame f;
      std::string err;
      uint32_t rst = 0;
      auto r = parser_.Next(in_, &f, &err, &rst);
      if (r == spdy::Parser::Result::kError) {
        if (rst) {
          QueueControl(spdy::RstStream(rst, spdy::kProtocolError));
          continue;
        }
        QueueControl(spdy::GoAway(last_id_, 1));
        break;
      }
      if (r == spdy::Parser::Result::kFrame) {
        active_ = true;
        Handle(f);
        continue;
      }
      co_await budget_->Room(dead_);  // the pod is slower than the client: hold the client back
      if (dead_) break;
      boost::system::error_code ec;
      size_t n = co_await sock_.async_read_some(asio::buffer(buf),
                                                asio::redirect_error(use_awaitable, ec));
      if (ec) break;
      in_.append(buf.data(), n);
    }
  }

  void Handle(spdy::Frame& f) {
    switch (f.type) {
      case spdy::Type::kSynStream:
        OnSynStream(f);
        break;
      case spdy::Type::kData:
        OnData(f);
        break;
      case spdy::Type::kRstStream:
        OnRemoteEnd(f.stream_id, true);
        break;
      case spdy::Type::kSettings:
      case spdy::Type::kWindowUpdate:
        windows_.OnFrame(f);
        window_.Notify();
        break;
      case spdy::Type::kPing:
        if (f.value & 1) QueueUrgent(spdy::Ping(f.value));
        break;
      case spdy::Type::kGoAway:
      default:
        break;
    }
  }

  void OnSynStream(spdy::Frame& f) {
    if (f.stream_id % 2 == 0 || f.stream_id <= last_id_ || closing_) {
      QueueControl(spdy::RstStream(f.stream_id, spdy::kProtocolError));
      return;
    }
    last_id_ = f.stream_id;
    if (streams_.size() >= 4096) {
      QueueControl(spdy::RstStream(f.stream_id, spdy::kRefusedStream));
      return;
    }
    Stream st;
    st.type = spdy::Get(f.headers, "streamtype");
    windows_.Open(f.stream_id);
    st.remote_fin = f.fin();
    if (Command()) st.channel = ChannelOf(st.type);
    streams_[f.stream_id] = std::move(st);
    QueueControl(
        spdy::SynReply(hw_, f.stream_id, {{":status", "200"}, {":version", "HTTP/1.1"}}, false));
    if (Command()) {
      MaybeStartCommand();
      if (f.fin()) OnRemoteEnd(f.stream_id, false);
    } else {
      OnPortStream(f.stream_id, f.headers);
    }
  }

  void OnData(spdy::Frame& f) {
    auto it = streams_.find(f.stream_id);
    if (it == streams_.end()) {
      QueueControl(spdy::RstStream(f.stream_id, spdy::kInvalidStream));
      return;
    }
    if (!f.data.empty()) {
      // Our receive windows open again at once: the data goes on to its destination's queue
      // (which holds the client back through TCP when the pod reads slower).
      QueueUrgent(spdy::WindowUpdate(f.stream_id, static_cast<uint32_t>(f.data.size())));
      QueueUrgent(spdy::WindowUpdate(0, static_cast<uint32_t>(f.data.size())));
      Stream& st = it->second;
      if (Command() && runner_) {
        if (st.channel == kStdin) runner_->Stdin(std::move(f.data));
        if (st.channel == kResize) runner_->ResizeJson(f.data);
      } else if (Command() && st.channel == kStdin) {
        budget_->Take(f.data.size());
        early_stdin_ += f.data;
      } else if (st.pipe) {
        st.pipe->Input(std::move(f.data));
      } else if (!Command() && st.type == "data" && !st.no_port) {
        budget_->Take(f.data.size());
        st.early += f.data;  // the port is still being dialled
      }
    }
    if (f.fin()) OnRemoteEnd(f.stream_id, false);
  }

  void OnRemoteEnd(uint32_t id, bool reset) {
    auto it = streams_.find(id);
    if (it == streams_.end()) return;
    it->second.remote_fin = true;
    if (reset) it->second.local_fin = true;
    if (Command()) {
      if (it->second.channel == kStdin) {
        if (runner_) {
          runner_->StdinEof();
        } else {
          early_eof_ = true;
        }
      }
    } else if (it->second.pipe) {
      if (reset) {
        it->second.pipe->Close();
      } else {
        it->second.pipe->InputEof();
      }
    }
  }

  // remotecommand: the command starts once the streams the request asked for are there.
  void MaybeStartCommand() {
    if (runner_) return;
    auto has = [&](int ch) { return StreamFor(ch) != 0; };
    const auto& o = p_.req.command;
    bool resize_expected =
        o.tty && protocol_ != "v2.channel.k8s.io" && protocol_ != "channel.k8s.io";
    if (!has(kError) || (o.stdin && !has(kStdin)) || (o.stdout && !has(kStdout)) ||
        (o.stderr && !has(kStderr)) || (resize_expected && !has(kResize)))
      return;
    CommandOptions opts = o;
    runner_ = std::make_shared<CommandRunner>(sock_.get_executor(), p_.req, opts,
                                              std::weak_ptr<CommandSink>(this->shared_from_this()),
                                              budget_);
    runner_->Start();
    budget_->Give(early_stdin_.size());
    if (!early_stdin_.empty()) runner_->Stdin(std::move(early_stdin_));
    if (early_eof_) runner_->StdinEof();
  }

  // port-forward: a data and an error stream per requestID; the port is dialled once both are in.
  void OnPortStream(uint32_t id, const spdy::Headers& h) {
    std::string type = spdy::Get(h, "streamtype");
    std::string request_id = spdy::Get(h, "requestid");
    if (request_id.empty()) request_id = std::to_string(type == "data" ? id - 2 : id);
    std::string port_s = spdy::Get(h, "port");
    auto& pr = pairs_[request_id];
    if (type == "data") {
      pr.data = id;
    } else if (type == "error") {
      pr.error = id;
    } else {
      QueueControl(spdy::RstStream(id, spdy::kProtocolError));
      return;
    }
    if (!pr.data || !pr.error || pr.started) return;
    pr.started = true;
    streams_[pr.data].pair = pr.error;
    long port = std::atol(port_s.c_str());
    if (port <= 0 || port > 65535 || port_s.find_first_not_of("0123456789") != std::string::npos) {
      NoPort(pr.data);
      QueueData(pr.error, "invalid port " + port_s + ": not in 1..65535", true);
      QueueData(pr.data, "", true);
      return;
    }
    asio::co_spawn(
        sock_.get_executor(),
        [self = this->shared_from_this(), data = pr.data, error = pr.error, port]() {
          return self->Forward(data, error, static_cast<uint16_t>(port));
        },
        asio::detached);
  }

  awaitable<void> Forward(uint32_t data, uint32_t error, uint16_t port);

  // A data stream whose port cannot be reached: what came early and what comes later is dropped.
  void NoPort(uint32_t data) {
    auto it = streams_.find(data);
    if (it == streams_.end()) return;
    it->second.no_port = true;
    budget_->Give(it->second.early.size());
    it->second.early.clear();
  }

  awaitable<void> IdleWatch() {
    asio::steady_timer t(sock_.get_executor());
    while (!dead_) {
      active_ = false;
      t.expires_after(p_.idle_timeout);
      boost::system::error_code ec;
      co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
      if (!active_ && !dead_) {
        dead_ = true;
        Close();
      }
    }
  }

  awaitable<void> CreationWatch() {
    asio::steady_timer t(sock_.get_executor());
    t.expires_after(p_.stream_creation_timeout);
    boost::system::error_code ec;
    co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
    if (!runner_ && !dead_) {
      dead_ = true;
      Close();
    }
  }

  void Shutdown() {
    dead_ = true;
    if (runner_) runner_->ClientGone();
    for (auto& [id, st] : streams_)
      if (st.pipe) st.pipe->Close();
    wake_.Notify();
    window_.Notify();
    drained_.Notify();
    budget_->Wake();
    linger_.cancel();
  }

  struct Pair {
    uint32_t data = 0, error = 0;
    bool started = false;
  };

  Sock sock_;
  std::string in_;
  SessionParams p_;
  std::string protocol_;
  spdy::Parser parser_;
  spdy::HeaderWriter hw_;
  std::map<uint32_t, Stream> streams_;
  std::map<std::string, Pair> pairs_;
  std::deque<Out> out_;
  std::deque<std::string> urgent_;
  size_t queued_ = 0;
  Event wake_, window_, drained_, idle_, creation_;
  asio::steady_timer linger_;
  bool closing_ = false, dead_ = false, active_ = false, early_eof_ = false;
  spdy::SendWindows windows_;  // the client's
  uint32_t last_id_ = 0;
  std::shared_ptr<CommandRunner> runner_;
  std::string early_stdin_;
  std::shared_ptr<InputBudget> budget_;
};

template <class Sock>
awaitable<void> SpdySession<Sock>::Forward(uint32_t data, uint32_t error, uint16_t port) {
  std::string err;
  auto ex = sock_.get_executor();
  int fd = co_await DialOffThread(ex, p_.req.dial, port, &err);
  if (dead_) {
    if (fd >= 0) ::close(fd);
    co_return;
  }
  if (fd < 0) {
    NoPort(data);
    QueueData(error, "error forwarding port " + std::to_string(port) + ": " + err, true);
    QueueData(data, "", true);
    co_return;
  }
  auto self = this->shared_from_this();
  auto pipe = std::make_shared<PortPipe>(
      sock_.get_executor(), fd,
      [self, data, error](std::string d) {
        if (!d.empty()) {
          self->QueueData(data, std::move(d), false);
          return;
        }
        self->QueueData(data, "", true);
        self->QueueData(error, "", true);
      },
      [self] { return self->queued_; }, &drained_, budget_);
  auto it = streams_.find(data);
  if (it == streams_.end()) {
    pipe->Close();
    co_return;
  }
  it->second.pipe = pipe;
  pipe->Start();
  budget_->Give(it->second.early.size());
  if (!it->second.early.empty()) pipe->Input(std::move(it->second.early));
  if (it->second.remote_fin) pipe->InputEof();
}

// Negotiates, answers 101, and runs the session on the stream `release` makes of `s`.
template <class HttpStream, class Release>
awaitable<void> UpgradeSpdy(HttpStream& s, std::string already, SessionParams p, Release release) {
  const auto& ours =
      p.req.kind == Request::Kind::kPortForward ? kPortForwardProtocols : kCommandProtocols;
  std::string protocol = Negotiate(p.offered, ours);
  boost::system::error_code ec;
  if (protocol.empty() && !p.offered.empty()) {
    std::string body = "unable to upgrade: unable to negotiate protocol: client supports " +
                       [&] {
                         std::string l;
                         for (auto& o : p.offered) l += (l.empty() ? "" : ", ") + o;
                         return l;
                       }() +
                       ", server supports " + ours.front();
    std::string res =
        "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: "
        "close\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    co_await asio::async_write(s, asio::buffer(res), asio::redirect_error(use_awaitable, ec));
    co_return;
  }
  if (protocol.empty())
    protocol = p.req.kind == Request::Kind::kPortForward ? "portforward.k8s.io" : "channel.k8s.io";
  std::string res =
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
      "X-Stream-Protocol-Version: " +
      protocol + "\r\n\r\n";
  co_await asio::async_write(s, asio::buffer(res), asio::redirect_error(use_awaitable, ec));
  if (ec) co_return;
  auto session = std::make_shared<SpdySession<decltype(release())>>(release(), std::move(already),
                                                                    std::move(p), protocol);
  co_await session->Run();
}

}  // namespace

awaitable<void> ServeSpdy(beast::tcp_stream s, std::string already, SessionParams p) {
  co_await UpgradeSpdy(s, std::move(already), std::move(p), [&s] { return s.release_socket(); });
}

awaitable<void> ServeSpdy(TlsStream s, std::string already, SessionParams p) {
  co_await UpgradeSpdy(s, std::move(already), std::move(p), [&s] { return std::move(s); });
}

}  // namespace berth::streaming
