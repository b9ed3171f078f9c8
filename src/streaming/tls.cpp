#include "streaming/tls.h"

#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "common/error.h"
#include "streaming/server.h"

namespace berth::streaming {

namespace ssl = boost::asio::ssl;

namespace {

std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  std::string s;
  while (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!s.empty()) s += "; ";
    s += buf;
    e = ERR_get_error();
  }
  return s.empty() ? "unknown OpenSSL error" : s;
}

[[noreturn]] void Fail(const std::string& what) {
  throw Error(Code::kInternal, "streaming TLS: " + what + ": " + OpenSslError());
}

template <class T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;

std::string BioText(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return std::string(data, n > 0 ? static_cast<size_t>(n) : 0);
}

// The subject alternative names: DNS:... and IP:... entries.
std::string AltNames(const std::string& address) {
  std::set<std::string> dns = {"localhost"}, ips = {"127.0.0.1", "::1"};
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) == 0 && host[0]) dns.insert(host);
  if (address == "0.0.0.0" || address == "::" || address.empty()) {
    ifaddrs* ifs = nullptr;
    if (getifaddrs(&ifs) == 0) {
      for (ifaddrs* i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr) continue;
        int fam = i->ifa_addr->sa_family;
        if (fam != AF_INET && fam != AF_INET6) continue;
        char buf[NI_MAXHOST];
        socklen_t len = fam == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
        if (getnameinfo(i->ifa_addr, len, buf, sizeof buf, nullptr, 0, NI_NUMERICHOST) == 0 &&
            !std::strchr(buf, '%'))
          ips.insert(buf);
      }
      freeifaddrs(ifs);
    }
  } else {
    ips.insert(address);
  }
  std::string s;
  for (const auto& d : dns) s += (s.empty() ? "" : ",") + std::string("DNS:") + d;
  for (const auto& ip : ips) s += ",IP:" + ip;
  return s;
}

void AddExtension(X509* x, int nid, const std::string& value) {
  X509V3_CTX c;
  X509V3_set_ctx_nodb(&c);
  X509V3_set_ctx(&c, x, x, nullptr, nullptr, 0);
  X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &c, nid, value.c_str());
  if (!e || X509_add_ext(x, e, -1) != 1) {
    X509_EXTENSION_free(e);
    Fail("certificate extension " + value);
  }
  X509_EXTENSION_free(e);
}

std::string ReadFileOrThrow(const std::string& key, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw Error(Code::kInvalidArgument,
                "x509_key_pair_streaming." + key + " " + path + ": " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool IsPemKey(const std::string& pem) {
  BioPtr b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  // No passphrase prompt: an encrypted key is refused.
  auto no_passphrase = [](char*, int, int, void*) { return 0; };
  KeyPtr k(b ? PEM_read_bio_PrivateKey(b.get(), nullptr, no_passphrase, nullptr) : nullptr);
  return k != nullptr;
}

}  // namespace

KeyPair MakeSelfSigned(const std::string& address) {
  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) Fail("generating a P-256 key");
  X509Ptr x(X509_new());
  if (!x || X509_set_version(x.get(), 2) != 1) Fail("a new certificate");
  BnPtr serial(BN_new());
  if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(x.get())))
    Fail("a certificate serial number");
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 365L * 24 * 3600);
  X509_set_pubkey(x.get(), key.get());
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("berth"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("berth streaming server"), -1,
                             -1, 0);
  X509_set_issuer_name(x.get(), name);
  AddExtension(x.get(), NID_basic_constraints, "critical,CA:TRUE");
  AddExtension(x.get(), NID_key_usage, "critical,digitalSignature,keyCertSign");
  AddExtension(x.get(), NID_ext_key_usage, "serverAuth");
  AddExtension(x.get(), NID_subject_key_identifier, "hash");
  AddExtension(x.get(), NID_subject_alt_name, AltNames(address));
  if (X509_sign(x.get(), key.get(), EVP_sha256()) == 0) Fail("signing the certificate");
  BioPtr cert(BIO_new(BIO_s_mem())), pkey(BIO_new(BIO_s_mem()));
  if (!cert || !pkey || PEM_write_bio_X509(cert.get(), x.get()) != 1 ||
      PEM_write_bio_PrivateKey(pkey.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    Fail("writing the certificate");
  return {BioText(cert.get()), BioText(pkey.get())};
}

std::unique_ptr<ssl::context> MakeServerTls(const ServerOptions& o, std::string* cert_pem) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  KeyPair kp;
  if (o.tls_cert_file.empty() && o.tls_key_file.empty()) {
    kp = MakeSelfSigned(o.address);
  } else {
    kp.cert_pem = ReadFileOrThrow("tls_cert_file", o.tls_cert_file);
    kp.key_pem = ReadFileOrThrow("tls_key_file", o.tls_key_file);
  }
  boost::system::error_code ec;
  ctx->use_certificate_chain(boost::asio::buffer(kp.cert_pem), ec);
  if (ec)
    throw Error(Code::kInvalidArgument, "x509_key_pair_streaming.tls_cert_file " + o.tls_cert_file +
                                            ": not a PEM certificate: " + ec.message());
  if (!IsPemKey(kp.key_pem))
    throw Error(Code::kInvalidArgument, "x509_key_pair_streaming.tls_key_file " + o.tls_key_file +
                                            ": not a PEM private key: " + OpenSslError());
  ctx->use_private_key(boost::asio::buffer(kp.key_pem), ssl::context::pem, ec);
  if (ec || SSL_CTX_check_private_key(ctx->native_handle()) != 1)
    throw Error(Code::kInvalidArgument, "x509_key_pair_streaming.tls_key_file " + o.tls_key_file +
                                            ": the key does not match the certificate in " +
                                            o.tls_cert_file + ": " +
                                            (ec ? ec.message() : OpenSslError()));
  *cert_pem = kp.cert_pem;
  return ctx;
}

}  // namespace berth::streaming
