// Attach: the request the streaming server runs to reach a running container's own stdio through
// its berth-monitor (monitor/attach.h).
#include "lifecycle/service_impl.h"  // first: its enum Signal names collide with <signal.h> macros

#include "common/error.h"
#include "common/fs.h"
#include "monitor/attach.h"
#include "monitor/attach_client.h"

namespace berth::lifecycle {

namespace {

// The container's stdio for one client, as the streaming server runs it.
class AttachProcess : public streaming::Process {
 public:
  explicit AttachProcess(std::unique_ptr<monitor::AttachConnection> c) : c_(std::move(c)) {}
  int TakeStdin() override { return c_->TakeStdin(); }
  int TakeStdout() override { return c_->TakeStdout(); }
  int TakeStderr() override { return c_->TakeStderr(); }
  void Resize(streaming::TermSize s) override { c_->Resize(s.width, s.height); }
  // As kubelet's attach: the end of an attach is a success, whatever the container's exit code.
  int Wait() override {
    c_->Wait();
    return 0;
  }
  void Cancel() override { c_->Cancel(); }

 private:
  std::unique_ptr<monitor::AttachConnection> c_;
};

std::string Flag(bool b) { return b ? "true" : "false"; }

}  // namespace

streaming::Request RuntimeService::PrepareAttach(const v1::AttachRequest& req) {
  auto& I = *impl_;
  if (req.container_id().empty()) throw Error(Code::kInvalidArgument, "container_id is required");
  auto c = I.FindContainer(req.container_id());
  if (!req.stdin() && !req.stdout() && !req.stderr())
    throw Error(Code::kInvalidArgument, "one of stdin, stdout and stderr must be set");
  if (req.tty() && req.stderr())
    throw Error(Code::kInvalidArgument,
                "tty and stderr cannot both be set: a terminal merges stderr into stdout");
  std::string dir;
  {
    std::lock_guard<std::mutex> lock(I.mu);
    if (c->state != kRunning)
      throw Error(Code::kFailedPrecondition, "container " + c->id + " is not running");
    dir = c->dir;
  }
  if (req.stdin() && !c->config.stdin())
    throw Error(Code::kInvalidArgument, "stdin = true: container " + c->id +
                                            " was created without stdin, so it has none to attach");
  if (req.tty() != c->config.tty())
    throw Error(Code::kInvalidArgument, "tty = " + Flag(req.tty()) + " does not match container " +
                                            c->id +
                                            ", created with tty = " + Flag(c->config.tty()));
  streaming::Request r;
  r.kind = streaming::Request::Kind::kAttach;
  r.command = {req.stdin(), req.stdout(), req.stderr(), req.tty()};
  std::string socket = monitor::AttachSocketPath(dir);
  if (!fs::Exists(socket))
    throw Error(Code::kFailedPrecondition,
                "container " + c->id + ": its berth-monitor serves no attach socket at " + socket +
                    " (it was started by a berth without attach; restart the container)");
  r.start = [socket](const streaming::CommandOptions& o) -> std::unique_ptr<streaming::Process> {
    return std::make_unique<AttachProcess>(
        monitor::AttachConnection::Open(socket, o.stdin, o.stdout, o.stderr && !o.tty));
  };
  return r;
}

}  // namespace berth::lifecycle
