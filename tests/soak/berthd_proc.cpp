#include "berthd_proc.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "support/support.h"

namespace berth::testing {

std::unique_ptr<grpc::ClientContext> Deadline(int seconds) {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return c;
}

namespace {

BerthdOptions WithExtra(std::string extra) {
  BerthdOptions o;
  o.extra = std::move(extra);
  return o;
}

std::string HandlerTable(const std::string& name) {
  return "[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes." + name + "]\n" +
         "runtime_type = \"io.containerd.runc.v2\"\n";
}

std::string BinaryTable(const std::string& name, const std::string& binary) {
  return "[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes." + name + ".options]\n" +
         "BinaryName = \"" + binary + "\"\n";
}

}  // namespace

BerthdProc::BerthdProc(std::string dir, std::string berthd, std::string monitor, std::string pause,
                       std::string extra)
    : BerthdProc(std::move(dir), std::move(berthd), std::move(monitor), std::move(pause),
                 WithExtra(std::move(extra))) {}

BerthdProc::BerthdProc(std::string dir, std::string berthd, std::string monitor, std::string pause,
                       BerthdOptions opts)
    : dir_(std::move(dir)),
      berthd_(std::move(berthd)),
      monitor_(std::move(monitor)),
      pause_(std::move(pause)),
      opts_(std::move(opts)) {
  root_ = dir_ + "/root";
  state_ = dir_ + "/state";
  socket_ = dir_ + "/berth.sock";
  config_ = dir_ + "/config.toml";
  WriteConfig();
}

void BerthdProc::WriteConfig() {
  std::ostringstream c;
  c << "version = 3\n"
    << "root = \"" << root_ << "\"\n"
    << "state = \"" << state_ << "\"\n"
    << "[grpc]\naddress = \"" << socket_ << "\"\n"
    << opts_.grpc_extra
    << "[plugins.\"io.containerd.cri.v1.runtime\"]\nrestrict_oom_score_adj = true\n"
    << opts_.runtime_extra
    << "[plugins.\"io.containerd.cri.v1.runtime\".containerd]\ndefault_runtime_name = \""
    << opts_.handler << "\"\n";
  for (const auto& h : opts_.more_handlers) c << HandlerTable(h) << BinaryTable(h, h);
  c << HandlerTable(opts_.handler) << opts_.handler_extra;
  if (!opts_.binary.empty()) c << BinaryTable(opts_.handler, opts_.binary);
  c << opts_.extra;
  WriteFile(config_, c.str());
}

BerthdProc::~BerthdProc() { Kill(SIGTERM); }

std::string BerthdProc::Log() const {
  std::ifstream in(log_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string BerthdProc::Start(std::chrono::milliseconds timeout) {
  log_ = dir_ + "/berthd." + std::to_string(++starts_) + ".log";
  pid_ = ::fork();
  if (pid_ < 0) return "fork failed";
  if (pid_ == 0) {
    int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    if (!opts_.netns.empty()) {
      int ns = ::open(opts_.netns.c_str(), O_RDONLY | O_CLOEXEC);
      if (ns < 0 || ::setns(ns, CLONE_NEWNET) != 0) ::_exit(126);
    }
    ::setenv("BERTH_MONITOR_PATH", monitor_.c_str(), 1);
    ::setenv("BERTH_PAUSE_PATH", pause_.c_str(), 1);
    for (const auto& [k, v] : opts_.env) ::setenv(k.c_str(), v.c_str(), 1);
    ::execl(berthd_.c_str(), berthd_.c_str(), "--config", config_.c_str(), "--log-level",
            opts_.log_level.c_str(), nullptr);
    ::_exit(127);
  }
  // The channel is made once the socket accepts: a channel that met the stale socket of a killed
  // berthd would wait out gRPC's reconnect backoff (a second or more).
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool accepts = false;
  while (!accepts && std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return "berthd exited during startup:\n" + Log();
    }
    accepts = UnixSocketAccepts(socket_);
    if (!accepts) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(-1);
  args.SetMaxReceiveMessageSize(-1);
  channel_ = grpc::CreateCustomChannel("unix:" + socket_, grpc::InsecureChannelCredentials(), args);
  rt_ = ::runtime::v1::RuntimeService::NewStub(channel_);
  img_ = ::runtime::v1::ImageService::NewStub(channel_);
  admin_ = berth::images::v1::Images::NewStub(channel_);
  while (accepts && std::chrono::steady_clock::now() < deadline) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    ctx.set_wait_for_ready(true);
    ::runtime::v1::VersionResponse resp;
    if (rt_->Version(&ctx, {}, &resp).ok()) return "";
  }
  return "berthd did not answer on " + socket_ + ":\n" + Log();
}

bool BerthdProc::Alive() { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }

void BerthdProc::Kill(int sig) {
  if (pid_ <= 0) return;
  StopChild(pid_, sig);
  pid_ = -1;
}

}  // namespace berth::testing
