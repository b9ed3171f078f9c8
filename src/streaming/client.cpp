// The streaming client: connection set-up (TCP, TLS, the HTTP upgrade), the SPDY and WebSocket
// connections, and what runs on them (client_command.cpp, client_portforward.cpp).
#include "streaming/client_conn.h"

#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <unistd.h>

#include <boost/asio/ssl/host_name_verification.hpp>

#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace berth::streaming::client {

Url ParseUrl(const std::string& url) {
  Url u;
  std::string rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    u.tls = true;
    rest = url.substr(8);
  } else {
    throw Error(Code::kInvalidArgument, "streaming URL " + url + ": not http:// or https://");
  }
  auto slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  u.target = slash == std::string::npos ? "/" : rest.substr(slash);
  std::string port;
  if (!hostport.empty() && hostport[0] == '[') {
    auto close = hostport.find(']');
    if (close == std::string::npos)
      throw Error(Code::kInvalidArgument, "streaming URL " + url + ": bad IPv6 address");
    u.host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size() && hostport[close + 1] == ':')
      port = hostport.substr(close + 2);
    u.host_header = hostport;
  } else {
    auto colon = hostport.rfind(':');
    u.host = hostport.substr(0, colon);
    if (colon != std::string::npos) port = hostport.substr(colon + 1);
    u.host_header = hostport;
  }
  u.port = port.empty() ? (u.tls ? "443" : "80") : port;
  if (u.host.empty()) throw Error(Code::kInvalidArgument, "streaming URL " + url + ": no host");
  return u;
}

std::unique_ptr<asio::ssl::context> ClientTls(const Tls& t) {
  namespace ssl = asio::ssl;
  auto c = std::make_unique<ssl::context>(ssl::context::tls_client);
  c->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                 ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  if (t.trusted_pem.empty()) {
    c->set_default_verify_paths(ec);
  } else {
    c->add_certificate_authority(asio::buffer(t.trusted_pem), ec);
  }
  if (ec) throw Error(Code::kInvalidArgument, "the certificates to trust: " + ec.message());
  // A pinned certificate is a trust anchor of its own, even when it is not a CA's.
  if (t.pinned)
    X509_STORE_set_flags(SSL_CTX_get_cert_store(c->native_handle()), X509_V_FLAG_PARTIAL_CHAIN);
  c->set_verify_mode(ssl::verify_peer);
  return c;
}

