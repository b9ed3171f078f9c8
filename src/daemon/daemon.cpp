#include "daemon/daemon.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/error.h"
#include "common/fs.h"
#include "metrics/http.h"
#include "metrics/metrics.h"
#include "plugin/grpc_service.h"

namespace berth::daemon {

namespace {

std::string SocketPath(const std::string& address) {
  if (address.rfind("unix://", 0) == 0) return address.substr(7);
  if (address.rfind("unix:", 0) == 0) return address.substr(5);
  return address;
}

std::string Dirname(const std::string& path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

// True when something accepts connections on the unix socket at path.
bool SocketIsLive(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno("failed to create a unix socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::close(fd);
  return rc == 0;
}

// Makes the socket path usable: directory created, stale socket removed, live one refused.
void PrepareSocket(const std::string& path) {
  if (path.empty()) throw Error(Code::kInvalidArgument, "[grpc] address is empty");
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    throw Error(Code::kInvalidArgument, "[grpc] address " + path + " is too long for a unix socket (max " +
                                            std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes)");
  }
  fs::MkdirAll(Dirname(path), 0711);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    ThrowErrno("failed to stat " + path);
  }
  if (!S_ISSOCK(st.st_mode)) {
    throw Error(Code::kAlreadyExists, "[grpc] address " + path + " exists and is not a socket");
  }
  if (SocketIsLive(path)) {
    throw Error(Code::kAlreadyExists,
                "[grpc] address " + path + " is in use: another daemon is serving on it");
  }
  spdlog::info("removing stale socket {}", path);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) ThrowErrno("failed to remove stale socket " + path);
}

}  // namespace

std::unique_ptr<Daemon> Daemon::Load(Options opts) {
  std::unique_ptr<Daemon> d(new Daemon());
  d->effective_toml_ = std::make_shared<std::string>();
  d->check_pipeline_ = std::make_shared<PipelineResult>();
  for (const auto& reg : opts.registrars) reg(d->registry_);
  RegisterAdminPlugin(d->registry_, d->effective_toml_, d->check_pipeline_);

  d->pipeline_ = RunConfigPipeline(opts, d->registry_);
  auto& p = d->pipeline_;
  SetLogLevel(p.config.debug.level.empty() ? "info" : p.config.debug.level);
  SetLogFormat(p.config.debug.format);
  d->metrics_config_ = MetricsConfigFrom(p.config);
  metrics::SetGrpcHistogram(d->metrics_config_.grpc_histogram);
  if (!p.file.empty()) spdlog::info("loaded config {}", p.file);
  if (p.migrated) {
    spdlog::warn("migrated config from version {}; run `berthd config migrate` to update the file",
                 p.file_version);
  }
  for (const auto& w : p.warnings) spdlog::warn("{}", w);
  if (!p.errors.empty()) {
    std::string msg = "invalid config";
    if (!p.file.empty()) msg += " " + p.file;
    msg += ":";
    for (size_t i = 0; i < p.errors.size(); ++i) msg += (i ? "; " : " ") + p.errors[i];
    throw Error(Code::kInvalidArgument, msg);
  }
  *d->effective_toml_ = config::ToToml(EffectiveConfig(p, d->registry_));
  *d->check_pipeline_ = p;

  const auto& c = p.config;
  if (c.root.empty() || c.state.empty()) throw Error(Code::kInvalidArgument, "root and state must be set");
  if (c.root == c.state) {
    throw Error(Code::kInvalidArgument, "root and state must be different paths (both " + c.root + ")");
  }
  fs::MkdirAll(c.root, 0711);
  fs::MkdirAll(c.state, 0711);

  plugin::Registry::InitOptions init;
  init.root = c.root;
  init.state = c.state;
  init.grpc_address = SocketPath(c.grpc.address);
  init.disabled = c.disabled_plugins;
  init.configs = p.configs;
  d->registry_.InitAll(init);

  for (const auto& uri : c.required_plugins) {
    const plugin::PluginState* found = nullptr;
    for (const auto& s : d->registry_.States()) {
      if (s.registration->URI() == uri) found = &s;
    }
    if (!found) {
      throw Error(Code::kFailedPrecondition, "required plugin " + uri + " is not registered");
    }
    if (found->status != plugin::Status::kLoaded) {
      std::string why = plugin::StatusName(found->status);
      if (!found->error.empty()) why += ": " + found->error;
      throw Error(Code::kFailedPrecondition, "required plugin " + uri + " did not load (" + why + ")");
    }
  }
  return d;
}

