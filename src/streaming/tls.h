// Internal to berth_streaming: the streaming server's TLS (enable_tls_streaming).
#pragma once

#include <boost/asio/ssl/context.hpp>

#include <memory>
#include <string>

namespace berth::streaming {

struct ServerOptions;

// A self-signed certificate and its key (PEM), as containerd makes one when TLS streaming is on
// without a key pair: ECDSA P-256, one year, for the host name, localhost, 127.0.0.1, ::1 and
// `address` (every local address when `address` is 0.0.0.0 or ::).
struct KeyPair {
  std::string cert_pem, key_pem;
};
KeyPair MakeSelfSigned(const std::string& address);

// The server's TLS context (TLS 1.2 and later): from tls_cert_file/tls_key_file, or a
// self-signed certificate made now. *cert_pem receives the certificate in use. Throws Error
// naming the file and the cause.
std::unique_ptr<boost::asio::ssl::context> MakeServerTls(const ServerOptions& o,
                                                         std::string* cert_pem);

}  // namespace berth::streaming