namespace {

// The first certificate of a PEM text, DER encoded.
std::string FirstCertDer(const std::string& pem) {
  BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* x = b ? PEM_read_bio_X509(b, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(b);
  if (!x) return "";
  unsigned char* der = nullptr;
  int n = i2d_X509(x, &der);
  std::string out(n > 0 ? reinterpret_cast<char*>(der) : "", n > 0 ? n : 0);
  OPENSSL_free(der);
  X509_free(x);
  return out;
}

std::string PeerCertDer(SSL* ssl) {
  X509* x = SSL_get1_peer_certificate(ssl);
  if (!x) return "";
  unsigned char* der = nullptr;
  int n = i2d_X509(x, &der);
  std::string out(n > 0 ? reinterpret_cast<char*>(der) : "", n > 0 ? n : 0);
  OPENSSL_free(der);
  X509_free(x);
  return out;
}

bool IsIpAddress(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

awaitable<void> ConnectTcp(beast::tcp_stream& s, const Url& u) {
  tcp::resolver r(s.get_executor());
  auto eps = co_await r.async_resolve(u.host, u.port, use_awaitable);
  s.expires_after(std::chrono::seconds(30));
  co_await s.async_connect(eps, use_awaitable);
  s.expires_never();
  s.socket().set_option(tcp::no_delay(true));
}

awaitable<void> TlsHandshake(TlsStream& s, const Url& u, const Tls& t) {
  if (!t.pinned) {
    s.set_verify_callback(asio::ssl::host_name_verification(u.host));
    if (!IsIpAddress(u.host)) SSL_set_tlsext_host_name(s.native_handle(), u.host.c_str());
  }
  beast::get_lowest_layer(s).expires_after(std::chrono::seconds(30));
  boost::system::error_code ec;
  co_await s.async_handshake(asio::ssl::stream_base::client,
                             asio::redirect_error(use_awaitable, ec));
  beast::get_lowest_layer(s).expires_never();
  if (ec)
    throw Error(Code::kUnavailable,
                "TLS handshake with " + u.host_header + ": " + ec.message() +
                    (t.pinned ? " (the certificate is not the one berthd reports)" : ""));
  if (t.pinned && PeerCertDer(s.native_handle()) != FirstCertDer(t.trusted_pem))
    throw Error(Code::kUnavailable, "TLS handshake with " + u.host_header +
                                        ": the server's certificate is not the one berthd reports");
}

std::string UpgradeRequest(const Url& u, const std::vector<std::string>& protocols) {
  std::string req = "POST " + u.target + " HTTP/1.1\r\nHost: " + u.host_header +
                    "\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n";
  for (const auto& p : protocols) req += "X-Stream-Protocol-Version: " + p + "\r\n";
  return req + "Content-Length: 0\r\n\r\n";
}

void CheckUpgrade(const http::response<http::string_body>& res, const Url& u) {
  if (res.result() == http::status::switching_protocols) return;
  std::string body = res.body();
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
  throw Error(res.result() == http::status::not_found ? Code::kNotFound : Code::kUnavailable,
              "streaming server " + u.host_header + ": HTTP " + std::to_string(res.result_int()) +
                  " " + std::string(res.reason()) + (body.empty() ? "" : ": " + body));
}

void WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(Code::kInternal, std::string("writing output: ") + std::strerror(errno));
    data.remove_prefix(static_cast<size_t>(n));
  }
}

namespace {

// An exit code's text as the process's status: 1..255 (anything else that is not a number > 0
// counts as 1).
int ExitCode(const char* text) {
  long v = std::strtol(text, nullptr, 10);
  return v > 0 && v <= 255 ? static_cast<int>(v) : 1;
}

}  // namespace

int ExitCodeFromStatus(const std::string& status) {
  if (status.empty()) return 0;
  auto j = nlohmann::json::parse(status, nullptr, false);
  if (!j.is_object()) {
    // Before v4: the message alone.
    const std::string marker = "exit code ";
    auto at = status.rfind(marker);
    if (at != std::string::npos) return ExitCode(status.c_str() + at + marker.size());
    throw Error(Code::kUnknown, status);
  }
  // Fields of unexpected types are no exit code: the status as a whole is the error.
  auto str = [&](const nlohmann::json& o, const char* k) {
    auto it = o.find(k);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (str(j, "status") == "Success") return 0;
  auto details = j.find("details");
  if (str(j, "reason") == "NonZeroExitCode" && details != j.end() && details->is_object()) {
    auto causes = details->find("causes");
    if (causes != details->end() && causes->is_array()) {
      for (const auto& c : *causes) {
        if (c.is_object() && str(c, "reason") == "ExitCode") {
          return ExitCode(str(c, "message").c_str());
        }
      }
    }
  }
  std::string message = str(j, "message");
  throw Error(Code::kUnknown, message.empty() ? status : message);
}

// Input from a file descriptor, read on a thread of its own (a terminal, a pipe or a file can be
// stdin) and handed to the I/O thread one chunk at a time.
void InputPump::Start(int fd, asio::any_io_executor ex, Sink sink) {
  auto self = shared_from_this();
  std::thread([self, fd, ex, sink = std::move(sink)] {
    std::vector<char> buf(64 * 1024);
    while (true) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      std::string chunk(buf.data(), n > 0 ? static_cast<size_t>(n) : 0);
      {
        std::unique_lock<std::mutex> lock(self->mu_);
        if (self->stopped_) return;
        self->acked_ = false;
        asio::post(ex, [sink, chunk = std::move(chunk)]() mutable { sink(std::move(chunk)); });
        if (n <= 0) return;
        self->cv_.wait(lock, [&] { return self->acked_ || self->stopped_; });
        if (self->stopped_) return;
      }
    }
  }).detach();
}

void InputPump::Ack() {
  std::lock_guard<std::mutex> lock(mu_);
  acked_ = true;
  cv_.notify_all();
}

void InputPump::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  stopped_ = true;
  cv_.notify_all();
}

void RunLoop(asio::io_context& io, awaitable<void> main) {
  std::exception_ptr failure;
  asio::co_spawn(io, std::move(main), [&](std::exception_ptr e) {
    failure = e;
    io.stop();
  });
  io.run();
  if (!failure) return;
  try {
    std::rethrow_exception(failure);
  } catch (const boost::system::system_error& e) {
    throw Error(Code::kUnavailable, std::string("streaming: ") + e.what());
  }
}

}  // namespace berth::streaming::client