Daemon::~Daemon() { Stop(); }

void Daemon::Start() {
  const auto& g = pipeline_.config.grpc;
  const std::string path = SocketPath(g.address);
  PrepareSocket(path);

  grpc::ServerBuilder builder;
  grpc::ResourceQuota quota("berthd");
  quota.SetMaxThreads(128);
  builder.SetResourceQuota(quota);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS, 1);
  // At least one poller, at most two. A poller that takes a request starts a thread only when no
  // other poller is left, and goes back to polling after the request while fewer than two poll:
  // after the first request two threads poll and a request starts no thread. (With at least two
  // pollers and at most two, every request would start a thread and end one.)
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 2);
  if (g.max_recv_message_size > 0) {
    builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<int64_t>(g.max_recv_message_size, INT32_MAX)));
  }
  if (g.max_send_message_size > 0) {
    builder.SetMaxSendMessageSize(static_cast<int>(std::min<int64_t>(g.max_send_message_size, INT32_MAX)));
  }
  builder.AddListeningPort("unix:" + path, grpc::InsecureServerCredentials());
  if (!g.tcp_address.empty()) {
    spdlog::warn("[grpc] tcp_address {} is not supported by berthd; serving on the unix socket only",
                 g.tcp_address);
  }

  if (!metrics_config_.address.empty()) AddMetricsInterceptor(builder);
  int services = 0;
  for (const auto& s : registry_.States()) {
    if (s.registration->type != plugin::kGRPCPlugin) continue;
    if (auto svc = s.As<plugin::GrpcService>()) {
      svc->Register(builder);
      ++services;
      spdlog::debug("registered gRPC plugin {}", s.registration->URI());
    }
  }

  // The socket is created by BuildAndStart with the process umask; tighten it to 0660 at once.
  mode_t old_umask = ::umask(0117);
  server_ = builder.BuildAndStart();
  ::umask(old_umask);
  if (!server_) {
    throw Error(Code::kUnavailable, "failed to serve gRPC on unix socket " + path);
  }
  socket_owned_ = true;
  if (::chmod(path.c_str(), 0660) != 0) ThrowErrno("failed to chmod " + path);
  // [grpc] uid and gid: the socket's owner and group (e.g. a group whose members may use crictl).
  if ((g.uid != 0 || g.gid != 0) && ::chown(path.c_str(), g.uid, g.gid) != 0) {
    ThrowErrno("failed to chown " + path + " to uid " + std::to_string(g.uid) + " gid " +
               std::to_string(g.gid));
  }
  if (!metrics_config_.address.empty()) {
    metrics_ = std::make_unique<metrics::HttpServer>(metrics_config_.address);
    spdlog::info("metrics on {} (port {}) at {}", metrics_config_.address, metrics_->port(),
                 metrics::kMetricsPath);
  }
  spdlog::info("berthd serving on {} ({} gRPC plugins)", path, services);
  NotifySystemd("READY=1\nSTATUS=serving on " + path + "\nMAINPID=" + std::to_string(::getpid()));
}

int Daemon::metrics_port() const { return metrics_ ? metrics_->port() : 0; }

void Daemon::Wait() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return stopped_; });
}

void Daemon::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  NotifySystemd("STOPPING=1");
  metrics_.reset();
  if (server_) {
    spdlog::info("stopping gRPC server");
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server_->Wait();
    server_.reset();
  }
  registry_.CloseAll();
  if (socket_owned_) {
    const std::string path = SocketPath(pipeline_.config.grpc.address);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      spdlog::warn("failed to remove socket {}: {}", path, std::strerror(errno));
    }
    socket_owned_ = false;
  }
  spdlog::info("berthd stopped");
  cv_.notify_all();
}

}  // namespace berth::daemon
