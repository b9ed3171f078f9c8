// The streaming server of the CRI plugin (stream_server_address/port, stream_idle_timeout,
// enable_tls_streaming with x509_key_pair_streaming) and
// the Exec, Attach and PortForward calls that hand out its URLs.
#include "cri/streaming.h"

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "config/cri.h"
#include "cri/errors.h"
#include "cri/runtime_service.h"
#include "cri/server.h"
#include "lifecycle/service.h"
#include "streaming/server.h"

namespace berth::cri {

std::shared_ptr<streaming::Server> StartStreamingServer(const config::ServerConfig& c) {
  streaming::ServerOptions o;
  o.address = c.stream_server_address.empty() ? "127.0.0.1" : c.stream_server_address;
  const std::string& port = c.stream_server_port;
  if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stol(port) > 65535)
    throw Error(Code::kInvalidArgument,
                "stream_server_port = \"" + port + "\" is not a port number");
  o.port = static_cast<uint16_t>(std::stol(port));
  std::chrono::nanoseconds idle{0};
  if (!config::ParseDuration(c.stream_idle_timeout, &idle) || idle.count() < 0)
    throw Error(Code::kInvalidArgument,
                "stream_idle_timeout = \"" + c.stream_idle_timeout + "\" is not a duration");
  o.idle_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(idle);
  o.tls = c.enable_tls_streaming;
  o.tls_cert_file = c.x509_key_pair_streaming.tls_cert_file;
  o.tls_key_file = c.x509_key_pair_streaming.tls_key_file;
  auto s = std::make_shared<streaming::Server>(o);
  if (o.tls && o.tls_cert_file.empty())
    spdlog::info("CRI: streaming over TLS with a self-signed certificate made at start");
  spdlog::info("CRI: streaming server on {}", s->base_url());
  return s;
}

std::string StreamingCertificate(const CRIServer& server) {
  return server.deps().streaming ? server.deps().streaming->certificate_pem() : "";
}

namespace {

streaming::Server& Streaming(const CRIServer& server) {
  if (!server.deps().streaming) {
    throw Error(Code::kUnavailable,
                "the streaming server is not available: " + server.deps().streaming_error);
  }
  return *server.deps().streaming;
}

lifecycle::RuntimeService& Pods(const CRIServer& server) {
  if (!server.deps().pods) {
    throw Error(Code::kUnavailable,
                "pods and containers are not available: " + server.deps().pods_error);
  }
  return *server.deps().pods;
}

}  // namespace

grpc::Status RuntimeServiceImpl::Exec(grpc::ServerContext*, const runtime::v1::ExecRequest* req,
                                      runtime::v1::ExecResponse* resp) {
  return Guard(
      "Exec", [&] { resp->set_url(Streaming(server_).Register(Pods(server_).PrepareExec(*req))); });
}

grpc::Status RuntimeServiceImpl::Attach(grpc::ServerContext*, const runtime::v1::AttachRequest* req,
                                        runtime::v1::AttachResponse* resp) {
  return Guard("Attach", [&] {
    resp->set_url(Streaming(server_).Register(Pods(server_).PrepareAttach(*req)));
  });
}

grpc::Status RuntimeServiceImpl::PortForward(grpc::ServerContext*,
                                             const runtime::v1::PortForwardRequest* req,
                                             runtime::v1::PortForwardResponse* resp) {
  return Guard("PortForward", [&] {
    resp->set_url(Streaming(server_).Register(Pods(server_).PreparePortForward(*req)));
  });
}

}  // namespace berth::cri
