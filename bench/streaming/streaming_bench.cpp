// The streaming server against the bare tools, both in the same run:
// - exec: `exec true` through berthd's streaming server (the CRI Exec call, the connection and
//   the session with berth's own SPDY or WebSocket client, the runtime's exec) against a bare
//   `runc exec` of the same container;
// - port-forward: throughput (both directions) and round-trip latency of one TCP connection
//   through `berthctl port-forward` (SPDY, or --transport websocket) and berthd, against `socat`
//   relaying the same connection. The server is this program on 127.0.0.1, reached through a
//   host-network pod (so both paths end at the same socket).
// Needs root, runc, socat and busybox-static.
//
//   streaming_bench [--execs N] [--mib N] [--pings N] [--rounds N] [--transport spdy|websocket]
#include "runtime/v1/api.grpc.pb.h"  // first: its enum Signal names collide with <signal.h> macros

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "berth/images/v1/images.grpc.pb.h"
#include "common/exec.h"
#include "image_support.h"
#include "streaming/client.h"
#include "support/support.h"

namespace {

namespace v1 = runtime::v1;
using Clock = std::chrono::steady_clock;
namespace sc = berth::streaming::client;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double Min(const std::vector<double>& v) {
  return v.empty() ? 0 : *std::min_element(v.begin(), v.end());
}

// Per-exec times (ms) of one path.
struct Times {
  double median = 0, min = 0;
};
Times Of(const std::vector<double>& v) { return {Median(v), Min(v)}; }

std::unique_ptr<grpc::ClientContext> Ctx() {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  return c;
}

[[noreturn]] void Die(const std::string& m) {
  std::fprintf(stderr, "streaming_bench: %s\n", m.c_str());
  std::exit(1);
}

int Connect(uint16_t port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < 100; ++i) {
    if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      int one = 1;
      setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return s;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    close(s);
    s = socket(AF_INET, SOCK_STREAM, 0);
  }
  Die("cannot connect to 127.0.0.1:" + std::to_string(port));
}

uint16_t FreePort() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  close(s);
  return ntohs(a.sin_port);
}

bool ReadFull(int fd, char* p, size_t n) {
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// The far end: per connection, a command byte: 'D' + 8 bytes N: sends N bytes; 'U' + N: reads N
// bytes, answers one byte; 'P': echoes single bytes until end of file.
class FarEnd {
 public:
  FarEnd() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd_, 64) != 0)
      Die("far end: cannot listen");
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    std::thread([this] {
      while (true) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        std::thread([c] { Serve(c); }).detach();
      }
    }).detach();
  }
  uint16_t port = 0;

 private:
  static void Serve(int c) {
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char cmd;
    if (!ReadFull(c, &cmd, 1)) return (void)close(c);
    std::vector<char> buf(256 * 1024);
    if (cmd == 'D' || cmd == 'U') {
      uint64_t n = 0;
      if (!ReadFull(c, reinterpret_cast<char*>(&n), 8)) return (void)close(c);
      for (uint64_t done = 0; done < n;) {
        size_t k = static_cast<size_t>(std::min<uint64_t>(buf.size(), n - done));
        ssize_t r = cmd == 'D' ? write(c, buf.data(), k) : read(c, buf.data(), k);
        if (r <= 0) break;
        done += static_cast<uint64_t>(r);
      }
      if (cmd == 'U') (void)!write(c, "k", 1);
    } else if (cmd == 'P') {
      char b;
      while (read(c, &b, 1) == 1)
        if (write(c, &b, 1) != 1) break;
    }
    shutdown(c, SHUT_WR);
    while (read(c, buf.data(), buf.size()) > 0) {
    }
    close(c);
  }
  int fd_ = -1;
};

