// ExecSync, and the requests the streaming server runs for Exec and PortForward.
#include "lifecycle/service_impl.h"  // first: its enum Signal names collide with <signal.h> macros

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "common/error.h"
#include "common/fs.h"
#include "lifecycle/exec.h"

namespace berth::lifecycle {

namespace {

// The container's own process spec (user, env, cwd, capabilities...) running `cmd`.
ExecTarget Target(RuntimeService::Impl& I, const std::shared_ptr<ContainerRecord>& c,
                  const google::protobuf::RepeatedPtrField<std::string>& cmd, bool tty) {
  if (cmd.empty()) throw Error(Code::kInvalidArgument, "exec command must not be empty");
  std::string handler;
  {
    std::lock_guard<std::mutex> lock(I.mu);
    if (c->state != kRunning)
      throw Error(Code::kFailedPrecondition, "container " + c->id + " is not running");
    handler = I.sandboxes.count(c->sandbox_id) ? I.sandboxes[c->sandbox_id]->handler : "";
  }
  auto spec = nlohmann::json::parse(fs::ReadFile(fs::Join(c->dir, "config.json"), 4 << 20));
  nlohmann::json process = spec["process"];
  process["args"] = std::vector<std::string>(cmd.begin(), cmd.end());
  process["terminal"] = tty;
  process.erase("oomScoreAdj");
  process.erase("consoleSize");
  return ExecTarget{c->id, c->dir, I.CliFor(handler), process.dump()};
}

// A TCP connection to localhost:port made from inside the network namespace at `netns` ("" =
// the host's): a thread of its own enters the namespace, so berthd's threads stay where they are.
int DialInNetns(const std::string& netns, uint16_t port) {
  int result = -1;
  std::string error;
  std::thread t([&] {
    if (!netns.empty()) {
      int ns = ::open(netns.c_str(), O_RDONLY | O_CLOEXEC);
      if (ns < 0 || ::setns(ns, CLONE_NEWNET) != 0) {
        error = "enter network namespace " + netns + ": " + std::strerror(errno);
        if (ns >= 0) ::close(ns);
        return;
      }
      ::close(ns);
    }
    for (int family : {AF_INET, AF_INET6}) {
      int s = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (s < 0) continue;
      sockaddr_storage ss = {};
      socklen_t len;
      if (family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
      } else {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
      }
      if (::connect(s, reinterpret_cast<sockaddr*>(&ss), len) == 0) {
        result = s;
        return;
      }
      error =
          std::string("dial tcp localhost:") + std::to_string(port) + ": " + std::strerror(errno);
      ::close(s);
    }
  });
  t.join();
  if (result < 0) throw Error(Code::kUnavailable, error);
  return result;
}

}  // namespace

void RuntimeService::ExecSync(const v1::ExecSyncRequest& req, v1::ExecSyncResponse* resp) {
  auto& I = *impl_;
  auto c = I.FindContainer(req.container_id());
  if (req.timeout() < 0) throw Error(Code::kInvalidArgument, "exec timeout must not be negative");
  auto target = Target(I, c, req.cmd(), false);
  constexpr int64_t kYear = 86400LL * 365;
  auto timeout = std::chrono::milliseconds(
      (req.timeout() > 0 ? std::min<int64_t>(req.timeout(), kYear) : kYear) * 1000);
  auto r = RunExecSync(target, timeout, I.opts.drain_exec_sync_io_timeout, 16u << 20);
  if (r.timed_out) {
    throw Error(Code::kDeadlineExceeded, "command " + req.cmd(0) + " in container " + c->id +
                                             " timed out after " + std::to_string(req.timeout()) +
                                             "s");
  }
  if (r.drain_expired) {
    throw Error(Code::kUnknown, "failed to drain the output of command " + req.cmd(0) +
                                    " in container " + c->id + " within " +
                                    std::to_string(I.opts.drain_exec_sync_io_timeout.count()) +
                                    "ms: it is still held by other processes");
  }
  resp->set_stdout(r.out);
  resp->set_stderr(r.err);
  resp->set_exit_code(r.exit_code);
}

streaming::Request RuntimeService::PrepareExec(const v1::ExecRequest& req) {
  auto& I = *impl_;
  auto c = I.FindContainer(req.container_id());
  if (!req.stdin() && !req.stdout() && !req.stderr())
    throw Error(Code::kInvalidArgument, "one of stdin, stdout and stderr must be set");
  if (req.tty() && req.stderr())
    throw Error(Code::kInvalidArgument,
                "tty and stderr cannot both be set: a terminal merges stderr into stdout");
  auto target = Target(I, c, req.cmd(), req.tty());
  streaming::Request r;
  r.kind = streaming::Request::Kind::kExec;
  r.command = {req.stdin(), req.stdout(), req.stderr(), req.tty()};
  r.start = [target](const streaming::CommandOptions& o) { return StartExec(target, o); };
  return r;
}

streaming::Request RuntimeService::PreparePortForward(const v1::PortForwardRequest& req) {
  auto& I = *impl_;
  auto sb = I.FindSandbox(req.pod_sandbox_id());
  streaming::Request r;
  r.kind = streaming::Request::Kind::kPortForward;
  for (int32_t p : req.port()) {
    if (p <= 0 || p > 65535)
      throw Error(Code::kInvalidArgument, "port " + std::to_string(p) + " is not in 1..65535");
    r.ports.push_back(static_cast<uint16_t>(p));
  }
  std::string netns;
  {
    std::lock_guard<std::mutex> lock(I.mu);
    if (sb->state != kReady)
      throw Error(Code::kFailedPrecondition, "pod sandbox " + sb->id + " is not ready");
    netns = sb->netns_path;
  }
  r.dial = [netns](uint16_t port) { return DialInNetns(netns, port); };
  return r;
}

}  // namespace berth::lifecycle
