// End-to-end streaming: the real berthd (runc, berth-monitor, berth-pause) on a temporary socket,
// Exec and PortForward URLs driven by python3-websocket (WebSocket) and spdy-transport on nodejs
// (SPDY/3.1), and the ExecSync timeout checked with `ps` in the container. Needs root, runc,
// busybox-static, python3-websocket, nodejs and npm (or spdy-transport already installed);
// skips otherwise.
#include "runtime/v1/api.grpc.pb.h"  // first: its enum Signal names collide with <signal.h> macros

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
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

// Runs a client script; its JSON answer.
json Client(const std::vector<std::string>& argv) {
  berth::exec::Options o;
  o.timeout = std::chrono::seconds(180);
  o.max_output = 1u << 20;
  if (argv[0] == "/usr/bin/node")
    o.env = {"NODE_PATH=" NODE_DIR "/node_modules", "PATH=/usr/bin:/bin"};
  auto r = berth::exec::Run(argv, o);
  auto j = json::parse(r.out, nullptr, false);
  if (!j.is_object())
    return json{{"fatal", "client exit " + std::to_string(r.exit_code) + ": " + r.out + r.err}};
  return j;
}

class StreamingE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!berth::testing::ContainerSkipReason("runc").empty() ||
        berth::testing::BusyboxPath().empty())
      return;
    berth::exec::Options o;
    o.timeout = std::chrono::seconds(300);
    auto r = berth::exec::Run({"bash", CLIENTS_DIR "/install_spdy_transport.sh", NODE_DIR}, o);
    spdy_ok_ = r.exit_code == 0;
  }

  void SetUp() override {
    std::string reason = berth::testing::ContainerSkipReason("runc");
    if (!reason.empty()) GTEST_SKIP() << reason;
    if (berth::testing::BusyboxPath().empty()) GTEST_SKIP() << "busybox-static is not installed";
    if (berth::exec::Run({"/usr/bin/python3", "-c", "import websocket"}).exit_code != 0)
      GTEST_SKIP() << "python3-websocket is not installed";
    dir_ = std::make_unique<TempDir>("berth-e2e-stream");
    socket_ = *dir_ / "berth.sock";
    std::ostringstream c;
    c << "version = 3\nroot = \"" << dir_->path() << "/root\"\nstate = \"" << dir_->path()
      << "/state\"\n"
      << "[grpc]\naddress = \"" << socket_ << "\"\n"
      << "[plugins.\"io.containerd.cri.v1.runtime\"]\nrestrict_oom_score_adj = true\n"
      << "[plugins.\"io.containerd.cri.v1.runtime\".containerd]\ndefault_runtime_name = \"runc\"\n"
      << "[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.runc]\n"
      << "runtime_type = \"io.containerd.runc.v2\"\n";
    berth::testing::WriteFile(*dir_ / "config.toml", c.str());
    log_ = *dir_ / "berthd.log";
    StartBerthd();
    if (HasFatalFailure()) return;
    SetUpImageAndPod();
  }

  // Starts berthd on the test's config; returns once it answers.
  void StartBerthd() {
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
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
  }

  void SetUpImageAndPod() {
    auto ch = grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials());
    auto images = berth::images::v1::Images::NewStub(ch);
    berth::testing::TestImageOptions opts;
    opts.user = "";
    opts.entrypoint = {};
    opts.cmd = {"sh"};
    auto img = berth::testing::BuildTestImage(*dir_ / "oci", opts);
    berth::testing::WriteOciArchive(img, *dir_ / "busybox.tar", "docker.io/test/busybox:e2e");
    berth::images::v1::ImportRequest req;
    req.set_path(*dir_ / "busybox.tar");
    berth::images::v1::ImportResponse resp;
    auto st = images->Import(Ctx().get(), req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    pc_.mutable_metadata()->set_name("stream");
    pc_.mutable_metadata()->set_namespace_("e2e");
    pc_.mutable_metadata()->set_uid("uid-stream");
    pc_.set_log_directory(*dir_ / "logs");
    v1::RunPodSandboxRequest rp;
    *rp.mutable_config() = pc_;
    v1::RunPodSandboxResponse rpr;
    st = rt_->RunPodSandbox(Ctx().get(), rp, &rpr);
    ASSERT_TRUE(st.ok()) << st.error_message();
    pod_ = rpr.pod_sandbox_id();
    ctr_ = Run("main",
               "mkdir -p /tmp/www && echo hello-pf > /tmp/www/index.html && exec httpd -f -p 8080 "
               "-h /tmp/www");
  }

  void TearDown() override {
    if (pid_ <= 0) return;
    if (HasFailure()) {
      std::string log = ReadAll(log_);
      std::cerr << "berthd log (end):\n" << log.substr(log.size() > 6000 ? log.size() - 6000 : 0);
    }
    if (!pod_.empty()) {
      v1::RemovePodSandboxRequest r;
      r.set_pod_sandbox_id(pod_);
      v1::RemovePodSandboxResponse rr;
      rt_->RemovePodSandbox(Ctx().get(), r, &rr);
    }
    berth::testing::StopChild(pid_, SIGTERM);
  }

  std::string Run(const std::string& name, const std::string& script, bool in = false,
                  bool once = false, bool tty = false) {
    v1::CreateContainerRequest req;
    req.set_pod_sandbox_id(pod_);
    *req.mutable_sandbox_config() = pc_;
    auto* c = req.mutable_config();
    c->mutable_metadata()->set_name(name);
    c->mutable_image()->set_image("docker.io/test/busybox:e2e");
    for (const char* a : {"sh", "-c"}) c->add_command(a);
    c->add_command(script);
    c->set_log_path(name + ".log");
    c->set_stdin(in);
    c->set_stdin_once(once);
    c->set_tty(tty);
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

  std::string ExecUrl(const std::vector<std::string>& cmd, bool in, bool out, bool err, bool tty,
                      grpc::Status* status = nullptr) {
    v1::ExecRequest r;
    r.set_container_id(ctr_);
    for (const auto& c : cmd) r.add_cmd(c);
    r.set_stdin(in);
    r.set_stdout(out);
    r.set_stderr(err);
    r.set_tty(tty);
    v1::ExecResponse resp;
    auto st = rt_->Exec(Ctx().get(), r, &resp);
    if (status) *status = st;
    EXPECT_TRUE(status || st.ok()) << st.error_message();
    return resp.url();
  }
  std::string AttachUrl(const std::string& id, bool in, bool out, bool err, bool tty,
                        grpc::Status* status = nullptr) {
    v1::AttachRequest r;
    r.set_container_id(id);
    r.set_stdin(in);
    r.set_stdout(out);
    r.set_stderr(err);
    r.set_tty(tty);
    v1::AttachResponse resp;
    auto st = rt_->Attach(Ctx().get(), r, &resp);
    if (status) *status = st;
    EXPECT_TRUE(status || st.ok()) << st.error_message();
    return resp.url();
  }
  v1::ContainerStatus Status(const std::string& id) {
    v1::ContainerStatusRequest r;
    r.set_container_id(id);
    v1::ContainerStatusResponse resp;
    auto st = rt_->ContainerStatus(Ctx().get(), r, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.status();
  }
  // Waits (at most 30 s) until the container has exited.
  v1::ContainerStatus WaitExited(const std::string& id) {
    for (int i = 0; i < 300; ++i) {
      auto s = Status(id);
      if (s.state() == v1::CONTAINER_EXITED) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "container " << id << " did not exit";
    return {};
  }
  std::string PortForwardUrl(std::vector<int> ports = {}) {
    v1::PortForwardRequest r;
    r.set_pod_sandbox_id(pod_);
    for (int p : ports) r.add_port(p);
    v1::PortForwardResponse resp;
    auto st = rt_->PortForward(Ctx().get(), r, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.url();
  }
  json Ws(const std::string& url, std::vector<std::string> args = {}) {
    std::vector<std::string> argv = {"/usr/bin/python3", CLIENTS_DIR "/ws_client.py", url};
    argv.insert(argv.end(), args.begin(), args.end());
    return Client(argv);
  }
  json Spdy(const std::string& url, const json& opts) {
    return Client({"/usr/bin/node", CLIENTS_DIR "/spdy_client.js", url, opts.dump()});
  }
  // A raw HTTP exchange with the streaming server: the status line.
  static std::string RawHttp(const std::string& url, const std::string& request, bool read = true) {
    auto hostport = url.substr(7, url.find('/', 7) - 7);
    int port = std::stoi(hostport.substr(hostport.rfind(':') + 1));
    int s = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return "connect failed";
    (void)!write(s, request.data(), request.size());
    std::string got;
    if (read) {
      timeval tv = {10, 0};
      setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      char buf[4096];
      ssize_t n = ::read(s, buf, sizeof buf);
      if (n > 0) got.assign(buf, n);
    }
    close(s);
    return got.substr(0, got.find("\r\n"));
  }
  static std::string Path(const std::string& url) { return url.substr(url.find('/', 7)); }

  static inline bool spdy_ok_ = false;
  std::unique_ptr<TempDir> dir_;
  std::string socket_, log_, pod_, ctr_;
  v1::PodSandboxConfig pc_;
  pid_t pid_ = -1;
  std::unique_ptr<v1::RuntimeService::Stub> rt_;
};

const char* kZeros64M = "3b6a07d0d404fab4e23b6d34bc6696a6a312dd92821332385e5af7c01c421351";

TEST_F(StreamingE2E, ExecSyncTimeoutKillsTheProcessTree) {
  for (std::string script : {"sleep 4321", "sleep 4322; echo never"}) {
    v1::ExecSyncRequest r;
    r.set_container_id(ctr_);
    for (const auto& a : {std::string("sh"), std::string("-c"), script}) r.add_cmd(a);
    r.set_timeout(1);
    v1::ExecSyncResponse resp;
    auto st = rt_->ExecSync(Ctx().get(), r, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << st.error_message();
  }
  v1::ExecSyncRequest ps;
  ps.set_container_id(ctr_);
  ps.add_cmd("ps");
  ps.set_timeout(10);
  v1::ExecSyncResponse out;
  ASSERT_TRUE(rt_->ExecSync(Ctx().get(), ps, &out).ok());
  EXPECT_NE(out.stdout().find("httpd"), std::string::npos) << out.stdout();
  EXPECT_EQ(out.stdout().find("sleep 432"), std::string::npos) << out.stdout();
}

TEST_F(StreamingE2E, ExecOverWebSocket) {
  auto j = Ws(ExecUrl({"sh", "-c", "echo out; echo err >&2; exit 3"}, false, true, true, false));
  EXPECT_EQ(j["protocol"], "v5.channel.k8s.io") << j;
  EXPECT_EQ(j["stdout"], "out\n") << j;
  EXPECT_EQ(j["stderr"], "err\n") << j;
  auto st = json::parse(j["error"].get<std::string>(), nullptr, false);
  EXPECT_EQ(st["reason"], "NonZeroExitCode") << j;
  EXPECT_EQ(st["details"]["causes"][0]["message"], "3") << j;

  j = Ws(ExecUrl({"cat"}, true, true, false, false), {"--stdin", "hello stdin"});
  EXPECT_EQ(j["stdout"], "hello stdin") << j;
  EXPECT_EQ(json::parse(j["error"].get<std::string>())["status"], "Success") << j;

  j = Ws(ExecUrl({"sh", "-c", "sleep 0.5; stty size"}, false, true, false, true),
         {"--resize", "123,45"});
  EXPECT_EQ(j["stdout"], "45 123\r\n") << j;

  j = Ws(ExecUrl({"head", "-c", "67108864", "/dev/zero"}, false, true, false, false),
         {"--protocol", "v4.channel.k8s.io"});
  EXPECT_EQ(j["protocol"], "v4.channel.k8s.io");
  EXPECT_EQ(j["stdout_len"], 64 << 20);
  EXPECT_EQ(j["stdout_sha256"], kZeros64M);

  j = Ws(ExecUrl({"echo", "b64"}, false, true, false, false),
         {"--protocol", "base64.channel.k8s.io"});
  EXPECT_EQ(j["stdout"], "b64\n") << j;
  EXPECT_EQ(j["error"], "") << j;  // before v4 the error channel carries only failures
}

TEST_F(StreamingE2E, ExecOverSpdy) {
  if (!spdy_ok_) GTEST_SKIP() << "spdy-transport could not be installed with npm";
  auto j = Spdy(ExecUrl({"sh", "-c", "echo out; echo err >&2; exit 7"}, false, true, true, false),
                {{"stderr", true}});
  EXPECT_EQ(j["protocol"], "v4.channel.k8s.io") << j;
  EXPECT_EQ(j["stdout"], "out\n") << j;
  EXPECT_EQ(j["stderr"], "err\n") << j;
  auto st = json::parse(j["error"].get<std::string>(), nullptr, false);
  EXPECT_EQ(st["details"]["causes"][0]["message"], "7") << j;

  j = Spdy(ExecUrl({"cat"}, true, true, false, false), {{"stdin", "through spdy"}});
  EXPECT_EQ(j["stdout"], "through spdy") << j;
  EXPECT_EQ(json::parse(j["error"].get<std::string>())["status"], "Success") << j;

  j = Spdy(ExecUrl({"sh", "-c", "sleep 0.5; stty size"}, false, true, false, true),
           {{"tty", true}, {"resize", {80, 24}}});
  EXPECT_EQ(j["stdout"], "24 80\r\n") << j;

  j = Spdy(ExecUrl({"head", "-c", "67108864", "/dev/zero"}, false, true, false, false),
           json::object());
  EXPECT_EQ(j["stdout_len"], 64 << 20) << j.dump().substr(0, 300);
  EXPECT_EQ(j["stdout_sha256"], kZeros64M);
}

TEST_F(StreamingE2E, PortForward) {
  std::string get = "GET /index.html HTTP/1.0\r\n\r\n";
  auto j = Ws(PortForwardUrl({8080}) + "?port=8080",
              {"--portforward", "--protocol", "v4.channel.k8s.io", "--send", get});
  EXPECT_EQ(j["ports"]["0"], 8080) << j;
  EXPECT_NE(j["stdout"].get<std::string>().find("hello-pf"), std::string::npos) << j;

  j = Ws(PortForwardUrl() + "?port=9",
         {"--portforward", "--protocol", "v4.channel.k8s.io", "--send", get});
  EXPECT_NE(j["error"].get<std::string>().find("port 9"), std::string::npos) << j;

  if (!spdy_ok_) GTEST_SKIP() << "spdy-transport could not be installed with npm";
  j = Spdy(PortForwardUrl({8080}),
           {{"portforward", true}, {"ports", {8080, 8080, 8080, 8080, 9}}, {"send", get}});
  ASSERT_EQ(j["results"].size(), 5u) << j;
  for (int i = 0; i < 4; ++i) {
    EXPECT_NE(j["results"][i]["data"].get<std::string>().find("hello-pf"), std::string::npos) << j;
    EXPECT_EQ(j["results"][i]["error"], "") << j;
  }
  EXPECT_NE(j["results"][4]["error"].get<std::string>().find("port 9"), std::string::npos) << j;
}

TEST_F(StreamingE2E, TokensAndHostileClients) {
  std::string url = ExecUrl({"true"}, false, true, false, false);
  // A half-open client and garbage do not stop the server.
  std::thread idle([&] { RawHttp(url, "GET " + Path(url) + " HTTP/1.1\r\n", false); });
  EXPECT_EQ(RawHttp(url, "\x16\x03\x01garbage\r\n\r\n"), "HTTP/1.1 400 Bad Request");
  EXPECT_EQ(RawHttp(url, "GET /exec/nosuchtoken HTTP/1.1\r\nHost: x\r\n\r\n"),
            "HTTP/1.1 404 Not Found");
  // No upgrade: 400, and the token is still good.
  EXPECT_EQ(RawHttp(url, "GET " + Path(url) + " HTTP/1.1\r\nHost: x\r\n\r\n"),
            "HTTP/1.1 400 Bad Request");
  auto j = Ws(url);
  EXPECT_EQ(json::parse(j["error"].get<std::string>(), nullptr, false)["status"], "Success") << j;
  // Used: 404.
  EXPECT_EQ(
      RawHttp(url, "GET " + Path(url) +
                       " HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n"),
      "HTTP/1.1 404 Not Found");
  idle.join();
  // Bad requests.
  grpc::Status st;
  ExecUrl({"true"}, false, false, false, false, &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ExecUrl({"true"}, false, true, true, true, &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ExecUrl({}, false, true, false, false, &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace

// --- Attach -------------------------------------------------------------------------------------

namespace {

json StatusOf(const json& j) {
  return j.contains("error") && j["error"].is_string()
             ? json::parse(j["error"].get<std::string>(), nullptr, false)
             : json();
}

}  // namespace

// A container that echoes its stdin; its stdin stays open between attached clients.
TEST_F(StreamingE2E, AttachEchoesStdinOverWebSocket) {
  std::string id = Run("echo", "cat", /*in=*/true);
  auto j = Ws(AttachUrl(id, true, true, false, false),
              {"--stdin", "hello attach\n", "--expect", "hello attach\n"});
  EXPECT_EQ(j["stdout"], "hello attach\n") << j;
  EXPECT_EQ(StatusOf(j)["status"], "Success") << j;
  // The client's stdin ended without stdin_once: it was let go, the container runs on with its
  // stdin open, and the next client reaches it.
  EXPECT_EQ(Status(id).state(), v1::CONTAINER_RUNNING);
  j = Ws(AttachUrl(id, true, true, false, false),
         {"--stdin", "again\n", "--expect", "again\n", "--protocol", "v4.channel.k8s.io"});
  EXPECT_EQ(j["protocol"], "v4.channel.k8s.io") << j;
  EXPECT_EQ(j["stdout"], "again\n") << j;
  j = Ws(AttachUrl(id, true, true, false, false),
         {"--stdin", "b64\n", "--expect", "b64\n", "--protocol", "base64.channel.k8s.io"});
  EXPECT_EQ(j["protocol"], "base64.channel.k8s.io") << j;
  EXPECT_EQ(j["stdout"], "b64\n") << j;
  EXPECT_EQ(Status(id).state(), v1::CONTAINER_RUNNING);
}

TEST_F(StreamingE2E, AttachEchoesStdinOverSpdy) {
  if (!spdy_ok_) GTEST_SKIP() << "spdy-transport could not be installed with npm";
  std::string id = Run("echo", "cat", /*in=*/true);
  auto j = Spdy(AttachUrl(id, true, true, false, false),
                {{"stdin", "through spdy\n"}, {"expect", "through spdy\n"}});
  EXPECT_EQ(j["protocol"], "v4.channel.k8s.io") << j;
  EXPECT_EQ(j["stdout"], "through spdy\n") << j;
  EXPECT_EQ(StatusOf(j)["status"], "Success") << j;
  EXPECT_EQ(Status(id).state(), v1::CONTAINER_RUNNING);
  j = Spdy(AttachUrl(id, true, true, false, false),
           {{"stdin", "v3\n"}, {"expect", "v3\n"}, {"protocol", "v3.channel.k8s.io"}});
  EXPECT_EQ(j["protocol"], "v3.channel.k8s.io") << j;
  EXPECT_EQ(j["stdout"], "v3\n") << j;
  j = Spdy(AttachUrl(id, true, true, false, false),
           {{"stdin", "v2\n"}, {"expect", "v2\n"}, {"protocol", "v2.channel.k8s.io"}});
  EXPECT_EQ(j["protocol"], "v2.channel.k8s.io") << j;
  EXPECT_EQ(j["stdout"], "v2\n") << j;
  EXPECT_EQ(j["error"], "") << j;  // before v4 the error stream carries only failures
}

// stdin_once: the first client's end of stdin is the container's; the client sees the output
// until the container exits, and the output is in the CRI log as well.
TEST_F(StreamingE2E, AttachStdinOnce) {
  std::string id = Run("once", "cat; echo cat-done; echo to-stderr >&2; exit 5", true, true);
  auto j = Ws(AttachUrl(id, true, true, true, false), {"--stdin", "only once\n"});
  EXPECT_EQ(j["stdout"], "only once\ncat-done\n") << j;
  EXPECT_EQ(j["stderr"], "to-stderr\n") << j;
  EXPECT_EQ(StatusOf(j)["status"], "Success") << j;
  auto st = WaitExited(id);
  EXPECT_EQ(st.exit_code(), 5);
  std::string log = ReadAll(*dir_ / "logs/once.log");
  EXPECT_NE(log.find(" stdout F only once\n"), std::string::npos) << log;
  EXPECT_NE(log.find(" stdout F cat-done\n"), std::string::npos) << log;
  EXPECT_NE(log.find(" stderr F to-stderr\n"), std::string::npos) << log;
  // An exited container cannot be attached to.
  grpc::Status gs;
  AttachUrl(id, false, true, false, false, &gs);
  EXPECT_EQ(gs.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << gs.error_message();
}

TEST_F(StreamingE2E, AttachStdinOnceOverSpdy) {
  if (!spdy_ok_) GTEST_SKIP() << "spdy-transport could not be installed with npm";
  std::string id = Run("once", "cat; echo cat-done", true, true);
  auto j = Spdy(AttachUrl(id, true, true, false, false), {{"stdin", "spdy once\n"}});
  EXPECT_EQ(j["stdout"], "spdy once\ncat-done\n") << j;
  EXPECT_EQ(StatusOf(j)["status"], "Success") << j;
  EXPECT_EQ(WaitExited(id).exit_code(), 0);
}

// A terminal: the size a client sets is what `stty size` sees in the container.
TEST_F(StreamingE2E, AttachTtyResize) {
  std::string id = Run("tty", "while read l; do stty size; done", true, false, true);
  auto j = Ws(AttachUrl(id, true, true, false, true),
              {"--resize", "100,37", "--stdin", "go\n", "--expect", "37 100"});
  EXPECT_NE(j["stdout"].get<std::string>().find("37 100\r\n"), std::string::npos) << j;
  EXPECT_EQ(StatusOf(j)["status"], "Success") << j;
  if (!spdy_ok_) GTEST_SKIP() << "spdy-transport could not be installed with npm";
  j = Spdy(AttachUrl(id, true, true, false, true),
           {{"tty", true}, {"resize", {90, 21}}, {"stdin", "go\n"}, {"expect", "21 90"}});
  EXPECT_NE(j["stdout"].get<std::string>().find("21 90\r\n"), std::string::npos) << j;
  EXPECT_EQ(Status(id).state(), v1::CONTAINER_RUNNING);
}

// Two clients attached at once both see the output, which also reaches the CRI log.
TEST_F(StreamingE2E, AttachTwoClientsAtOnce) {
  std::string id = Run("ticker", "i=0; while true; do i=$((i+1)); echo line-$i; sleep 0.2; done");
  std::string ready = *dir_ / "first-ready";
  json first;
  std::thread a([&] {
    first = Ws(AttachUrl(id, false, true, false, false), {"--lines", "40", "--ready-file", ready});
  });
  for (int i = 0; i < 300 && access(ready.c_str(), F_OK) != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::vector<json> later = {Ws(AttachUrl(id, false, true, false, false), {"--lines", "3"})};
  if (spdy_ok_) later.push_back(Spdy(AttachUrl(id, false, true, false, false), {{"lines", 3}}));
  a.join();
  std::string a_out = first.value("stdout", "");
  EXPECT_GE(std::count(a_out.begin(), a_out.end(), '\n'), 40) << first;
  std::string log = ReadAll(*dir_ / "logs/ticker.log");
  for (const auto& j : later) {
    std::string out = j.value("stdout", "");
    EXPECT_GE(std::count(out.begin(), out.end(), '\n'), 3) << j;
    // Every line a later client saw, the first saw too: they were attached at the same time.
    std::istringstream lines(out);
    for (std::string l; std::getline(lines, l);) {
      if (l.empty()) continue;
      EXPECT_NE(a_out.find(l + "\n"), std::string::npos) << l << " not in " << a_out;
      EXPECT_NE(log.find(" stdout F " + l + "\n"), std::string::npos) << l << " not in the log";
    }
  }
  EXPECT_EQ(Status(id).state(), v1::CONTAINER_RUNNING);
}

// The attach socket belongs to berth-monitor: after berthd restarts, Attach still works.
TEST_F(StreamingE2E, AttachAfterBerthdRestart) {
  std::string id = Run("echo", "cat", /*in=*/true);
  auto j =
      Ws(AttachUrl(id, true, true, false, false), {"--stdin", "before\n", "--expect", "before\n"});
  EXPECT_EQ(j["stdout"], "before\n") << j;
  berth::testing::StopChild(pid_, SIGTERM);
  StartBerthd();
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(Status(id).state(), v1::CONTAINER_RUNNING);
  j = Ws(AttachUrl(id, true, true, false, false), {"--stdin", "after\n", "--expect", "after\n"});
  EXPECT_EQ(j["stdout"], "after\n") << j;
  EXPECT_EQ(StatusOf(j)["status"], "Success") << j;
}

TEST_F(StreamingE2E, AttachBadRequests) {
  std::string tty = Run("tty", "cat", true, false, true);
  struct Case {
    std::string id;
    bool in, out, err, tty;
    grpc::StatusCode code;
  } cases[] = {
      {"", false, true, false, false, grpc::StatusCode::INVALID_ARGUMENT},
      {"nosuchcontainer", false, true, false, false, grpc::StatusCode::NOT_FOUND},
      {ctr_, false, false, false, false, grpc::StatusCode::INVALID_ARGUMENT},  // no stream
      {tty, false, true, true, true, grpc::StatusCode::INVALID_ARGUMENT},      // tty + stderr
      {ctr_, true, true, false, false,
       grpc::StatusCode::INVALID_ARGUMENT},  // created without stdin
      {ctr_, false, true, false, true, grpc::StatusCode::INVALID_ARGUMENT},  // tty mismatch
      {tty, false, true, false, false, grpc::StatusCode::INVALID_ARGUMENT},  // tty mismatch
  };
  for (const auto& c : cases) {
    grpc::Status st;
    AttachUrl(c.id, c.in, c.out, c.err, c.tty, &st);
    EXPECT_EQ(st.error_code(), c.code) << c.id << " " << st.error_message();
  }
  // The good request still works.
  std::string url = AttachUrl(ctr_, false, true, true, false);
  EXPECT_NE(url.find("/attach/"), std::string::npos) << url;
  // A monitor without an attach socket (one started before berth served attach).
  std::string sock = *dir_ / ("state/io.containerd.grpc.v1.cri/containers/" + tty + "/attach/sock");
  ASSERT_EQ(unlink(sock.c_str()), 0) << sock;
  grpc::Status st;
  AttachUrl(tty, false, true, false, true, &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
}
