// The CRI plugin's streaming server (see docs/streaming.md).
#pragma once

#include <memory>

namespace berth::config {
struct ServerConfig;
}
namespace berth::streaming {
class Server;
}

namespace berth::cri {

// Listens on stream_server_address:stream_server_port. Throws Error naming the bad key.
std::shared_ptr<streaming::Server> StartStreamingServer(const config::ServerConfig& c);

}  // namespace berth::cri
