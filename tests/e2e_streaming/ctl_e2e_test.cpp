// End-to-end streaming with berthctl's own client (exec, port-forward; SPDY and WebSocket) and
// TLS streaming (a self-signed certificate, driven by berthctl, python3-websocket and npm
// spdy-transport, and a bad key file): the real berthd with runc (and crun when it can run here).
// Needs root, runc, busybox-static, python3-websocket, nodejs; skips otherwise.
#include "runtime/v1/api.grpc.pb.h"  // first: its enum Signal names collide with <signal.h> macros

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <future>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "berth/images/v1/images.grpc.pb.h"
#include "common/exec.h"
#include "image_support.h"
#include "support/support.h"

namespace {

namespace v1 = runtime::v1;
using berth::testing::TempDir;
using nlohmann::json;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 60) {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return c;
}

json Client(const std::vector<std::string>& argv) {
  berth::exec::Options o;
  o.timeout = std::chrono::seconds(120);
  if (argv[0] == "/usr/bin/node")
    o.env = {"NODE_PATH=" NODE_DIR "/node_modules", "PATH=/usr/bin:/bin"};
  auto r = berth::exec::Run(argv, o);
  auto j = json::parse(r.out, nullptr, false);
  if (!j.is_object())
    return json{{"fatal", "client exit " + std::to_string(r.exit_code) + ": " + r.out + r.err}};
  return j;
}

// An HTTP/1.0 GET of /index.html on 127.0.0.1:port; the whole answer.
std::string HttpGet(uint16_t port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(s);
    return "connect failed";
  }
  timeval tv = {20, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string req = "GET /index.html HTTP/1.0\r\n\r\n";
  (void)!write(s, req.data(), req.size());
  std::string got;
  char buf[4096];
  ssize_t n;
  while ((n = read(s, buf, sizeof buf)) > 0) got.append(buf, n);
  close(s);
  return got;
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

// VmHWM of `pid` in KiB (its peak resident memory since start or ResetPeakRss).
long PeakRssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}
void ResetPeakRss(pid_t pid) {
  std::ofstream("/proc/" + std::to_string(pid) + "/clear_refs") << "5";
}

std::string PseudoRandom(size_t n) {
  std::mt19937_64 rng(42);
  std::string s(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(s.data() + i, &v, 8);
  }
  return s;
}

std::string Sha256Sum(const std::string& data) {
  berth::exec::Options o;
  o.stdin_data = data;
  return berth::exec::Run({"sha256sum"}, o).out.substr(0, 64);
}

// Connects to 127.0.0.1:port, sends all of `data`, closes; false when it could not.
bool SendAll(uint16_t port, const std::string& data) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  for (size_t off = 0; ok && off < data.size();) {
    ssize_t n = send(s, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    ok = n > 0;
    if (ok) off += static_cast<size_t>(n);
  }
  close(s);
  return ok;
}

// `berthctl port-forward` running in the background; its listening ports from its output.
class PortForwarder {
 public:
  PortForwarder(const std::vector<std::string>& argv, size_t listeners) {
    int out[2], err[2];
    EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
    EXPECT_EQ(pipe2(err, O_CLOEXEC), 0);
    pid_ = berth::exec::Spawn(argv, {{out[1], 1}, {err[1], 2}}, false);
    close(out[1]);
    close(err[1]);
    err_ = err[0];
    FILE* f = fdopen(out[0], "r");
    char line[256];
    while (ports.size() < listeners && fgets(line, sizeof line, f)) {
      std::string l(line);  // Forwarding from 127.0.0.1:PORT -> REMOTE
      auto colon = l.find(':');
      if (l.rfind("Forwarding from ", 0) == 0 && colon != std::string::npos)
        ports.push_back(static_cast<uint16_t>(std::stoi(l.substr(colon + 1))));
    }
    out_ = f;
  }
  ~PortForwarder() { Stop(); }
  // Stops it (SIGTERM); its stderr.
  std::string Stop() {
    if (pid_ <= 0) return "";
    kill(pid_, SIGTERM);
    int st = 0;
    waitpid(pid_, &st, 0);
    pid_ = -1;
    exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    fclose(out_);
    return berth::exec::ReadToEof(err_, std::chrono::seconds(5), 1 << 20);
  }
  std::vector<uint16_t> ports;
  int exit_code = -1;

