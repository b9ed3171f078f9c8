// berthd's streaming server, as containerd's CRI plugin runs one: Exec, Attach and PortForward
// answer with a URL on it (http://ADDR:PORT/{exec,attach,portforward}/TOKEN), and the client
// (kubelet, the API server, berthctl) connects there with SPDY/3.1 or WebSocket. See
// docs/streaming.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "streaming/process.h"

namespace berth::streaming {

struct ServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 0;                                               // 0: a free port
  std::chrono::milliseconds idle_timeout = std::chrono::hours(4);  // 0: none
  std::chrono::milliseconds token_ttl = std::chrono::minutes(1);
  size_t max_tokens = 1000;
  std::chrono::milliseconds header_timeout = std::chrono::seconds(30);
  std::chrono::milliseconds stream_creation_timeout = std::chrono::seconds(30);
  // TLS (https:// URLs): the PEM files of a certificate (chain) and its key; with both empty a
  // self-signed certificate is made at start, in memory, for `address` (see tls.cpp).
  bool tls = false;
  std::string tls_cert_file, tls_key_file;
};

class Server {
 public:
  // Listens at once; serves on a thread of its own from the first Register on. Throws Error
  // naming the address.
  explicit Server(ServerOptions opts);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // A one-use token for `r`, good for token_ttl; the URL to hand out. Throws
  // Error(kResourceExhausted) with max_tokens outstanding.
  std::string Register(Request r);
  uint16_t port() const;
  std::string base_url() const;  // http://ADDR:PORT or https://ADDR:PORT
  // With TLS: the server's certificate (PEM), for clients that are told to trust it.
  std::string certificate_pem() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace berth::streaming
