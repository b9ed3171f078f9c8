// remotecommand and port-forward over WebSocket (RFC 6455), as kubelet's streaming server speaks
// them: every message starts with its channel byte (a digit with the base64 protocols).
#include "streaming/protocols.h"

#include <unistd.h>

#include <boost/beast/core/detail/base64.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <map>
#include <set>

#include "common/error.h"

namespace berth::streaming {

namespace beast = boost::beast;
namespace websocket = beast::websocket;

namespace {

const std::vector<std::string> kCommandProtocols = {"v5.channel.k8s.io", "v4.channel.k8s.io",
                                                    "v4.base64.channel.k8s.io", "channel.k8s.io",
                                                    "base64.channel.k8s.io"};
const std::vector<std::string> kPortForwardProtocols = {"v4.channel.k8s.io", "portforward.k8s.io",
                                                        "v4.base64.channel.k8s.io"};
constexpr int kCloseSignal = 255;
constexpr size_t kWsWriteBuffer = 256u << 10;  // v5: the client closed one of its channels

std::string B64Encode(std::string_view s) {
  std::string out(beast::detail::base64::encoded_size(s.size()), '\0');
  out.resize(beast::detail::base64::encode(out.data(), s.data(), s.size()));
  return out;
}
std::string B64Decode(std::string_view s) {
  std::string out(beast::detail::base64::decoded_size(s.size()), '\0');
  auto r = beast::detail::base64::decode(out.data(), s.data(), s.size());
  out.resize(r.first);
  return out;
}

// NextLayer: beast::tcp_stream, or TlsStream.
template <class NextLayer>
class WsSession : public CommandSink, public std::enable_shared_from_this<WsSession<NextLayer>> {
 public:
  WsSession(websocket::stream<NextLayer> ws, SessionParams p, std::string protocol)
      : ws_(std::move(ws)),
        p_(std::move(p)),
        protocol_(std::move(protocol)),
        base64_(protocol_.find("base64") != std::string::npos),
        wake_(ws_.get_executor()),
        drained_(ws_.get_executor()),
        budget_(std::make_shared<InputBudget>(ws_.get_executor())) {}

  awaitable<void> Run() {
    auto self = this->shared_from_this();
    asio::co_spawn(
        ws_.get_executor(), [self] { return self->Writer(); }, asio::detached);
    if (p_.idle_timeout.count() > 0)
      asio::co_spawn(
          ws_.get_executor(), [self] { return self->IdleWatch(); }, asio::detached);
    if (p_.req.kind == Request::Kind::kPortForward) {
      StartPorts();
    } else {
      StartCommand();
    }
    co_await Reader();
    dead_ = true;
    if (runner_) runner_->ClientGone();
    for (auto& pp : pipes_)
      if (pp) pp->Close();
    wake_.Notify();
    drained_.Notify();
    budget_->Wake();
  }

  void Output(int channel, std::string data) override { Send(channel, std::move(data)); }
  void CloseOutput(int channel) override {}
  size_t Queued() const override { return queued_; }
  Event& Drained() override { return drained_; }
  void Finish(int exit_code, const std::string& error) override {
    std::string status = ExitStatus(
        protocol_.rfind("v4.", 0) == 0 || protocol_.rfind("v5.", 0) == 0, exit_code, error);
    if (!status.empty()) Send(kError, status);
    closing_ = true;
    wake_.Notify();
  }

 private:
  void Send(int channel, std::string data) {
    std::string m;
    if (base64_) {
      m = std::string(1, char('0' + channel)) + B64Encode(data);
    } else {
      m = std::string(1, char(channel)) + data;
    }
    queued_ += m.size();
    out_.push_back(std::move(m));
    wake_.Notify();
  }

