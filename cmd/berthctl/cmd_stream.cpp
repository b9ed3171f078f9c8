// Streaming commands: exec (streaming, or --sync through ExecSync), attach and port-forward, with
// berth's own client of the streaming protocols (SPDY/3.1 by default, or WebSocket).
#include "runtime/v1/api.grpc.pb.h"  // first: its enum Signal names collide with <signal.h> macros

#include <grpcpp/grpcpp.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "cmd/berthctl/commands.h"
#include "streaming/client.h"

namespace berth::berthctl {

namespace v1 = ::runtime::v1;
namespace sc = streaming::client;

namespace {

std::unique_ptr<v1::RuntimeService::Stub> Stub(Globals& g) {
  return v1::RuntimeService::NewStub(g.Channel());
}

// The flags every streaming command has.
struct StreamFlags {
  std::string transport = "spdy";
  std::string tls_ca;
};

void AddStreamFlags(CLI::App* c, StreamFlags& f) {
  c->add_option("--transport", f.transport, "streaming protocol: spdy or websocket")
      ->check(CLI::IsMember({"spdy", "websocket"}))
      ->capture_default_str();
  c->add_option("--tls-ca", f.tls_ca,
                "PEM certificates to trust for an https:// streaming URL (default: the "
                "certificate berthd reports on its socket)");
}

sc::Transport TransportOf(const StreamFlags& f) {
  return f.transport == "websocket" ? sc::Transport::kWebSocket : sc::Transport::kSpdy;
}

// Whom to trust for an https:// URL: --tls-ca, else exactly the certificate berthd reports on
// its socket (a root-only channel), whatever the URL's host.
sc::Tls TrustFor(Globals& g, const StreamFlags& f, const std::string& url) {
  sc::Tls t;
  if (url.rfind("https://", 0) != 0) return t;
  if (!f.tls_ca.empty()) {
    std::ifstream in(f.tls_ca);
    if (!in) throw std::runtime_error("--tls-ca " + f.tls_ca + ": cannot read it");
    std::stringstream ss;
    ss << in.rdbuf();
    t.trusted_pem = ss.str();
    return t;
  }
  v1::StatusRequest req;
  req.set_verbose(true);
  v1::StatusResponse resp;
  grpc::ClientContext ctx;
  g.Prepare(ctx);
  Check(Stub(g)->Status(&ctx, req, &resp), "status");
  auto it = resp.info().find("streamingCertificate");
  if (it == resp.info().end() || it->second.empty())
    throw std::runtime_error(
        "the streaming URL is https:// but berthd reports no certificate; "
        "pass --tls-ca");
  t.trusted_pem = it->second;
  t.pinned = true;
  return t;
}

// The local terminal in raw mode while a tty session runs; restored on every way out.
class RawTerminal {
 public:
  explicit RawTerminal(bool on) {
    if (!on || !isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios raw = saved_;
    cfmakeraw(&raw);
    active_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }

 private:
  termios saved_{};
  bool active_ = false;
};

bool TerminalSize(streaming::TermSize* s) {
  winsize w{};
  for (int fd : {STDOUT_FILENO, STDIN_FILENO}) {
    if (ioctl(fd, TIOCGWINSZ, &w) == 0 && w.ws_col > 0) {
      s->width = w.ws_col;
      s->height = w.ws_row;
      return true;
    }
  }
  return false;
}

int RunSession(Globals& g, const StreamFlags& f, const std::string& url, bool in, bool tty) {
  sc::CommandIo io;
  io.streams.stdin = in;
  io.streams.stdout = true;
  io.streams.stderr = !tty;
  io.streams.tty = tty;
  if (tty) io.term_size = TerminalSize;
  sc::Tls tls = TrustFor(g, f, url);
  RawTerminal raw(tty && in);
  return sc::RunCommand(url, TransportOf(f), tls, io);
}

void AddExec(CLI::App& app, Globals& g) {
  auto* c = app.add_subcommand(
      "exec", "Run a command in a running container: exec [-i] [-t] [-s] ID -- CMD...");
  struct Opts {
    std::string id;
    std::vector<std::string> cmd;
    bool in = false, tty = false, sync = false;
    int64_t timeout = 0;
    StreamFlags f;
  };
  auto o = std::make_shared<Opts>();
  c->add_flag("-i,--interactive", o->in, "copy stdin to the command");
  c->add_flag("-t,--tty", o->tty, "give the command a terminal (raw mode when stdin is one)");
  c->add_flag("-s,--sync", o->sync, "run through ExecSync: output after the command ended");
  c->add_option("--timeout", o->timeout, "with --sync: seconds before the command is killed");
  AddStreamFlags(c, o->f);
  c->add_option("id", o->id, "container id")->required();
  c->add_option("cmd", o->cmd, "command")->required();
  c->callback([&g, o] {
    if (o->sync || o->timeout > 0) {
      v1::ExecSyncRequest req;
      req.set_container_id(o->id);
      for (const auto& a : o->cmd) req.add_cmd(a);
      req.set_timeout(o->timeout);
      v1::ExecSyncResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(
          std::chrono::system_clock::now() +
          std::chrono::seconds(o->timeout > 0 ? o->timeout + g.timeout_seconds : 24 * 3600));
      Check(Stub(g)->ExecSync(&ctx, req, &resp), "exec in container " + o->id);
      std::cout << resp.stdout();
      std::cerr << resp.stderr();
      std::cout.flush();
      g.exit_code =
          resp.exit_code() == 0 ? 0 : (resp.exit_code() & 0xff ? resp.exit_code() & 0xff : 1);
      return;
    }
    v1::ExecRequest req;
    req.set_container_id(o->id);
    for (const auto& a : o->cmd) req.add_cmd(a);
    req.set_stdin(o->in);
    req.set_stdout(true);
    req.set_stderr(!o->tty);
    req.set_tty(o->tty);
    v1::ExecResponse resp;
    grpc::ClientContext ctx;
    g.Prepare(ctx);
    Check(Stub(g)->Exec(&ctx, req, &resp), "exec in container " + o->id);
    g.exit_code = RunSession(g, o->f, resp.url(), o->in, o->tty);
  });
}

void AddAttach(CLI::App& app, Globals& g) {
  auto* c = app.add_subcommand("attach", "Attach to a running container: attach [-i] [-t] ID");
  struct Opts {
    std::string id;
    bool in = false, tty = false;
    StreamFlags f;
  };
  auto o = std::make_shared<Opts>();
  c->add_flag("-i,--interactive", o->in, "copy stdin to the container");
  c->add_flag("-t,--tty", o->tty, "the container has a terminal (raw mode when stdin is one)");
  AddStreamFlags(c, o->f);
  c->add_option("id", o->id, "container id")->required();
  c->callback([&g, o] {
    v1::AttachRequest req;
    req.set_container_id(o->id);
    req.set_stdin(o->in);
    req.set_stdout(true);
    req.set_stderr(!o->tty);
    req.set_tty(o->tty);
    v1::AttachResponse resp;
    grpc::ClientContext ctx;
    g.Prepare(ctx);
    Check(Stub(g)->Attach(&ctx, req, &resp), "attach to container " + o->id);
    g.exit_code = RunSession(g, o->f, resp.url(), o->in, o->tty);
  });
}

// "[LOCAL:]REMOTE": LOCAL empty (":80") or "0" is a free port; absent, the same as REMOTE.
sc::PortSpec ParsePortSpec(const std::string& s) {
  auto num = [&](const std::string& v, bool zero_ok) -> uint16_t {
    if (v.empty() || v.size() > 5 || v.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(v) > 65535 || (!zero_ok && std::stoi(v) == 0))
      throw std::runtime_error("port-forward: " + s + ": not [LOCAL:]REMOTE with ports 1..65535");
    return static_cast<uint16_t>(std::stoi(v));
  };
  auto colon = s.find(':');
  if (colon == std::string::npos) {
    uint16_t p = num(s, false);
    return {p, p};
  }
  std::string local = s.substr(0, colon);
  return {local.empty() ? uint16_t(0) : num(local, true), num(s.substr(colon + 1), false)};
}

void AddPortForward(CLI::App& app, Globals& g) {
  auto* c = app.add_subcommand("port-forward",
                               "Forward local ports to a pod: port-forward POD [LOCAL:]REMOTE...");
  struct Opts {
    std::string pod, address = "127.0.0.1";
    std::vector<std::string> specs;
    StreamFlags f;
  };
  auto o = std::make_shared<Opts>();
  AddStreamFlags(c, o->f);
  c->add_option("--address", o->address, "local address to listen on")->capture_default_str();
  c->add_option("pod", o->pod, "pod sandbox id")->required();
  c->add_option("ports", o->specs, "[LOCAL:]REMOTE ports")->required();
  c->callback([&g, o] {
    sc::PortForwardOptions pf;
    pf.transport = TransportOf(o->f);
    pf.address = o->address;
    v1::PortForwardRequest req;
    req.set_pod_sandbox_id(o->pod);
    for (const auto& s : o->specs) {
      pf.ports.push_back(ParsePortSpec(s));
      req.add_port(pf.ports.back().remote);
    }
    bool first = true;
    pf.new_url = [&g, o, req, &pf, &first]() {
      v1::PortForwardResponse resp;
      grpc::ClientContext ctx;
      g.Prepare(ctx);
      Check(Stub(g)->PortForward(&ctx, req, &resp), "port-forward to pod " + o->pod);
      if (first) pf.tls = TrustFor(g, o->f, resp.url());
      first = false;
      return resp.url();
    };
    pf.listening = [&o](uint16_t local, uint16_t remote) {
      std::cout << "Forwarding from " << o->address << ":" << local << " -> " << remote
                << std::endl;
    };
    pf.connection_error = [](const std::string& e) {
      std::cerr << "berthctl: port-forward: " << e << std::endl;
    };
    // Fails early (a bad pod, no streaming server) before anything listens.
    if (pf.transport == sc::Transport::kWebSocket) pf.new_url();
    sc::RunPortForward(pf);
  });
}

}  // namespace

void AddStreamCommands(CLI::App& app, Globals& g) {
  AddExec(app, g);
  AddAttach(app, g);
  AddPortForward(app, g);
}

}  // namespace berth::berthctl