 private:
  pid_t pid_ = -1;
  int err_ = -1;
  FILE* out_ = nullptr;
};

class BerthctlE2E : public ::testing::Test {
 protected:
  // Tables appended to config.toml.
  virtual std::string ExtraConfig() { return ""; }
  virtual bool WithPod() { return true; }

  void SetUp() override {
    std::string reason = berth::testing::ContainerSkipReason("runc");
    if (!reason.empty()) GTEST_SKIP() << reason;
    if (berth::testing::BusyboxPath().empty()) GTEST_SKIP() << "busybox-static is not installed";
    dir_ = std::make_unique<TempDir>("berth-e2e-ctl");
    socket_ = *dir_ / "berth.sock";
    const std::string runtimes = "[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.";
    std::ostringstream c;
    c << "version = 3\nroot = \"" << dir_->path() << "/root\"\nstate = \"" << dir_->path()
      << "/state\"\n"
      << "[grpc]\naddress = \"" << socket_ << "\"\n"
      << "[plugins.\"io.containerd.cri.v1.runtime\"]\nrestrict_oom_score_adj = true\n"
      << "[plugins.\"io.containerd.cri.v1.runtime\".containerd]\ndefault_runtime_name = \"runc\"\n";
    for (const char* r : {"runc", "crun"}) {
      c << runtimes << r << "]\nruntime_type = \"io.containerd.runc.v2\"\n"
        << runtimes << r << ".options]\nBinaryName = \"" << r << "\"\n";
    }
    c << ExtraConfig();
    berth::testing::WriteFile(*dir_ / "config.toml", c.str());
    log_ = *dir_ / "berthd.log";
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      setenv("BERTH_MONITOR_PATH", BERTH_MONITOR_PATH, 1);
      setenv("BERTH_PAUSE_PATH", BERTH_PAUSE_PATH, 1);
      std::string cfg = *dir_ / "config.toml";
      execl(BERTHD_PATH, BERTHD_PATH, "--config", cfg.c_str(), nullptr);
      _exit(127);
    }
    auto ch = grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials());
    rt_ = v1::RuntimeService::NewStub(ch);
    bool up = false;
    for (int i = 0; i < 600 && !up; ++i) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
      v1::VersionResponse resp;
      up = access(socket_.c_str(), F_OK) == 0 && rt_->Version(&ctx, {}, &resp).ok();
      if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_TRUE(up) << ReadAll(log_);
    if (!WithPod()) return;
    berth::testing::TestImageOptions opts;
    opts.user = "";
    opts.entrypoint = {};
    opts.cmd = {"sh"};
    auto img = berth::testing::BuildTestImage(*dir_ / "oci", opts);
    berth::testing::WriteOciArchive(img, *dir_ / "busybox.tar", "docker.io/test/busybox:e2e");
    berth::images::v1::ImportRequest req;
    req.set_path(*dir_ / "busybox.tar");
    berth::images::v1::ImportResponse resp;
    auto images = berth::images::v1::Images::NewStub(ch);
    auto st = images->Import(Ctx().get(), req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    pod_ = RunPod("ctl", false);
    ctr_ = Run(pod_, "main",
               "mkdir -p /tmp/www && echo hello-pf > /tmp/www/index.html && exec httpd -f -p 8080 "
               "-h /tmp/www");
  }

  void TearDown() override {
    if (pid_ <= 0) return;
    if (HasFailure()) {
      std::string log = ReadAll(log_);
      std::cerr << "berthd log (end):\n" << log.substr(log.size() > 6000 ? log.size() - 6000 : 0);
    }
    for (const auto& p : pods_) {
      v1::RemovePodSandboxRequest r;
      r.set_pod_sandbox_id(p.first);
      v1::RemovePodSandboxResponse rr;
      rt_->RemovePodSandbox(Ctx().get(), r, &rr);
    }
    berth::testing::StopChild(pid_, SIGTERM);
  }

  std::string RunPod(const std::string& name, bool host_network, const std::string& handler = "") {
    v1::PodSandboxConfig pc;
    pc.mutable_metadata()->set_name(name);
    pc.mutable_metadata()->set_namespace_("e2e");
    pc.mutable_metadata()->set_uid("uid-" + name);
    pc.set_log_directory(*dir_ / ("logs-" + name));
    if (host_network)
      pc.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_network(
          v1::NODE);
    v1::RunPodSandboxRequest rp;
    *rp.mutable_config() = pc;
    rp.set_runtime_handler(handler);
    v1::RunPodSandboxResponse rpr;
    auto st = rt_->RunPodSandbox(Ctx().get(), rp, &rpr);
    EXPECT_TRUE(st.ok()) << st.error_message();
    pods_.emplace_back(rpr.pod_sandbox_id(), pc);
    return rpr.pod_sandbox_id();
  }

  std::string Run(const std::string& pod, const std::string& name, const std::string& script,
                  bool stdin_once = false) {
    v1::CreateContainerRequest req;
    req.set_pod_sandbox_id(pod);
    for (const auto& p : pods_)
      if (p.first == pod) *req.mutable_sandbox_config() = p.second;
    auto* c = req.mutable_config();
    c->mutable_metadata()->set_name(name);
    c->mutable_image()->set_image("docker.io/test/busybox:e2e");
    for (const char* a : {"sh", "-c"}) c->add_command(a);
    c->add_command(script);
    c->set_log_path(name + ".log");
    c->set_stdin(stdin_once);
    c->set_stdin_once(stdin_once);
    v1::CreateContainerResponse resp;
    auto st = rt_->CreateContainer(Ctx().get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    v1::StartContainerRequest sr;
    sr.set_container_id(resp.container_id());
    v1::StartContainerResponse srr;
    st = rt_->StartContainer(Ctx().get(), sr, &srr);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.container_id();
  }

  // berthctl with this berthd's socket.
  berth::exec::Result Ctl(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), {BERTHCTL_PATH, "--address", socket_});
    berth::exec::Options o;
    o.timeout = std::chrono::seconds(120);
    o.stdin_data = input;
    return berth::exec::Run(args, o);
  }
  std::vector<std::string> CtlArgv(std::vector<std::string> args) {
    args.insert(args.begin(), {BERTHCTL_PATH, "--address", socket_});
    return args;
  }

  std::string StreamingCertificate() {
    v1::StatusRequest r;
    r.set_verbose(true);
    v1::StatusResponse resp;
    EXPECT_TRUE(rt_->Status(Ctx().get(), r, &resp).ok());
    auto it = resp.info().find("streamingCertificate");
    return it == resp.info().end() ? "" : it->second;
  }

  void ExpectExecWorks(const std::string& transport, const std::string& ctr) {
    SCOPED_TRACE(transport);
    auto r = Ctl({"exec", "--transport", transport, ctr, "--", "sh", "-c",
                  "echo out; echo err >&2; exit 7"});
    EXPECT_EQ(r.exit_code, 7) << r.err;
    EXPECT_EQ(r.out, "out\n");
    EXPECT_EQ(r.err, "err\n");
    r = Ctl({"exec", "-i", "--transport", transport, ctr, "--", "sh", "-c", "cat; echo done"},
            "piped through\n");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "piped through\ndone\n");
    ExpectFastTtyExecKeepsItsOutput(transport, ctr, 1);
  }

  // A tty exec that prints and ends at once: its last output still reaches the client, every
  // time.
  void ExpectFastTtyExecKeepsItsOutput(const std::string& transport, const std::string& ctr,
                                       int runs) {
    int lost = 0;
    for (int i = 0; i < runs; ++i) {
      auto r = Ctl({"exec", "-t", "--transport", transport, ctr, "--", "sh", "-c",
                    "test -t 0 && test -t 1 && echo terminal"});
      EXPECT_EQ(r.exit_code, 0) << r.err;
      if (r.out != "terminal\r\n") {
        ++lost;
        ADD_FAILURE() << "run " << i << ": " << testing::PrintToString(r.out);
      }
    }
    EXPECT_EQ(lost, 0) << lost << " of " << runs << " tty execs over " << transport
                       << " lost their output";
  }

  void ExpectPortForwardWorks(const std::string& transport, const std::string& pod,
                              uint16_t remote) {
    SCOPED_TRACE(transport);
    PortForwarder pf(CtlArgv({"port-forward", "--transport", transport, pod,
                              ":" + std::to_string(remote), "0:9"}),
                     2);
    ASSERT_EQ(pf.ports.size(), 2u) << pf.Stop();
    std::vector<std::future<std::string>> gets;
    for (int i = 0; i < 6; ++i)
      gets.push_back(std::async(std::launch::async, HttpGet, pf.ports[0]));
    for (auto& g : gets) EXPECT_NE(g.get().find("hello-pf"), std::string::npos);
    EXPECT_EQ(HttpGet(pf.ports[1]).find("hello-pf"), std::string::npos);  // nobody listens on 9
    std::string err = pf.Stop();
    EXPECT_EQ(pf.exit_code, 0) << err;
    EXPECT_NE(err.find("port 9"), std::string::npos) << err;
  }

  static bool SpdyClientInstalled() {
    berth::exec::Options o;
    o.timeout = std::chrono::seconds(300);
    return berth::exec::Run({"bash", CLIENTS_DIR "/install_spdy_transport.sh", NODE_DIR}, o)
               .exit_code == 0;
  }

  std::unique_ptr<TempDir> dir_;
  std::string socket_, log_, pod_, ctr_;
  std::vector<std::pair<std::string, v1::PodSandboxConfig>> pods_;
  pid_t pid_ = -1;
  std::unique_ptr<v1::RuntimeService::Stub> rt_;
};