// MiB/s of `mib` MiB downloaded ('D') or uploaded ('U') through 127.0.0.1:port.
double Throughput(uint16_t port, char dir, uint64_t mib) {
  int s = Connect(port);
  uint64_t n = mib << 20;
  char head[9];
  head[0] = dir;
  std::memcpy(head + 1, &n, 8);
  auto t0 = Clock::now();
  if (write(s, head, 9) != 9) Die("write");
  std::vector<char> buf(256 * 1024);
  if (dir == 'D') {
    uint64_t got = 0;
    while (got < n) {
      ssize_t r = read(s, buf.data(), buf.size());
      if (r <= 0) Die("download ended after " + std::to_string(got) + " bytes");
      got += static_cast<uint64_t>(r);
    }
  } else {
    for (uint64_t sent = 0; sent < n;) {
      ssize_t r = write(s, buf.data(), std::min<uint64_t>(buf.size(), n - sent));
      if (r <= 0) Die("upload failed");
      sent += static_cast<uint64_t>(r);
    }
    char k;
    if (!ReadFull(s, &k, 1)) Die("upload not acknowledged");
  }
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  close(s);
  return static_cast<double>(mib) / secs;
}

// Median round trip (µs) of one byte, `pings` times, through 127.0.0.1:port.
double Latency(uint16_t port, int pings) {
  int s = Connect(port);
  if (write(s, "P", 1) != 1) Die("write");
  std::vector<double> us;
  for (int i = 0; i < pings; ++i) {
    char b = 'x';
    auto t0 = Clock::now();
    if (write(s, &b, 1) != 1 || !ReadFull(s, &b, 1)) Die("ping failed");
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  close(s);
  return Median(us);
}

struct Child {
  pid_t pid = -1;
  void Stop() {
    if (pid <= 0) return;
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
    pid = -1;
  }
  ~Child() { Stop(); }
};

// `berthctl port-forward POD 0:REMOTE`; the local port it listens on.
uint16_t StartBerthctl(Child& c, const std::string& socket, const std::string& pod, uint16_t remote,
                       const std::string& transport) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) Die("pipe");
  c.pid = berth::exec::Spawn({BERTHCTL_PATH, "--address", socket, "port-forward", "--transport",
                              transport, pod, "0:" + std::to_string(remote)},
                             {{out[1], 1}}, false);
  close(out[1]);
  FILE* f = fdopen(out[0], "r");
  char line[256];
  if (!fgets(line, sizeof line, f)) Die("berthctl port-forward did not start");
  fclose(f);
  std::string l(line);
  return static_cast<uint16_t>(std::stoi(l.substr(l.find(':') + 1)));
}

uint16_t StartSocat(Child& c, uint16_t remote) {
  uint16_t port = FreePort();
  c.pid = berth::exec::Spawn(
      {"/usr/bin/socat", "TCP-LISTEN:" + std::to_string(port) + ",bind=127.0.0.1,reuseaddr,fork",
       "TCP:127.0.0.1:" + std::to_string(remote)},
      {}, true);
  return port;
}

struct Args {
  int execs = 40, pings = 2000, rounds = 3;
  uint64_t mib = 256;
  std::string transport = "spdy";
};

class Bench {
 public:
  explicit Bench(Args a) : a_(std::move(a)) {}

