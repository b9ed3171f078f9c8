#include "image/registry.h"

#include <spdlog/spdlog.h>

#include <malloc.h>

#include <cstring>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "common/error.h"
#include "common/fs.h"
#include "image/fetch.h"

namespace berth::image {

namespace {

constexpr size_t kMaxErrorBody = 8192;
constexpr int kMaxRedirects = 10;
constexpr const char* kSystemCABundle = "/etc/ssl/certs/ca-certificates.crt";

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return std::string(s);
}

// scheme://host[:port] of a URL, lowercased.
std::string Origin(const std::string& url) {
  size_t sep = url.find("://");
  if (sep == std::string::npos) return "";
  size_t end = url.find_first_of("/?#", sep + 3);
  return Lower(url.substr(0, end));
}

std::string UrlEncode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // lowercase names, last value wins
  std::string error_body;                      // bodies of non-2xx responses (bounded)
  std::string url;                             // final URL
};

// Receives the body of a 2xx response; returns false to abort the transfer.
using Sink = std::function<bool(long status, const char* data, size_t n)>;

// A response header line: a status line starts a new response (after a 100 Continue, say).
void OnHeaderLine(Response& resp, std::string_view line) {
  if (line.rfind("HTTP/", 0) == 0) {
    resp.headers.clear();
  } else if (size_t colon = line.find(':'); colon != std::string_view::npos) {
    resp.headers[Lower(std::string(line.substr(0, colon)))] = Trim(line.substr(colon + 1));
  }
}

std::string ReadCABundle(const RegistryHost& h) {
  std::string bundle;
  if (fs::Exists(kSystemCABundle)) bundle = fs::ReadFile(kSystemCABundle, 16u << 20);
  for (const std::string& f : h.ca_files) {
    bundle += "\n";
    bundle += fs::ReadFile(f, 4u << 20);
  }
  return bundle;
}

// Registry error body {"errors":[{"code":..,"message":..}]} -> "CODE: message", else a prefix.
std::string DescribeErrorBody(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    auto e = j.find("errors");
    if (e != j.end() && e->is_array() && !e->empty() && (*e)[0].is_object()) {
      const auto& first = (*e)[0];
      std::string code = first.value("code", std::string());
      std::string msg = first.contains("message") && first["message"].is_string()
                            ? first["message"].get<std::string>()
                            : std::string();
      return code + (msg.empty() ? "" : ": " + msg);
    }
  }
  std::string s = body.substr(0, 200);
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  return Trim(s);
}

Code CodeForStatus(long status) {
  switch (status) {
    case 401:
    case 403:
      return Code::kPermissionDenied;
    case 404:
      return Code::kNotFound;
    case 429:
      return Code::kResourceExhausted;
    default:
      return status >= 500 ? Code::kUnavailable : Code::kUnknown;
  }
}

}  // namespace