  awaitable<void> Writer() {
    ws_.text(base64_);
    ws_.binary(!base64_);
    while (!dead_) {
      if (out_.empty()) {
        if (closing_) break;
        co_await wake_.Wait();
        continue;
      }
      std::string m = std::move(out_.front());
      out_.pop_front();
      queued_ -= m.size();
      drained_.Notify();
      boost::system::error_code ec;
      co_await ws_.async_write(asio::buffer(m), asio::redirect_error(use_awaitable, ec));
      active_ = true;
      if (ec) {
        dead_ = true;
        break;
      }
    }
    if (closing_ && !dead_) {
      boost::system::error_code ec;
      websocket::close_reason reason(websocket::close_code::normal);
      co_await ws_.async_close(reason, asio::redirect_error(use_awaitable, ec));
    }
  }

  awaitable<void> Reader() {
    while (!dead_) {
      co_await budget_->Room(dead_);  // the pod is slower than the client: hold the client back
      if (dead_) break;
      beast::flat_buffer buf;
      boost::system::error_code ec;
      co_await ws_.async_read(buf, asio::redirect_error(use_awaitable, ec));
      if (ec) break;
      active_ = true;
      std::string_view m(static_cast<const char*>(buf.data().data()), buf.size());
      if (m.empty()) continue;
      int ch = static_cast<unsigned char>(m[0]);
      std::string data(m.substr(1));
      if (base64_) {
        ch -= '0';
        data = B64Decode(data);
      }
      if (p_.req.kind == Request::Kind::kPortForward) {
        OnPortData(ch, std::move(data));
      } else {
        OnCommandData(ch, std::move(data));
      }
    }
  }

  // A connection with no message either way for idle_timeout is closed (as SPDY's are).
  awaitable<void> IdleWatch() {
    asio::steady_timer t(ws_.get_executor());
    while (!dead_) {
      active_ = false;
      t.expires_after(p_.idle_timeout);
      boost::system::error_code ec;
      co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
      if (!active_ && !dead_) {
        dead_ = true;
        beast::get_lowest_layer(ws_).close();
      }
    }
  }

  void StartCommand() {
    runner_ = std::make_shared<CommandRunner>(ws_.get_executor(), p_.req, p_.req.command,
                                              std::weak_ptr<CommandSink>(this->shared_from_this()),
                                              budget_);
    // An empty message on the lowest channel we write tells the client that the session is up.
    const auto& o = p_.req.command;
    Send(o.stdout ? kStdout : o.stderr ? kStderr : kError, "");
    runner_->Start();
  }

  void OnCommandData(int ch, std::string data) {
    if (ch == kStdin) {
      runner_->Stdin(std::move(data));
    } else if (ch == kResize) {
      runner_->ResizeJson(data);
    } else if (ch == kCloseSignal && protocol_ == "v5.channel.k8s.io" && !data.empty() &&
               data[0] == kStdin) {
      runner_->StdinEof();
    }
  }

  // port-forward: channel 2i carries port i's data, 2i+1 its errors; the first message of each
  // channel is the port (uint16, little endian).
  void StartPorts() {
    std::vector<uint16_t> ports;
    for (const auto& v : QueryValues(p_.query, "port")) {
      long n = std::atol(v.c_str());
      if (n <= 0 || n > 65535 || v.find_first_not_of("0123456789") != std::string::npos) {
        Send(1, "invalid port " + v + ": not in 1..65535");
        closing_ = true;
        return;
      }
      ports.push_back(static_cast<uint16_t>(n));
    }
    if (ports.empty()) ports = p_.req.ports;
    if (ports.empty()) {
      Send(1, "query parameter \"port\" is required");
      closing_ = true;
      return;
    }
    pipes_.resize(ports.size());
    open_ = ports.size();
    for (size_t i = 0; i < ports.size(); ++i) {
      std::string prefix = {char(ports[i] & 0xff), char(ports[i] >> 8)};
      Send(int(2 * i), prefix);
      Send(int(2 * i + 1), prefix);
      asio::co_spawn(
          ws_.get_executor(),
          [self = this->shared_from_this(), i, port = ports[i]]() { return self->Dial(i, port); },
          asio::detached);
    }
  }

