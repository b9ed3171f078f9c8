// berth's streaming client against berth's streaming server, with `sh -c` as the command (no
// containers, no root): TLS (a self-signed certificate, a key pair from files, a bad key file),
// both transports, exit codes, stdin, and the WebSocket idle timeout.
#include "streaming/client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <thread>

#include <gtest/gtest.h>

#include "common/error.h"
#include "streaming/server.h"
#include "streaming/spdy.h"
#include "streaming/tls.h"

namespace {

using namespace berth::streaming;
using client::Transport;

// `sh -c SCRIPT` with pipes (stdin from /dev/null unless asked for).
class ShProcess : public Process {
 public:
  ShProcess(const std::string& script, const CommandOptions& o, std::atomic<int>* pid_out) {
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
      throw berth::Error(berth::Code::kInternal, "pipe");
    pid_ = fork();
    if (pid_ == 0) {
      int null = open("/dev/null", O_RDONLY);
      dup2(o.stdin ? in[0] : null, 0);
      dup2(out[1], 1);
      dup2(err[1], 2);
      execl("/bin/sh", "sh", "-c", script.c_str(), nullptr);
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    in_ = in[1];
    out_ = out[0];
    err_ = err[0];
    if (!o.stdin) {
      close(in_);
      in_ = -1;
    }
    if (pid_out) *pid_out = pid_;
  }
  ~ShProcess() override {
    for (int fd : {in_, out_, err_})
      if (fd >= 0) close(fd);
  }
  int TakeStdin() override { return std::exchange(in_, -1); }
  int TakeStdout() override { return std::exchange(out_, -1); }
  int TakeStderr() override { return std::exchange(err_, -1); }
  void Resize(TermSize) override {}
  int Wait() override {
    int st = 0;
    waitpid(pid_, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  void Cancel() override { kill(pid_, SIGKILL); }

 private:
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1, err_ = -1;
};

Request Exec(const std::string& script, bool in, std::atomic<int>* pid = nullptr) {
  Request r;
  r.kind = Request::Kind::kExec;
  r.command.stdin = in;
  r.start = [script, pid](const CommandOptions& o) {
    return std::make_unique<ShProcess>(script, o, pid);
  };
  return r;
}

// A pipe whose read end the command's output goes to, read back after the run.
struct Capture {
  int fds[2];
  Capture() { EXPECT_EQ(pipe(fds), 0); }
  ~Capture() {
    close(fds[0]);
    if (fds[1] >= 0) close(fds[1]);
  }
  std::string Take() {
    close(fds[1]);
    fds[1] = -1;
    std::string s;
    char buf[4096];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0) s.append(buf, n);
    return s;
  }
};

struct Result {
  int code = -1;
  std::string out, err;
};

Result RunExec(const std::string& url, Transport t, const client::Tls& tls,
               const std::string& input) {
  Capture in, out, err;
  (void)!write(in.fds[1], input.data(), input.size());
  close(in.fds[1]);
  in.fds[1] = -1;
  client::CommandIo io;
  io.streams.stdin = !input.empty();
  io.in = in.fds[0];
  io.out = out.fds[1];
  io.err = err.fds[1];
  Result r;
  r.code = client::RunCommand(url, t, tls, io);
  r.out = out.Take();
  r.err = err.Take();
  return r;
}

std::string TempFile(const std::string& name, const std::string& content) {
  std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << content;
  return path;
}

const char* kScript = "echo out; echo err >&2; read x; echo got $x; exit 3";

TEST(StreamingClient, ExecOverTlsTrustingThePinnedCertificate) {
  ServerOptions so;
  so.tls = true;
  Server s(so);
  EXPECT_EQ(s.base_url().rfind("https://127.0.0.1:", 0), 0u) << s.base_url();
  ASSERT_NE(s.certificate_pem().find("BEGIN CERTIFICATE"), std::string::npos);
  client::Tls pinned{s.certificate_pem(), true};
  for (Transport t : {Transport::kSpdy, Transport::kWebSocket}) {
    auto r = RunExec(s.Register(Exec(kScript, true)), t, pinned, "hi\n");
    EXPECT_EQ(r.code, 3);
    EXPECT_EQ(r.out, "out\ngot hi\n");
    EXPECT_EQ(r.err, "err\n");
  }
  // The self-signed certificate names 127.0.0.1: verified as a CA with the host checked.
  auto r = RunExec(s.Register(Exec("cat", true)), Transport::kSpdy, {s.certificate_pem(), false},
                   "through tls");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "through tls");
  // Another certificate, or the system's CAs: refused.
  client::Tls other{MakeSelfSigned("127.0.0.1").cert_pem, true};
  EXPECT_THROW(RunExec(s.Register(Exec("true", false)), Transport::kSpdy, other, ""), berth::Error);
  EXPECT_THROW(RunExec(s.Register(Exec("true", false)), Transport::kWebSocket, {}, ""),
               berth::Error);
}

TEST(StreamingClient, PlainExecBothTransports) {
  Server s(ServerOptions{});
  for (Transport t : {Transport::kSpdy, Transport::kWebSocket}) {
    auto r = RunExec(s.Register(Exec(kScript, true)), t, {}, "there\n");
    EXPECT_EQ(r.code, 3);
    EXPECT_EQ(r.out, "out\ngot there\n");
    r = RunExec(s.Register(Exec("head -c 3000000 /dev/zero | wc -c", false)), t, {}, "");
    EXPECT_EQ(r.code, 0);
    EXPECT_EQ(std::atoi(r.out.c_str()), 3000000);
  }
  // A used token: 404, named.
  auto url = s.Register(Exec("true", false));
  RunExec(url, Transport::kSpdy, {}, "");
  try {
    RunExec(url, Transport::kSpdy, {}, "");
    FAIL() << "a used token worked";
  } catch (const berth::Error& e) {
    EXPECT_NE(std::string(e.what()).find("404"), std::string::npos) << e.what();
  }
}

TEST(StreamingServer, TlsKeyPairFromFiles) {
  auto kp = MakeSelfSigned("127.0.0.1");
  ServerOptions so;
  so.tls = true;
  so.tls_cert_file = TempFile("cert.pem", kp.cert_pem);
  so.tls_key_file = TempFile("key.pem", kp.key_pem);
  {
    Server s(so);
    EXPECT_EQ(s.certificate_pem(), kp.cert_pem);
    auto r = RunExec(s.Register(Exec("echo files", false)), Transport::kWebSocket,
                     {kp.cert_pem, false}, "");
    EXPECT_EQ(r.out, "files\n");
  }
  auto fails_naming = [&](const std::string& what) {
    try {
      Server s(so);
      ADD_FAILURE() << "the server started";
    } catch (const berth::Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  so.tls_key_file = TempFile("bad-key.pem", "not a key\n");
  fails_naming("tls_key_file " + so.tls_key_file);
  so.tls_key_file = ::testing::TempDir() + "/no-such-key.pem";
  fails_naming(so.tls_key_file + ": No such file or directory");
  so.tls_key_file = TempFile("other-key.pem", MakeSelfSigned("127.0.0.1").key_pem);
  fails_naming("does not match the certificate in " + so.tls_cert_file);
}

TEST(StreamingServer, IdleWebSocketSessionsAreClosed) {
  ServerOptions so;
  so.idle_timeout = std::chrono::milliseconds(300);
  Server s(so);
  std::atomic<int> pid{0};
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(
      RunExec(s.Register(Exec("exec sleep 30", false, &pid)), Transport::kWebSocket, {}, ""),
      berth::Error);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  // The command of a session that went away is killed.
  for (int i = 0; i < 100 && pid > 0 && kill(pid, 0) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_NE(kill(pid, 0), 0) << "the command still runs";
  // A session that talks is not cut.
  auto r = RunExec(s.Register(Exec("for i in 1 2 3 4 5; do echo $i; sleep 0.1; done", false)),
                   Transport::kWebSocket, {}, "");
  EXPECT_EQ(r.out, "1\n2\n3\n4\n5\n");
}

}  // namespace

// A SPDY/3.1 server of the test's own that gives each stream a 16 KiB receive window: berth's
// client sends no byte of stdin beyond the window, and goes on once the window reopens.
TEST(StreamingClient, SpdyHonoursTheServersWindows) {
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(ls, 1), 0);
  socklen_t len = sizeof a;
  getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len);
  const std::string url = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/exec/t";
  constexpr uint32_t kWindow = 16 << 10;
  const std::string input(3 * kWindow, 'x');
  size_t granted = kWindow, got = 0, most_beyond = 0;  // stdin bytes allowed, received
  int grants = 0;
  std::thread server([&] {
    int c = accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
    std::string in;
    char buf[65536];
    while (in.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = read(c, buf, sizeof buf);
      if (n <= 0) {
        close(c);
        return;
      }
      in.append(buf, n);
    }
    in.erase(0, in.find("\r\n\r\n") + 4);
    spdy::HeaderWriter hw;
    std::string out =
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
        "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n" +
        spdy::Settings({{spdy::kSettingsInitialWindowSize, kWindow}});
    spdy::Parser parser;
    std::map<std::string, uint32_t> ids;
    timeval tv = {0, 300 * 1000};  // a read that times out: the client has gone quiet
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (got < input.size()) {
      if (!out.empty()) (void)!write(c, out.data(), out.size());
      out.clear();
      spdy::Frame f;
      std::string err;
      auto r = parser.Next(in, &f, &err);
      if (r == spdy::Parser::Result::kError) break;
      if (r == spdy::Parser::Result::kNeedMore) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n == 0) break;
        if (n < 0 && got == granted) {  // quiet with the window used up: open it again
          granted += kWindow;
          ++grants;
          out = spdy::WindowUpdate(ids["stdin"], kWindow) + spdy::WindowUpdate(0, kWindow);
          continue;
        }
        if (n < 0) continue;  // a slow client: wait
        in.append(buf, n);
        continue;
      }
      if (f.type == spdy::Type::kSynStream) {
        ids[spdy::Get(f.headers, "streamtype")] = f.stream_id;
        out = spdy::SynReply(hw, f.stream_id, {{":status", "200"}}, false);
      } else if (f.type == spdy::Type::kData && f.stream_id == ids["stdin"]) {
        got += f.data.size();
        if (got > granted) most_beyond = std::max(most_beyond, got - granted);
      }
    }
    out = spdy::Data(ids["error"], R"({"metadata":{},"status":"Success"})", true);
    for (const char* s : {"stdin", "stdout", "stderr"})
      if (ids.count(s)) out += spdy::Data(ids[s], "", true);
    (void)!write(c, out.data(), out.size());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    close(c);
  });
  Result r = RunExec(url, Transport::kSpdy, {}, input);
  server.join();
  close(ls);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(got, input.size());
  EXPECT_EQ(most_beyond, 0u) << "bytes sent beyond the server's window";
  EXPECT_EQ(grants, 2);  // it stopped at 16 KiB and at 32 KiB
}
