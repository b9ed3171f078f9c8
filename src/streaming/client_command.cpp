// remotecommand (exec, attach) as a client: over SPDY/3.1 one stream per streamType, over
// WebSocket one channel byte per message.
#include "streaming/client_conn.h"

#include <signal.h>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace berth::streaming::client {

namespace {

const std::vector<std::string> kSpdyProtocols = {"v4.channel.k8s.io", "v3.channel.k8s.io",
                                                 "v2.channel.k8s.io", "channel.k8s.io"};
const char* kWsProtocols = "v5.channel.k8s.io, v4.channel.k8s.io";

std::string ResizeJson(TermSize s) {
  return nlohmann::json{{"Width", s.width}, {"Height", s.height}}.dump();
}

// What both transports share: stdin pumped from io.in, the terminal's size sent now and on
// SIGWINCH, output written to io.out/io.err.
class CommandClient {
 public:
  CommandClient(const asio::any_io_executor& ex, const CommandIo& io)
      : io_(io), ex_(ex), winch_(ex) {}
  ~CommandClient() { Stop(); }

  // send_stdin(data) / send_stdin("") at end of file; send_resize(json).
  void Start(std::function<void(std::string)> send_stdin, std::function<void(std::string)> resize,
             std::function<size_t()> queued, Event* drained) {
    if (io_.streams.stdin) {
      pump_ = std::make_shared<InputPump>();
      std::weak_ptr<InputPump> weak = pump_;
      pump_->Start(io_.in, ex_, [ex = ex_, weak, send_stdin, queued, drained](std::string chunk) {
        bool eof = chunk.empty();
        send_stdin(std::move(chunk));
        if (eof) return;
        asio::co_spawn(
            ex,
            [weak, queued, drained]() -> awaitable<void> {
              while (queued() > kMaxQueued) co_await drained->Wait();
              if (auto p = weak.lock()) p->Ack();
            },
            asio::detached);
      });
    }
    if (io_.streams.tty && io_.term_size) {
      resize_ = std::move(resize);
      SendSize();
      winch_.add(SIGWINCH);
      WaitWinch();
    }
  }
  void Stop() {
    if (pump_) pump_->Stop();
    boost::system::error_code ec;
    winch_.cancel(ec);
  }
  void Out(int channel, std::string_view d) {
    if (channel == kStdout) WriteAll(io_.out, d);
    if (channel == kStderr) WriteAll(io_.err, d);
  }

 private:
  void SendSize() {
    TermSize s;
    if (io_.term_size(&s)) resize_(ResizeJson(s));
  }
  void WaitWinch() {
    winch_.async_wait([this](const boost::system::error_code& ec, int) {
      if (ec) return;
      SendSize();
      WaitWinch();
    });
  }

  const CommandIo& io_;
  asio::any_io_executor ex_;
  asio::signal_set winch_;
  std::shared_ptr<InputPump> pump_;
  std::function<void(std::string)> resize_;
};

template <class S>
awaitable<void> SpdyCommand(S s, const Url& u, const CommandIo& io, int* code) {
  std::string already;
  std::string proto = co_await SpdyConn<S>::Upgrade(s, u, kSpdyProtocols, &already);
  auto c = std::make_shared<SpdyConn<S>>(std::move(s), std::move(already));
  c->Start();
  const auto& o = io.streams;
  uint32_t error = c->Open({{"streamtype", "error"}}, true);
  uint32_t in = o.stdin ? c->Open({{"streamtype", "stdin"}}, false) : 0;
  uint32_t out = o.stdout ? c->Open({{"streamtype", "stdout"}}, true) : 0;
  uint32_t err = o.stderr && !o.tty ? c->Open({{"streamtype", "stderr"}}, true) : 0;
  bool resize_ok = o.tty && proto != "v2.channel.k8s.io" && proto != "channel.k8s.io";
  uint32_t resize = resize_ok ? c->Open({{"streamtype", "resize"}}, false) : 0;
  auto ex = co_await asio::this_coro::executor;
  CommandClient cc(ex, io);
  cc.Start([c, in](std::string d) { c->Data(in, d, d.empty()); },
           [c, resize](std::string j) { c->Data(resize, j, false); }, [c] { return c->Queued(); },
           &c->Drained());
  std::string status;
  bool error_fin = false, out_fin = !out, err_fin = !err;
  std::function<bool(spdy::Frame&)> on = [&](spdy::Frame& f) {
    bool fin = f.fin() || f.type == spdy::Type::kRstStream;
    if (f.type == spdy::Type::kData) {
      if (f.stream_id == out) cc.Out(kStdout, f.data);
      if (f.stream_id == err) cc.Out(kStderr, f.data);
      if (f.stream_id == error) status += f.data;
    }
    if (fin && (f.type == spdy::Type::kData || f.type == spdy::Type::kRstStream)) {
      if (f.stream_id == error) error_fin = true;
      if (f.stream_id == out) out_fin = true;
      if (f.stream_id == err) err_fin = true;
    }
    return !(error_fin && out_fin && err_fin);
  };
  bool up = co_await c->ReadFrames(on);
  (void)up;
  cc.Stop();
  c->Close();
  if (!error_fin && status.empty() && !(out_fin && err_fin))
    throw Error(Code::kUnavailable, "the streaming connection ended before the command did");
  *code = ExitCodeFromStatus(status);
}

template <class Next>
awaitable<void> WsCommand(Next s, const Url& u, const CommandIo& io, int* code) {
  auto c = std::make_shared<WsConn<Next>>(std::move(s));
  std::string proto = co_await c->Handshake(u, kWsProtocols);
  c->Start();
  bool v5 = proto == "v5.channel.k8s.io";
  auto ex = co_await asio::this_coro::executor;
  CommandClient cc(ex, io);
  cc.Start(
      [c, v5](std::string d) {
        if (!d.empty()) {
          c->Send(kStdin, d);
        } else if (v5) {
          c->Send(255, std::string(1, char(kStdin)));  // v5's close signal: end of stdin
        }
      },
      [c](std::string j) { c->Send(kResize, j); }, [c] { return c->Queued(); }, &c->Drained());
  std::string status;
  bool got_status = false;
  std::function<void(int, std::string_view)> on = [&](int ch, std::string_view d) {
    if (ch == kError) {
      status.append(d);
      got_status = true;
    } else {
      cc.Out(ch, d);
    }
  };
  co_await c->ReadMessages(on);
  cc.Stop();
  c->Close();
  // From v4 on the error channel always carries a status at the end.
  if (!got_status && (v5 || proto.rfind("v4.", 0) == 0))
    throw Error(Code::kUnavailable, "the streaming connection ended before the command did");
  *code = ExitCodeFromStatus(status);
}

}  // namespace

int RunCommand(const std::string& url, Transport t, const Tls& tls, const CommandIo& io) {
  Url u = ParseUrl(url);
  asio::io_context ctx(1);
  int code = -1;
  auto run = [&](auto s) -> awaitable<void> {
    if (t == Transport::kSpdy) {
      co_await SpdyCommand(std::move(s), u, io, &code);
    } else {
      co_await WsCommand(std::move(s), u, io, &code);
    }
  };
  RunLoop(ctx, Dial(u, tls, run));
  return code;
}

}  // namespace berth::streaming::client
