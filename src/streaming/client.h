// A client of the streaming protocols (what berthctl exec, attach and port-forward speak): the
// URL that Exec, Attach or PortForward handed out, over SPDY/3.1 or WebSocket, plain or TLS.
// Speaks what kubelet's clients speak, so it works against any CRI streaming server.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "streaming/process.h"

namespace berth::streaming::client {

enum class Transport { kSpdy, kWebSocket };

// For https:// URLs. `trusted_pem` empty: the system's CAs, and the certificate must name the
// URL's host. `pinned`: trusted_pem is the server's own certificate (as berthd reports it on its
// socket), the only one accepted, for whatever host.
struct Tls {
  std::string trusted_pem;
  bool pinned = false;
};

struct CommandIo {
  CommandOptions streams;  // stdin, stdout, stderr, tty as the request had them
  int in = 0, out = 1, err = 2;
  // With a tty: the terminal's size, sent at the start and again on SIGWINCH; false: none known.
  std::function<bool(TermSize*)> term_size;
};

// Runs exec or attach at `url` to its end: stdin is copied from io.in until end of file (then
// closed for the command, when the protocol can say so), output to io.out/io.err. Returns the
// command's exit code. Throws Error when the connection or the command failed.
int RunCommand(const std::string& url, Transport t, const Tls& tls, const CommandIo& io);

struct PortSpec {
  uint16_t local = 0;  // 0: a free port
  uint16_t remote = 0;
};

struct PortForwardOptions {
  Transport transport = Transport::kSpdy;
  Tls tls;
  std::string address = "127.0.0.1";  // where the local listeners are
  std::vector<PortSpec> ports;
  // A new PortForward URL: once for SPDY (all connections share one session), once per local
  // connection for WebSocket (its protocol has one stream per port and session).
  std::function<std::string()> new_url;
  // Each listener, once it listens.
  std::function<void(uint16_t local, uint16_t remote)> listening;
  // Each connection's failure (an error the server sent, a lost session).
  std::function<void(const std::string&)> connection_error;
};

// Listens and forwards until SIGINT or SIGTERM (returns then), or until the SPDY session ends
// (throws Error).
void RunPortForward(const PortForwardOptions& o);

// The exit code in what an error stream carried (a metav1.Status JSON, or before v4 a message):
// 0 for Success. Throws Error with the message for failures other than a non-zero exit.
int ExitCodeFromStatus(const std::string& status);

}  // namespace berth::streaming::client