TEST_F(BerthctlE2E, ExecOverBothTransports) {
  ExpectExecWorks("spdy", ctr_);
  ExpectExecWorks("websocket", ctr_);
  auto r = Ctl({"exec", "-s", ctr_, "--", "sh", "-c", "echo sync; exit 4"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_EQ(r.out, "sync\n");
  r = Ctl({"exec", "nosuchcontainer", "--", "true"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("NotFound"), std::string::npos) << r.err;
}

TEST_F(BerthctlE2E, FastTtyExecsKeepTheirOutput) {
  ExpectFastTtyExecKeepsItsOutput("spdy", ctr_, 50);
  ExpectFastTtyExecKeepsItsOutput("websocket", ctr_, 50);
}

TEST_F(BerthctlE2E, PortForwardOverBothTransports) {
  ExpectPortForwardWorks("spdy", pod_, 8080);
  ExpectPortForwardWorks("websocket", pod_, 8080);
  auto r = Ctl({"port-forward", pod_, "70000"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("70000"), std::string::npos) << r.err;
}

// A client that sends faster than the pod reads is held back (by TCP), not buffered in berthd:
// an upload into a pod that does not read for its first seconds arrives whole, and berthd's
// peak memory grows by a fraction of what was sent. Over port-forward and exec stdin, both
// transports.
TEST_F(BerthctlE2E, UploadsToASlowReaderAreHeldBackNotBuffered) {
  const std::string data = PseudoRandom(96u << 20);
  const std::string sum = Sha256Sum(data);
  ASSERT_EQ(sum.size(), 64u);
  const long bound_kib = 32 << 10;
  for (const char* transport : {"spdy", "websocket"}) {
    SCOPED_TRACE(transport);
    // The sink reads the upload's bytes after 4 s (needing no end of file: WebSocket has none).
    std::string ctr = Run(pod_, std::string("sink-") + transport,
                          "echo 'sleep 4; head -c " + std::to_string(data.size()) +
                              " | sha256sum > /tmp/upload.sum' > /tmp/sink.sh; "
                              "nc -l -p 7000 -e sh /tmp/sink.sh; sleep 3600");
    PortForwarder pf(CtlArgv({"port-forward", "--transport", transport, pod_, ":7000"}), 1);
    ASSERT_EQ(pf.ports.size(), 1u) << pf.Stop();
    ResetPeakRss(pid_);
    long before = PeakRssKiB(pid_);
    ASSERT_TRUE(berth::testing::Eventually([&] { return SendAll(pf.ports[0], data); }));
    std::string got;
    EXPECT_TRUE(berth::testing::Eventually([&] {
      got = Ctl({"exec", ctr, "--", "cat", "/tmp/upload.sum"}).out;
      return !got.empty();
    }));
    EXPECT_EQ(got.substr(0, 64), sum);
    long grew = PeakRssKiB(pid_) - before;
    std::cout << transport << " port-forward upload: berthd's peak RSS grew " << grew << " KiB\n";
    EXPECT_LT(grew, bound_kib) << "port-forward upload of 96 MiB";
    pf.Stop();

    ResetPeakRss(pid_);
    before = PeakRssKiB(pid_);
    auto r = Ctl({"exec", "-i", "--transport", transport, ctr_, "--", "sh", "-c",
                  "sleep 4; sha256sum"},
                 data);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out.substr(0, 64), sum);
    grew = PeakRssKiB(pid_) - before;
    std::cout << transport << " exec stdin: berthd's peak RSS grew " << grew << " KiB\n";
    EXPECT_LT(grew, bound_kib) << "exec stdin of 96 MiB";
  }
}

TEST_F(BerthctlE2E, PortForwardToAHostNetworkPod) {
  uint16_t port = FreePort();
  std::string pod = RunPod("hostnet", true);
  Run(pod, "web",
      "mkdir -p /tmp/www && echo hello-pf > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:" +
          std::to_string(port) + " -h /tmp/www");
  ASSERT_TRUE(berth::testing::Eventually(
      [&] { return HttpGet(port).find("hello-pf") != std::string::npos; }));
  ExpectPortForwardWorks("spdy", pod, port);
  // And with a client berth did not write.
  v1::PortForwardRequest r;
  r.set_pod_sandbox_id(pod);
  r.add_port(port);
  v1::PortForwardResponse resp;
  ASSERT_TRUE(rt_->PortForward(Ctx().get(), r, &resp).ok());
  auto j =
      Client({"/usr/bin/python3", CLIENTS_DIR "/ws_client.py", resp.url(), "--portforward",
              "--protocol", "v4.channel.k8s.io", "--send", "GET /index.html HTTP/1.0\r\n\r\n"});
  EXPECT_NE(j["stdout"].get<std::string>().find("hello-pf"), std::string::npos) << j;
}

TEST_F(BerthctlE2E, ExecThroughCrun) {
  std::string reason = berth::testing::ContainerSkipReason("crun");
  if (!reason.empty()) GTEST_SKIP() << "crun cannot run containers here: " << reason;
  std::string pod = RunPod("crun", false, "crun");
  std::string ctr = Run(pod, "sleeper", "exec sleep 3600");
  ExpectExecWorks("spdy", ctr);
  ExpectFastTtyExecKeepsItsOutput("spdy", ctr, 20);
  auto r = Ctl({"exec", "-t", ctr, "--", "sh", "-c", "ps -o comm | grep -c sleep"});
  EXPECT_EQ(r.out, "1\r\n");
}

TEST_F(BerthctlE2E, AttachToAContainerThatEchoesItsStdin) {
  for (const char* transport : {"spdy", "websocket"}) {
    SCOPED_TRACE(transport);
    std::string ctr = Run(pod_, std::string("echo-") + transport, "exec cat", true);
    v1::AttachRequest ar;
    ar.set_container_id(ctr);
    ar.set_stdin(true);
    ar.set_stdout(true);
    v1::AttachResponse resp;
    auto st = rt_->Attach(Ctx().get(), ar, &resp);
    if (st.error_code() == grpc::StatusCode::UNIMPLEMENTED)
      GTEST_SKIP() << "berthd does not serve Attach: " << st.error_message();
    ASSERT_TRUE(st.ok()) << st.error_message();
    // stdin_once: the end of this attach's stdin is the container's; cat then exits.
    auto r = Ctl({"attach", "-i", "--transport", transport, ctr}, "hello attach\n");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "hello attach\n");
    r = Ctl({"attach", "-i", "--transport", transport, ctr}, "again\n");
    EXPECT_NE(r.exit_code, 0) << r.out;
  }
}

// TLS streaming with the self-signed certificate berthd makes at start.
class BerthctlTlsE2E : public BerthctlE2E {
 protected:
  std::string ExtraConfig() override {
    return "[plugins.\"io.containerd.grpc.v1.cri\"]\nenable_tls_streaming = true\n";
  }
};

TEST_F(BerthctlTlsE2E, ExecAndPortForwardOverTls) {
  v1::ExecRequest er;
  er.set_container_id(ctr_);
  for (const char* a : {"sh", "-c", "echo over-tls; exit 5"}) er.add_cmd(a);
  er.set_stdout(true);
  auto url = [&] {
    v1::ExecResponse resp;
    EXPECT_TRUE(rt_->Exec(Ctx().get(), er, &resp).ok());
    return resp.url();
  };
  ASSERT_EQ(url().rfind("https://127.0.0.1:", 0), 0u);
  std::string cert = StreamingCertificate();
  ASSERT_NE(cert.find("BEGIN CERTIFICATE"), std::string::npos);
  std::string cafile = *dir_ / "streaming.crt";
  berth::testing::WriteFile(cafile, cert);
  // python3-websocket trusting the certificate (and checking the host against it).
  auto j = Client({"/usr/bin/python3", CLIENTS_DIR "/ws_client.py", url(), "--cafile", cafile});
  EXPECT_EQ(j["stdout"], "over-tls\n") << j;
  EXPECT_EQ(
      json::parse(j["error"].get<std::string>(), nullptr, false)["details"]["causes"][0]["message"],
      "5")
      << j;
  // Not trusting it: the handshake fails.
  j = Client({"/usr/bin/python3", CLIENTS_DIR "/ws_client.py", url()});
  EXPECT_TRUE(j.contains("fatal")) << j;
  if (SpdyClientInstalled()) {
    j = Client(
        {"/usr/bin/node", CLIENTS_DIR "/spdy_client.js", url(), json{{"cafile", cafile}}.dump()});
    EXPECT_EQ(j["stdout"], "over-tls\n") << j;
    EXPECT_EQ(json::parse(j["error"].get<std::string>(), nullptr,
                          false)["details"]["causes"][0]["message"],
              "5")
        << j;
  }
  ExpectExecWorks("spdy", ctr_);
  ExpectExecWorks("websocket", ctr_);
  ExpectPortForwardWorks("spdy", pod_, 8080);
}

// A key pair that cannot be loaded: the streaming calls say which file.
class BerthctlBadKeyE2E : public BerthctlE2E {
 protected:
  std::string ExtraConfig() override {
    std::string d = dir_->path();
    // A good certificate (made with the openssl tool) and a key file that is no key.
    auto r = berth::exec::Run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                               "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=127.0.0.1",
                               "-days", "1", "-keyout", d + "/good.key", "-out", d + "/good.crt"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    bad_key_ = d + "/bad.key";
    berth::testing::WriteFile(bad_key_, "not a key\n");
    return "[plugins.\"io.containerd.grpc.v1.cri\"]\nenable_tls_streaming = true\n"
           "[plugins.\"io.containerd.grpc.v1.cri\".x509_key_pair_streaming]\n"
           "tls_cert_file = \"" +
           d + "/good.crt\"\ntls_key_file = \"" + bad_key_ + "\"\n";
  }
  bool WithPod() override { return false; }
  std::string bad_key_;
};

TEST_F(BerthctlBadKeyE2E, ExecNamesTheFile) {
  v1::ExecRequest er;
  er.set_container_id("any");
  er.add_cmd("true");
  er.set_stdout(true);
  v1::ExecResponse resp;
  auto st = rt_->Exec(Ctx().get(), er, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(st.error_message().find("tls_key_file " + bad_key_ + ": not a PEM private key"),
            std::string::npos)
      << st.error_message();
  EXPECT_NE(ReadAll(log_).find(bad_key_), std::string::npos);
  v1::VersionResponse vr;
  EXPECT_TRUE(rt_->Version(Ctx().get(), {}, &vr).ok());  // the rest of berthd serves on
}

}  // namespace