std::string Base64Encode(std::string_view in) {
  static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += tbl[v >> 18];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
    out += tbl[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += tbl[v >> 18];
    out += tbl[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += tbl[v >> 18];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string Base64Decode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=' || c == '\n' || c == '\r') continue;
    int v = val(c);
    if (v < 0) throw Error(Code::kInvalidArgument, "invalid base64 in auth: unexpected character");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

std::vector<AuthChallenge> ParseAuthChallenges(std::string_view h) {
  std::vector<AuthChallenge> out;
  size_t i = 0;
  auto skip_ws = [&] {
    while (i < h.size() && (h[i] == ' ' || h[i] == '\t' || h[i] == ',')) ++i;
  };
  while (i < h.size()) {
    skip_ws();
    size_t start = i;
    while (i < h.size() && h[i] != ' ' && h[i] != ',' && h[i] != '=') ++i;
    if (i == start) break;
    AuthChallenge c;
    c.scheme = Lower(std::string(h.substr(start, i - start)));
    // parameters: key=value or key="quoted", separated by commas
    while (true) {
      skip_ws();
      size_t ks = i;
      while (i < h.size() && h[i] != '=' && h[i] != ' ' && h[i] != ',') ++i;
      if (i >= h.size() || h[i] != '=') {
        i = ks;  // next token is a new scheme
        break;
      }
      std::string key = Lower(std::string(h.substr(ks, i - ks)));
      ++i;  // '='
      std::string value;
      if (i < h.size() && h[i] == '"') {
        ++i;
        while (i < h.size() && h[i] != '"') {
          if (h[i] == '\\' && i + 1 < h.size()) ++i;
          value += h[i++];
        }
        if (i < h.size()) ++i;
      } else {
        while (i < h.size() && h[i] != ',' && h[i] != ' ') value += h[i++];
      }
      c.params[key] = value;
      if (i >= h.size()) break;
    }
    out.push_back(std::move(c));
  }
  return out;
}

struct RegistryClient::Impl {
  std::vector<RegistryHost> hosts;
  std::string registry, repository;
  AuthConfig auth;
  Options opts;
  std::string username, password;  // decoded credentials
  std::atomic<int64_t> requests{0};

  struct HostAuth {
    std::string bearer;       // cached token
    bool basic = false;       // the host asked for basic auth
  };
  std::mutex mu;
  std::map<std::string, HostAuth> host_auth;  // by host.host
  std::map<std::string, std::string> ca_bundles;

  // Idle berth-fetch processes: reusing them keeps their connections alive between requests.
  // They exit when the client is destroyed.
  std::string fetch_path;
  std::mutex pool_mu;
  std::vector<std::unique_ptr<FetchProcess>> pool;

  std::set<FetchProcess*> active;  // under pool_mu
  std::string cancelled;           // why, once Cancel was called (under pool_mu)

  std::unique_ptr<FetchProcess> Acquire() {
    {
      std::lock_guard<std::mutex> lk(pool_mu);
      if (!cancelled.empty()) throw Error(Code::kDeadlineExceeded, cancelled);
      if (!pool.empty()) {
        auto p = std::move(pool.back());
        pool.pop_back();
        return p;
      }
    }
    if (auto p = TakeIdleFetchProcess(fetch_path)) return p;
    return std::make_unique<FetchProcess>(fetch_path);
  }
  void Release(std::unique_ptr<FetchProcess> p) {
    if (!p->usable()) return;
    std::lock_guard<std::mutex> lk(pool_mu);
    if (pool.size() < 8) pool.push_back(std::move(p));
  }

  void Setup() {
    if (!auth.auth.empty()) {
      std::string dec = Base64Decode(auth.auth);
      size_t colon = dec.find(':');
      if (colon == std::string::npos)
        throw Error(Code::kInvalidArgument, "invalid auth for registry " + registry + ": not base64 of \"user:password\"");
      username = dec.substr(0, colon);
      password = dec.substr(colon + 1);
    } else {
      username = auth.username;
      password = auth.password;
    }
  }

  // Credentials apply to every endpoint of the registry unless server_address names another host.
  bool CredsFor(const RegistryHost& h) const {
    if (auth.server_address.empty()) return true;
    std::string sa = auth.server_address;
    if (size_t p = sa.find("://"); p != std::string::npos) sa = sa.substr(p + 3);
    sa = Lower(sa.substr(0, sa.find('/')));
    if (sa == "index.docker.io" || sa == "registry-1.docker.io") sa = "docker.io";
    std::string reg = registry == "docker.io" ? "docker.io" : Lower(registry);
    std::string host = Lower(h.host) == "registry-1.docker.io" ? "docker.io" : Lower(h.host);
    return sa == reg || sa == host;
  }

  void ConfigureTLS(FetchRequest& q, const RegistryHost& h) {
    q.skip_verify = h.skip_verify;
    if (!h.ca_files.empty()) {
      std::lock_guard<std::mutex> lk(mu);
      auto it = ca_bundles.find(h.host);
      if (it == ca_bundles.end()) it = ca_bundles.emplace(h.host, ReadCABundle(h)).first;
      q.ca_pem = it->second;
    }
    if (!h.client_certs.empty()) {
      q.cert = h.client_certs.front().first;
      q.key = h.client_certs.front().second;
    }
  }

  // One HTTP exchange with manual redirects (Authorization dropped when the origin changes),
  // performed by a berth-fetch process.
  Response Perform(const RegistryHost& h, const std::string& method, const std::string& url_in,
                   const std::vector<std::string>& headers_in, const std::string& authorization,
                   const Sink* sink, const std::string& post_body = "") {
    std::string url = url_in;
    const std::string origin = Origin(url_in);
    for (int hop = 0;; ++hop) {
      FetchRequest q;
      q.method = method;
      q.url = url;
      q.headers = headers_in;
      for (const auto& [k, v] : h.headers) q.headers.push_back(k + ": " + v);
      if (!authorization.empty() && Origin(url) == origin) q.headers.push_back("Authorization: " + authorization);
      q.post = post_body;
      q.connect_timeout_s = static_cast<long>(opts.connect_timeout.count());
      q.low_speed_time_s = static_cast<long>(std::max<int64_t>(1, opts.progress_timeout.count()));
      ConfigureTLS(q, h);
      Response resp;
      auto proc = Acquire();
      requests++;
      {
        std::lock_guard<std::mutex> lk(pool_mu);
        active.insert(proc.get());
      }
      struct Inactive {
        Impl* im;
        FetchProcess* p;
        ~Inactive() {
          std::lock_guard<std::mutex> lk(im->pool_mu);
          im->active.erase(p);
        }
      } inactive{this, proc.get()};
      FetchResult r = proc->Do(
          q, [&](std::string_view line) { OnHeaderLine(resp, line); },
          [&](long status, const char* data, size_t n) { return !sink || (*sink)(status, data, n); },
          [&](const char* data, size_t n) {
            if (resp.error_body.size() < kMaxErrorBody)
              resp.error_body.append(data, std::min(n, kMaxErrorBody - resp.error_body.size()));
          });
      bool aborted = !proc->usable();
      {
        std::lock_guard<std::mutex> lk(pool_mu);
        active.erase(proc.get());
        if (!cancelled.empty()) throw Error(Code::kDeadlineExceeded, cancelled);
      }
      Release(std::move(proc));
      resp.status = r.status;
      resp.url = url;
      if (aborted) throw Error(Code::kAborted, "transfer from " + url + " aborted");
      if (r.rc != 0) {
        if (r.rc == 28)  // CURLE_OPERATION_TIMEDOUT
          throw Error(Code::kDeadlineExceeded, "GET " + url + ": no progress for " +
                                                   std::to_string(opts.progress_timeout.count()) + "s (" + r.error + ")");
        throw Error(Code::kUnavailable, method + " " + url + ": " + r.error);
      }
      bool is_redirect = resp.status == 301 || resp.status == 302 || resp.status == 303 ||
                         resp.status == 307 || resp.status == 308;
      if (!is_redirect || r.redirect.empty()) return resp;
      if (hop >= kMaxRedirects) throw Error(Code::kUnavailable, method + " " + url_in + ": too many redirects");
      url = r.redirect;
    }
  }

  std::string FetchToken(const RegistryHost& h, const AuthChallenge& ch) {
    auto realm_it = ch.params.find("realm");
    if (realm_it == ch.params.end() || realm_it->second.empty())
      throw Error(Code::kPermissionDenied, "registry " + h.host + " sent a bearer challenge without realm");
    const std::string& realm = realm_it->second;
    if (realm.rfind("http://", 0) != 0 && realm.rfind("https://", 0) != 0)
      throw Error(Code::kPermissionDenied, "registry " + h.host + " sent an invalid token realm \"" + realm + "\"");
    std::string service = ch.params.count("service") ? ch.params.at("service") : "";
    std::string scope = "repository:" + repository + ":pull";
    bool creds = CredsFor(h);
    std::string body;
    Sink sink = [&](long, const char* d, size_t n) {
      if (body.size() + n > (1u << 20)) return false;
      body.append(d, n);
      return true;
    };
    Response r;
    if (creds && !auth.identity_token.empty()) {
      // OAuth2 refresh token grant, as docker does with identity tokens.
      std::string form = "grant_type=refresh_token&refresh_token=" + UrlEncode(auth.identity_token) +
                         "&service=" + UrlEncode(service) + "&scope=" + UrlEncode(scope) + "&client_id=berth";
      r = Perform(h, "POST", realm, {"Content-Type: application/x-www-form-urlencoded"}, "", &sink, form);
    } else {
      std::string url = realm + (realm.find('?') == std::string::npos ? "?" : "&") +
                        "service=" + UrlEncode(service) + "&scope=" + UrlEncode(scope);
      std::string authz;
      if (creds && !username.empty()) authz = "Basic " + Base64Encode(username + ":" + password);
      // The realm is on another host: the credentials go there on purpose (Perform keeps them for
      // its own origin only).
      r = Perform(h, "GET", url, {}, authz, &sink);
    }
    if (r.status != 200)
      throw Error(r.status == 401 || r.status == 403 ? Code::kPermissionDenied : CodeForStatus(r.status),
                  "failed to fetch an anonymous or authorized token from " + realm + ": HTTP " +
                      std::to_string(r.status) + (r.error_body.empty() ? "" : ": " + DescribeErrorBody(r.error_body)));
    auto j = nlohmann::json::parse(body, nullptr, false);
    std::string token;
    if (!j.is_discarded() && j.is_object()) {
      if (j.contains("token") && j["token"].is_string()) token = j["token"].get<std::string>();
      if (token.empty() && j.contains("access_token") && j["access_token"].is_string())
        token = j["access_token"].get<std::string>();
    }
    if (token.empty()) throw Error(Code::kPermissionDenied, "token server " + realm + " returned no token");
    return token;
  }

  // A request to one host with authentication: retries once after a 401 with a token or basic auth.
  Response Request(const RegistryHost& h, const std::string& method, const std::string& path,
                   const std::vector<std::string>& headers, const Sink* sink) {
    const std::string url = h.BaseURL() + path;
    for (int attempt = 0;; ++attempt) {
      std::string authz;
      {
        std::lock_guard<std::mutex> lk(mu);
        HostAuth& ha = host_auth[h.host];
        if (!auth.registry_token.empty() && CredsFor(h)) authz = "Bearer " + auth.registry_token;
        else if (!ha.bearer.empty()) authz = "Bearer " + ha.bearer;
        else if (ha.basic && CredsFor(h) && !username.empty())
          authz = "Basic " + Base64Encode(username + ":" + password);
      }
      Response r = Perform(h, method, url, headers, authz, sink);
      if (r.status != 401 || attempt >= 1) return r;
      auto challenges = ParseAuthChallenges(r.headers["www-authenticate"]);
      bool handled = false;
      for (const auto& ch : challenges) {
        if (ch.scheme == "bearer") {
          std::string token = FetchToken(h, ch);
          std::lock_guard<std::mutex> lk(mu);
          host_auth[h.host].bearer = token;
          handled = true;
          break;
        }
        if (ch.scheme == "basic" && CredsFor(h) && !username.empty()) {
          std::lock_guard<std::mutex> lk(mu);
          host_auth[h.host].basic = true;
          handled = true;
          break;
        }
      }
      if (!handled) return r;
    }
  }

  static Error StatusError(const std::string& what, const Response& r) {
    std::string msg = what + ": HTTP " + std::to_string(r.status);
    if (!r.error_body.empty()) msg += ": " + DescribeErrorBody(r.error_body);
    return Error(CodeForStatus(r.status), msg);
  }

  std::vector<const RegistryHost*> HostsFor(bool resolve) const {
    std::vector<const RegistryHost*> out;
    for (const auto& h : hosts)
      if (resolve ? h.resolve : h.pull) out.push_back(&h);
    return out;
  }

  // Runs fn on each host in order until one succeeds; throws a combined error otherwise.
  template <typename Fn>
  auto TryHosts(bool resolve, const std::string& what, Fn fn) -> decltype(fn(*hosts.begin())) {
    auto hs = HostsFor(resolve);
    if (hs.empty()) throw Error(Code::kFailedPrecondition, what + ": no registry host has the " +
                                                           std::string(resolve ? "resolve" : "pull") + " capability");
    std::string msgs;
    Code code = Code::kUnknown;
    bool all_not_found = true;
    for (const RegistryHost* h : hs) {
      try {
        return fn(*h);
      } catch (const Error& e) {
        if (hs.size() > 1) spdlog::debug("{}: host {} failed: {}", what, h->host, e.what());
        if (!msgs.empty()) msgs += "; ";
        msgs += e.what();
        if (e.code() != Code::kNotFound) all_not_found = false;
        code = e.code();
      }
    }
    throw Error(all_not_found ? Code::kNotFound : code, what + ": " + msgs);
  }
};

RegistryClient::RegistryClient(std::vector<RegistryHost> hosts, std::string registry, std::string repository,
                               AuthConfig auth, Options opts)
    : impl_(std::make_unique<Impl>()) {
  impl_->hosts = std::move(hosts);
  impl_->registry = std::move(registry);
  impl_->repository = std::move(repository);
  impl_->auth = std::move(auth);
  impl_->opts = opts;
  impl_->fetch_path = opts.fetch_path.empty() ? FetchHelperPath() : opts.fetch_path;
  impl_->Setup();
}

RegistryClient::~RegistryClient() {
  for (auto& p : impl_->pool) KeepIdleFetchProcess(impl_->fetch_path, std::move(p));
  impl_.reset();
  ::malloc_trim(0);  // the buffers of the transfers go back to the system
}

int64_t RegistryClient::requests() const { return impl_->requests.load(); }

RegistryClient::FetchedManifest RegistryClient::GetManifest(const std::string& tag_or_digest) {
  Impl& im = *impl_;
  const std::string what = "failed to resolve " + im.registry + "/" + im.repository +
                           (tag_or_digest.rfind("sha256:", 0) == 0 ? "@" : ":") + tag_or_digest;
  return im.TryHosts(true, what, [&](const RegistryHost& h) {
    std::string body;
    Sink sink = [&](long, const char* d, size_t n) {
      if (body.size() + n > kMaxManifestSize) return false;
      body.append(d, n);
      return true;
    };
    Response r = im.Request(h, "GET", "/" + im.repository + "/manifests/" + tag_or_digest,
                            {"Accept: " + mediatype::AcceptHeader()}, &sink);
    if (r.status != 200) throw Impl::StatusError(h.BaseURL(), r);
    FetchedManifest m;
    m.digest = content::Sha256Digest(body);
    if (tag_or_digest.find(':') != std::string::npos && m.digest != tag_or_digest)
      throw Error(Code::kInternal, h.BaseURL() + ": manifest digest mismatch: got " + m.digest);
    m.media_type = DetectManifestType(body, r.headers["content-type"]);
    m.body = std::move(body);
    return m;
  });
}

std::string RegistryClient::FetchBytes(const Descriptor& desc, size_t max_size, bool manifest) {
  Impl& im = *impl_;
  if (desc.size > static_cast<int64_t>(max_size))
    throw Error(Code::kInvalidArgument, "blob " + desc.digest + " is " + std::to_string(desc.size) +
                                            " bytes, more than the limit of " + std::to_string(max_size));
  const std::string what = "failed to fetch " + im.registry + "/" + im.repository + "@" + desc.digest;
  return im.TryHosts(false, what, [&](const RegistryHost& h) {
    std::string body;
    Sink sink = [&](long, const char* d, size_t n) {
      if (body.size() + n > max_size || static_cast<int64_t>(body.size() + n) > desc.size) return false;
      body.append(d, n);
      return true;
    };
    std::vector<std::string> hdrs;
    if (manifest) hdrs.push_back("Accept: " + (desc.media_type.empty() ? mediatype::AcceptHeader() : desc.media_type));
    Response r = im.Request(h, "GET", "/" + im.repository + (manifest ? "/manifests/" : "/blobs/") + desc.digest,
                            hdrs, &sink);
    if (r.status != 200) throw Impl::StatusError(h.BaseURL(), r);
    std::string got = content::Sha256Digest(body);
    if (got != desc.digest || static_cast<int64_t>(body.size()) != desc.size)
      throw Error(Code::kInternal, "digest mismatch for " + desc.digest + " from " + h.host + ": got " + got +
                                       " (" + std::to_string(body.size()) + " bytes)");
    return body;
  });
}

void RegistryClient::Cancel(const std::string& why) {
  Impl& im = *impl_;
  std::lock_guard<std::mutex> lk(im.pool_mu);
  im.cancelled = why.empty() ? "cancelled" : why;
  for (FetchProcess* p : im.active) p->Interrupt();
}

void RegistryClient::FetchBlob(const Descriptor& desc, content::Store::Writer& w,
                               std::atomic<int64_t>* received, const Tee* tee) {
  Impl& im = *impl_;
  const std::string what = "failed to fetch blob " + im.registry + "/" + im.repository + "@" + desc.digest;
  std::string last_error;
  bool cancelled = false;
  for (int attempt = 0; attempt < std::max(1, im.opts.retries); ++attempt) {
    try {
      if (cancelled) break;
      im.TryHosts(false, what, [&](const RegistryHost& h) {
        int64_t offset = w.Offset();
        if (offset > desc.size) {
          w.Truncate();
          offset = 0;
        }
        if (offset == desc.size && offset > 0) return 0;  // complete already; commit verifies
        std::vector<std::string> hdrs;
        if (offset > 0) hdrs.push_back("Range: bytes=" + std::to_string(offset) + "-");
        bool first = true;
        auto last_log = std::chrono::steady_clock::now();
        Sink sink = [&](long status, const char* d, size_t n) {
          if (first) {
            first = false;
            if (offset > 0 && status != 206) {
              spdlog::debug("{}: {} ignored the Range request, restarting", desc.digest, h.host);
              w.Truncate();
            }
          }
          if (w.Offset() + static_cast<int64_t>(n) > desc.size) return false;
          const int64_t at = w.Offset();
          w.Write(d, n);
          if (tee && !(*tee)(at, d, n)) {
            cancelled = true;
            return false;
          }
          if (received) *received += static_cast<int64_t>(n);
          auto now = std::chrono::steady_clock::now();
          if (now - last_log > std::chrono::seconds(10)) {
            last_log = now;
            spdlog::info("pulling {}/{}: blob {} {} of {} bytes", im.registry, im.repository, desc.digest,
                         w.Offset(), desc.size);
          }
          return true;
        };
        Response r = im.Request(h, "GET", "/" + im.repository + "/blobs/" + desc.digest, hdrs, &sink);
        if (r.status == 416 && offset > 0) {  // range not satisfiable: restart from zero
          w.Truncate();
          throw Error(Code::kUnavailable, h.BaseURL() + ": range not satisfiable, restarting");
        }
        if (r.status != 200 && r.status != 206) throw Impl::StatusError(h.BaseURL(), r);
        if (r.status == 206) {
          std::string cr = r.headers["content-range"];
          if (cr.rfind("bytes " + std::to_string(offset) + "-", 0) != 0 && !first) {
            w.Truncate();
            throw Error(Code::kUnavailable, h.BaseURL() + ": unexpected Content-Range \"" + cr + "\"");
          }
        }
        if (w.Offset() != desc.size)
          throw Error(Code::kUnavailable, h.BaseURL() + ": blob " + desc.digest + " ended after " +
                                              std::to_string(w.Offset()) + " of " + std::to_string(desc.size) + " bytes");
        return 0;
      });
      // Every byte is in: the tee passes its last ones on before the commit's fsync, so that
      // the unpack finishes while the blob is written out.
      if (tee && !(*tee)(w.Offset(), nullptr, 0)) {
        cancelled = true;
        throw Error(Code::kCancelled, what + ": cancelled");
      }
      w.Commit(desc.digest, desc.size);  // verifies; on mismatch the partial data is discarded
      return;
    } catch (const Error& e) {
      if (cancelled) throw Error(Code::kCancelled, what + ": cancelled");
      {
        std::lock_guard<std::mutex> lk(im.pool_mu);
        if (!im.cancelled.empty()) throw Error(Code::kDeadlineExceeded, what + ": " + im.cancelled);
      }
      // Permanent failures are not retried.
      if (e.code() == Code::kNotFound || e.code() == Code::kPermissionDenied ||
          e.code() == Code::kInvalidArgument || e.code() == Code::kFailedPrecondition ||
          e.code() == Code::kResourceExhausted ||  // a full disk
          std::string(e.what()).find("digest mismatch") != std::string::npos)
        throw;
      last_error = e.what();
      if (attempt + 1 < im.opts.retries)
        spdlog::warn("{} (attempt {}), retrying from byte {}", e.what(), attempt + 1, w.Offset());
      else
        throw;
    }
  }
  if (cancelled) throw Error(Code::kCancelled, what + ": cancelled");
  throw Error(Code::kUnavailable, what + ": " + last_error);
}

}  // namespace berth::image
