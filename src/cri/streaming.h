// The CRI plugin's streaming server (see docs/streaming.md).
#pragma once

#include <memory>
#include <string>

namespace berth::config {
struct ServerConfig;
}
namespace berth::streaming {
class Server;
}

namespace berth::cri {

class CRIServer;

// Listens on stream_server_address:stream_server_port. Throws Error naming the bad key.
std::shared_ptr<streaming::Server> StartStreamingServer(const config::ServerConfig& c);

// The streaming server's TLS certificate (PEM), "" without TLS: Status verbose info
// "streamingCertificate", which clients on berthd's socket (berthctl) trust for https:// URLs.
std::string StreamingCertificate(const CRIServer& server);

}  // namespace berth::cri
