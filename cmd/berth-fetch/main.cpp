// berth-fetch: performs HTTP requests for berthd's registry client, one at a time, on fd 3 (a
// unix socket). Frames both ways are a type byte, a 32-bit little-endian length and the payload
// (src/image/fetch.h):
//   berthd -> Q  request JSON: method, url, headers, post, connect_timeout, low_speed_time,
//                skip_verify, ca_pem, cert, key
//   <- H  a response header line as received (a status line starts each response)
//   <- B  4-byte little-endian status, then body bytes of a 2xx response
//   <- X  body bytes of another response (bounded)
//   <- E  end JSON: rc (CURLcode), status, redirect, error
// Connections are kept between requests. Exits at end of file on fd 3.
#include <curl/curl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include <nlohmann/json.hpp>

namespace {

constexpr int kFd = 3;
constexpr size_t kMaxErrorBody = 64 * 1024;
constexpr uint32_t kMaxRequest = 16u << 20;

bool WriteAll(const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(kFd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool ReadAll(char* p, size_t n) {
  while (n > 0) {
    ssize_t r = ::read(kFd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// One frame in one writev(2) when the socket takes it whole (the usual case).
bool Frame(char type, const char* data, size_t n, const char* prefix = nullptr,
           size_t prefix_n = 0) {
  uint32_t len = static_cast<uint32_t>(n + prefix_n);
  char head[5] = {type, static_cast<char>(len & 0xff), static_cast<char>((len >> 8) & 0xff),
                  static_cast<char>((len >> 16) & 0xff), static_cast<char>((len >> 24) & 0xff)};
  struct iovec iov[3] = {
      {head, 5}, {const_cast<char*>(prefix), prefix_n}, {const_cast<char*>(data), n}};
  ssize_t w;
  do {
    w = ::writev(kFd, iov, 3);
  } while (w < 0 && errno == EINTR);
  if (w < 0) return false;
  size_t done = static_cast<size_t>(w);
  for (const auto& v : iov) {
    size_t used = std::min(done, v.iov_len);
    done -= used;
    if (used < v.iov_len &&
        !WriteAll(static_cast<const char*>(v.iov_base) + used, v.iov_len - used))
      return false;
  }
  return true;
}

struct Transfer {
  CURL* curl;
  size_t error_body = 0;
  bool broken = false;  // berthd is gone
};

size_t OnHeader(char* buf, size_t size, size_t n, void* ud) {
  auto* t = static_cast<Transfer*>(ud);
  if (!Frame('H', buf, size * n)) {
    t->broken = true;
    return 0;
  }
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* ud) {
  auto* t = static_cast<Transfer*>(ud);
  size_t len = size * n;
  long status = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
  bool ok;
  if (status >= 200 && status < 300) {
    uint32_t s = static_cast<uint32_t>(status);
    char st[4] = {static_cast<char>(s & 0xff), static_cast<char>((s >> 8) & 0xff),
                  static_cast<char>((s >> 16) & 0xff), static_cast<char>((s >> 24) & 0xff)};
    ok = Frame('B', data, len, st, 4);
  } else {
    size_t keep = t->error_body < kMaxErrorBody ? std::min(len, kMaxErrorBody - t->error_body) : 0;
    t->error_body += keep;
    ok = keep == 0 || Frame('X', data, keep);
  }
  if (!ok) {
    t->broken = true;
    return 0;
  }
  return len;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && (std::strcmp(argv[1], "-v") == 0 || std::strcmp(argv[1], "--version") == 0)) {
    std::printf("berth-fetch (%s)\n", curl_version());
    return 0;
  }
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 2;
  CURL* c = curl_easy_init();
  if (!c) return 2;
  for (;;) {
    char head[5];
    if (!ReadAll(head, 5)) break;  // berthd closed its end
    uint32_t len = static_cast<uint8_t>(head[1]) | static_cast<uint8_t>(head[2]) << 8 |
                   static_cast<uint8_t>(head[3]) << 16 |
                   static_cast<uint32_t>(static_cast<uint8_t>(head[4])) << 24;
    if (head[0] != 'Q' || len > kMaxRequest) return 3;
    std::string body(len, '\0');
    if (!ReadAll(body.data(), len)) return 3;
    auto q = nlohmann::json::parse(body, nullptr, false);
    if (!q.is_object()) return 3;

    curl_easy_reset(c);
    Transfer t{c};
    char errbuf[CURL_ERROR_SIZE] = {0};
    std::string url = q.value("url", ""), method = q.value("method", "GET"),
                post = q.value("post", "");
    std::string ca = q.value("ca_pem", ""), cert = q.value("cert", ""), key = q.value("key", "");
    curl_slist* hl = nullptr;
    for (const auto& h : q.value("headers", nlohmann::json::array()))
      hl = curl_slist_append(hl, h.get<std::string>().c_str());
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "berth/0.1");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, q.value("connect_timeout", 30L));
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, q.value("low_speed_time", 300L));
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "identity");
    // Body pieces of up to 512 KiB (curl's default is 16 KiB): fewer frames and system calls
    // here and in berthd for a large layer.
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L << 10);
    if (method == "HEAD") curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (method == "POST") {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, post.c_str());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(post.size()));
    }
    if (q.value("skip_verify", false)) {
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (!ca.empty()) {
      curl_blob blob{ca.data(), ca.size(), CURL_BLOB_COPY};
      curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
    }
    if (!cert.empty()) curl_easy_setopt(c, CURLOPT_SSLCERT, cert.c_str());
    if (!key.empty()) curl_easy_setopt(c, CURLOPT_SSLKEY, key.c_str());

    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(hl);
    if (t.broken) break;
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    char* redirect = nullptr;
    nlohmann::json end = {{"rc", static_cast<int>(rc)}, {"status", status}};
    if (curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &redirect) == CURLE_OK && redirect)
      end["redirect"] = redirect;
    if (rc != CURLE_OK)
      end["error"] = errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
    std::string e = end.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (!Frame('E', e.data(), e.size())) break;
    if (rc != CURLE_OK) {
      // A failed transfer may leave the handle's connection in any state: start afresh.
      curl_easy_cleanup(c);
      c = curl_easy_init();
      if (!c) return 2;
    }
  }
  curl_easy_cleanup(c);
  curl_global_cleanup();
  return 0;
}