  awaitable<void> Dial(size_t i, uint16_t port) {
    std::string err;
    auto ex = ws_.get_executor();
    int fd = co_await DialOffThread(ex, p_.req.dial, port, &err);
    if (dead_) {
      if (fd >= 0) ::close(fd);
      co_return;
    }
    if (fd < 0) {
      DropEarly(i);
      no_port_.insert(i);
      Send(int(2 * i + 1), "error forwarding port " + std::to_string(port) + ": " + err);
      PortDone();
      co_return;
    }
    auto self = this->shared_from_this();
    pipes_[i] = std::make_shared<PortPipe>(
        ws_.get_executor(), fd,
        [self, i](std::string d) {
          if (d.empty()) {
            self->PortDone();
          } else {
            self->Send(int(2 * i), std::move(d));
          }
        },
        [self] { return self->queued_; }, &drained_, budget_);
    pipes_[i]->Start();
    std::vector<std::string> early = std::move(early_[i]);
    DropEarly(i);
    for (auto& d : early) pipes_[i]->Input(std::move(d));
  }

  // Data for port i that came while it was dialled no longer counts (sent on, or dropped).
  void DropEarly(size_t i) {
    auto it = early_.find(i);
    if (it == early_.end()) return;
    for (const auto& d : it->second) budget_->Give(d.size());
    early_.erase(it);
  }

  void PortDone() {
    if (open_ > 0 && --open_ == 0) {
      closing_ = true;
      wake_.Notify();
    }
  }

  void OnPortData(int ch, std::string data) {
    if (ch < 0 || ch % 2 != 0 || size_t(ch / 2) >= pipes_.size()) return;
    size_t i = ch / 2;
    if (pipes_[i]) {
      pipes_[i]->Input(std::move(data));
    } else if (!no_port_.count(i) && !data.empty()) {
      budget_->Take(data.size());
      early_[i].push_back(std::move(data));
    }
  }

  websocket::stream<NextLayer> ws_;
  SessionParams p_;
  std::string protocol_;
  bool base64_;
  Event wake_, drained_;
  std::deque<std::string> out_;
  size_t queued_ = 0;
  bool closing_ = false, dead_ = false, active_ = false;
  std::shared_ptr<CommandRunner> runner_;
  std::vector<std::shared_ptr<PortPipe>> pipes_;
  std::map<size_t, std::vector<std::string>> early_;
  std::set<size_t> no_port_;
  std::shared_ptr<InputBudget> budget_;
  size_t open_ = 0;
};

template <class NextLayer>
awaitable<void> UpgradeWebSocket(NextLayer& s, HttpRequest& req, SessionParams p) {
  const auto& ours =
      p.req.kind == Request::Kind::kPortForward ? kPortForwardProtocols : kCommandProtocols;
  std::string protocol = Negotiate(p.offered, ours);
  bool echo = !protocol.empty();
  if (protocol.empty())
    protocol = p.req.kind == Request::Kind::kPortForward ? "portforward.k8s.io" : "channel.k8s.io";
  websocket::stream<NextLayer> ws(std::move(s));
  ws.set_option(websocket::stream_base::decorator([protocol, echo](websocket::response_type& res) {
    if (echo) res.set(beast::http::field::sec_websocket_protocol, protocol);
  }));
  ws.read_message_max(16u << 20);
  ws.write_buffer_bytes(kWsWriteBuffer);  // frames as large as the messages (4 KiB by default)
  boost::system::error_code ec;
  co_await ws.async_accept(req, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return;
  auto session = std::make_shared<WsSession<NextLayer>>(std::move(ws), std::move(p), protocol);
  co_await session->Run();
}

}  // namespace

awaitable<void> ServeWebSocket(beast::tcp_stream s, HttpRequest req, SessionParams p) {
  co_await UpgradeWebSocket(s, req, std::move(p));
}

awaitable<void> ServeWebSocket(TlsStream s, HttpRequest req, SessionParams p) {
  co_await UpgradeWebSocket(s, req, std::move(p));
}

}  // namespace berth::streaming