  void Start() {
    dir_ = std::make_unique<berth::testing::TempDir>("berth-bench-stream");
    socket_ = *dir_ / "berth.sock";
    std::ostringstream c;
    c << "version = 3\nroot = \"" << dir_->path() << "/root\"\nstate = \"" << dir_->path()
      << "/state\"\n[grpc]\naddress = \"" << socket_ << "\"\n"
      << "[plugins.\"io.containerd.cri.v1.runtime\"]\nrestrict_oom_score_adj = true\n";
    berth::testing::WriteFile(*dir_ / "config.toml", c.str());
    berthd_.pid = fork();
    if (berthd_.pid == 0) {
      std::string log = *dir_ / "berthd.log", cfg = *dir_ / "config.toml";
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      setenv("BERTH_MONITOR_PATH", BERTH_MONITOR_PATH, 1);
      setenv("BERTH_PAUSE_PATH", BERTH_PAUSE_PATH, 1);
      execl(BERTHD_PATH, BERTHD_PATH, "--config", cfg.c_str(), nullptr);
      _exit(127);
    }
    auto ch = grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials());
    rt_ = v1::RuntimeService::NewStub(ch);
    if (!berth::testing::Eventually(
            [&] {
              grpc::ClientContext ctx;
              v1::VersionResponse r;
              return rt_->Version(&ctx, {}, &r).ok();
            },
            std::chrono::seconds(60)))
      Die("berthd did not start");
    berth::testing::TestImageOptions opts;
    opts.user = "";
    opts.entrypoint = {};
    opts.cmd = {"sh"};
    auto img = berth::testing::BuildTestImage(*dir_ / "oci", opts);
    berth::testing::WriteOciArchive(img, *dir_ / "busybox.tar", "docker.io/test/busybox:bench");
    berth::images::v1::ImportRequest ir;
    ir.set_path(*dir_ / "busybox.tar");
    berth::images::v1::ImportResponse irr;
    Check(berth::images::v1::Images::NewStub(ch)->Import(Ctx().get(), ir, &irr), "import");
    v1::RunPodSandboxRequest rp;
    auto* pc = rp.mutable_config();
    pc->mutable_metadata()->set_name("bench");
    pc->mutable_metadata()->set_namespace_("bench");
    pc->mutable_metadata()->set_uid("uid-bench");
    pc->mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_network(
        v1::NODE);
    v1::RunPodSandboxResponse rpr;
    Check(rt_->RunPodSandbox(Ctx().get(), rp, &rpr), "RunPodSandbox");
    pod_ = rpr.pod_sandbox_id();
    v1::CreateContainerRequest cr;
    cr.set_pod_sandbox_id(pod_);
    *cr.mutable_sandbox_config() = *pc;
    cr.mutable_config()->mutable_metadata()->set_name("sleeper");
    cr.mutable_config()->mutable_image()->set_image("docker.io/test/busybox:bench");
    for (const char* a : {"sleep", "36000"}) cr.mutable_config()->add_command(a);
    v1::CreateContainerResponse crr;
    Check(rt_->CreateContainer(Ctx().get(), cr, &crr), "CreateContainer");
    ctr_ = crr.container_id();
    v1::StartContainerRequest sr;
    sr.set_container_id(ctr_);
    v1::StartContainerResponse srr;
    Check(rt_->StartContainer(Ctx().get(), sr, &srr), "StartContainer");
    for (auto& e : std::filesystem::recursive_directory_iterator(*dir_ / "state"))
      if (e.is_directory() && e.path().filename() == "runc" &&
          e.path().parent_path().filename() == "runtime")
        runc_root_ = e.path();
    if (runc_root_.empty()) Die("runc's root under the state dir not found");
  }

  void Stop() {
    if (!pod_.empty()) {
      v1::StopPodSandboxRequest s;
      s.set_pod_sandbox_id(pod_);
      v1::StopPodSandboxResponse sr;
      rt_->StopPodSandbox(Ctx().get(), s, &sr);
      v1::RemovePodSandboxRequest r;
      r.set_pod_sandbox_id(pod_);
      v1::RemovePodSandboxResponse rr;
      rt_->RemovePodSandbox(Ctx().get(), r, &rr);
    }
    berthd_.Stop();
  }

  // Per-exec ms: through the streaming server, and bare runc exec, interleaved; *call: the CRI
  // Exec call alone.
  struct ExecTimes {
    Times berth, bare, sync, call;
  };
  ExecTimes Exec() {
    std::vector<double> berth, bare, calls, syncs;
    sc::Transport t =
        a_.transport == "websocket" ? sc::Transport::kWebSocket : sc::Transport::kSpdy;
    for (int i = 0; i < a_.execs + 3; ++i) {
      auto t0 = Clock::now();
      v1::ExecRequest er;
      er.set_container_id(ctr_);
      er.add_cmd("true");
      er.set_stdout(true);
      v1::ExecResponse resp;
      Check(rt_->Exec(Ctx().get(), er, &resp), "Exec");
      auto tc = Clock::now();
      sc::CommandIo io;
      io.streams.stderr = false;
      int code = sc::RunCommand(resp.url(), t, {}, io);
      auto t1 = Clock::now();
      if (code != 0) Die("exec true exited " + std::to_string(code));
      auto r = berth::exec::Run({"runc", "--root", runc_root_, "exec", ctr_, "true"});
      auto t2 = Clock::now();
      if (!r.ok()) Die("runc exec: " + r.err);
      v1::ExecSyncRequest xr;
      xr.set_container_id(ctr_);
      xr.add_cmd("true");
      v1::ExecSyncResponse xrr;
      Check(rt_->ExecSync(Ctx().get(), xr, &xrr), "ExecSync");
      auto t3 = Clock::now();
      if (i < 3) continue;  // warm-up
      syncs.push_back(Ms(t3 - t2));
      berth.push_back(Ms(t1 - t0));
      bare.push_back(Ms(t2 - t1));
      calls.push_back(Ms(tc - t0));
    }
    return {Of(berth), Of(bare), Of(syncs), Of(calls)};
  }

  struct Forward {
    double down = 0, up = 0, rtt = 0;
  };
  Forward Measure(uint16_t port) {
    Forward f;
    f.down = Throughput(port, 'D', a_.mib);
    f.up = Throughput(port, 'U', a_.mib);
    f.rtt = Latency(port, a_.pings);
    return f;
  }

  void PortForward(Forward* berth, Forward* socat) {
    FarEnd far;
    std::vector<Forward> b, s;
    for (int i = 0; i < a_.rounds; ++i) {
      {
        Child c;
        uint16_t p = StartBerthctl(c, socket_, pod_, far.port, a_.transport);
        b.push_back(Measure(p));
      }
      {
        Child c;
        uint16_t p = StartSocat(c, far.port);
        s.push_back(Measure(p));
      }
    }
    auto best = [](const std::vector<Forward>& v) {
      Forward f{0, 0, 1e18};
      for (const auto& x : v) {
        f.down = std::max(f.down, x.down);
        f.up = std::max(f.up, x.up);
        f.rtt = std::min(f.rtt, x.rtt);
      }
      return f;
    };
    *berth = best(b);
    *socat = best(s);
  }

 private:
  static void Check(const grpc::Status& st, const std::string& what) {
    if (!st.ok()) Die(what + ": " + st.error_message());
  }
  Args a_;
  std::unique_ptr<berth::testing::TempDir> dir_;
  std::string socket_, pod_, ctr_, runc_root_;
  Child berthd_;
  std::unique_ptr<v1::RuntimeService::Stub> rt_;
};

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--execs")
      a.execs = std::stoi(v);
    else if (k == "--mib")
      a.mib = std::stoull(v);
    else if (k == "--pings")
      a.pings = std::stoi(v);
    else if (k == "--rounds")
      a.rounds = std::stoi(v);
    else if (k == "--transport")
      a.transport = v;
    else
      Die("unknown option " + k);
  }
  std::string reason = berth::testing::ContainerSkipReason("runc");
  if (!reason.empty()) Die(reason);
  if (access("/usr/bin/socat", X_OK) != 0) Die("socat is not installed");
  Bench b(a);
  b.Start();
  auto ex = b.Exec();
  Bench::Forward pf, so;
  b.PortForward(&pf, &so);
  b.Stop();
  std::printf(
      "streaming_bench (%s; exec: median of %d; port-forward: best of %d rounds, %llu MiB "
      "each way, %d pings)\n",
      a.transport.c_str(), a.execs, a.rounds, static_cast<unsigned long long>(a.mib), a.pings);
  std::printf("| measure | berth | bare | berth / bare | berth - bare |\n|---|---|---|---|---|\n");
  auto row = [](const char* what, Times b, Times r) {
    std::printf("| %s, median (ms) | %.1f | %.1f | %.2f | %+.1f ms |\n", what, b.median, r.median,
                b.median / r.median, b.median - r.median);
    std::printf("| %s, fastest (ms) | %.1f | %.1f | %.2f | %+.1f ms |\n", what, b.min, r.min,
                b.min / r.min, b.min - r.min);
  };
  row("exec true through the streaming server vs runc exec", ex.berth, ex.bare);
  std::printf("| of which the CRI Exec call, median (ms) | %.1f | | | |\n", ex.call.median);
  row("ExecSync true vs runc exec", ex.sync, ex.bare);
  std::printf("| port-forward download (MiB/s), vs socat | %.0f | %.0f | %.2f | |\n", pf.down,
              so.down, pf.down / so.down);
  std::printf("| port-forward upload (MiB/s), vs socat | %.0f | %.0f | %.2f | |\n", pf.up, so.up,
              pf.up / so.up);
  std::printf(
      "| port-forward round trip (µs, median), vs socat | %.0f | %.0f | %.2f | %+.0f µs |\n",
      pf.rtt, so.rtt, pf.rtt / so.rtt, pf.rtt - so.rtt);
  return 0;
}
