// Test fixtures for image pulls, shared by the image tests, the pull benchmark and the CRI e2e
// tests:
//
//   berth::testing::LocalRegistry reg;                       // Debian's docker-registry on
//   127.0.0.1 auto img = berth::testing::BuildTestImage(dir, {});      // 3-layer busybox OCI
//   layout in `dir` berth::testing::PushImage(img, reg.host(), "test/busybox:v1");
//   // pull "127.0.0.1:<port>/test/busybox:v1" (localhost registries are plain http)
//
//   berth::testing::TokenProxy proxy(reg.host());            // bearer-token front on another port
//   // pull "127.0.0.1:<proxy port>/test/busybox:v1": 401 -> token from proxy.realm() -> forwarded
//   proxy.CorruptBlob(img.layer_digests[1]);                 // flips one byte of that blob's body
//   proxy.BlobGets(digest);                                  // how often the blob was downloaded
//
// Every class throws std::runtime_error with a clear message when the environment lacks something;
// call RegistrySkipReason() first and GTEST_SKIP() when it is non-empty.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace berth::testing {

// "" when /usr/bin/docker-registry and busybox-static are installed, else why not.
std::string RegistrySkipReason();

// A free TCP port on 127.0.0.1 (bound and released).
int FreePort();

// Debian's docker-registry (distribution 2.8) serving a temporary filesystem storage.
class LocalRegistry {
 public:
  LocalRegistry();  // starts and waits until GET /v2/ answers
  // Serves HTTPS with this certificate and key (PEM files) instead of plain HTTP.
  LocalRegistry(const std::string& tls_cert, const std::string& tls_key);
  ~LocalRegistry();  // SIGTERM, wait, remove the storage
  LocalRegistry(const LocalRegistry&) = delete;
  LocalRegistry& operator=(const LocalRegistry&) = delete;
  int port() const { return port_; }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }  // reference domain
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// Writes a self-signed certificate for 127.0.0.1 (openssl CLI) to <dir>/cert.pem and <dir>/key.pem.
// Returns "" on success, else why it could not.
std::string MakeSelfSignedCert(const std::string& dir);

struct TestImageOptions {
  std::string user = "1000";
  std::vector<std::string> env = {
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "BERTH_TEST=1"};
  std::vector<std::string> entrypoint = {"/bin/sh", "-c"};
  std::vector<std::string> cmd = {"echo hello from berth"};
  // /etc/passwd and /etc/group of the image ("": root, user 1000 and nobody).
  std::string passwd, group;
  // Written to /etc/berth-id so that images built with different ids have different digests.
  std::string id = "default";
  size_t filler_bytes = 64 * 1024;  // size of /usr/share/berth/filler.bin (pseudo-random)
  // Adds a 4th layer with an entry "../../berth-escape" that leaves the root file system.
  bool hostile_layer = false;
  // Wraps the manifest into an OCI index with the host's platform and a linux/s390x decoy.
  bool as_index = false;
  // Compression of each layer, "gzip", "zstd" or "none", repeated when shorter than the layers.
  std::vector<std::string> compression = {"gzip"};
  // Adds this many layers after the third, each with /layers/<i>.bin (filler_bytes / 4 each).
  int extra_layers = 0;
  // The config's DiffID of the last layer is that of another content.
  bool wrong_diff_id = false;
};

// An image written as an OCI image layout directory (oci-layout, index.json, blobs/sha256/...).
// Layers: 1) /bin/busybox + applet symlinks, /etc/passwd, /etc/group; 2) /data/hello.txt,
// /data/remove-me.txt, /etc/berth-id, /usr/share/berth/filler.bin; 3) a whiteout deleting
// /data/remove-me.txt and /data/added.txt. Config: User, Env, Entrypoint, Cmd.
struct TestImage {
  std::string oci_dir;
  std::string top_digest, top_media_type;  // what a tag points to (index when as_index)
  std::string manifest_digest;             // the platform manifest
  std::string config_digest;
  std::vector<std::string> layer_digests, diff_ids;
  int64_t size = 0;                          // config + compressed layers
  std::map<std::string, std::string> blobs;  // digest -> media type of every blob (manifests too)
};
TestImage BuildTestImage(const std::string& oci_dir, const TestImageOptions& opts = {});

// Pushes every blob and the manifest(s) with the registry API (plain http), tagging `repo_tag`
// ("test/busybox:v1") on `registry_host` ("127.0.0.1:5000").
void PushImage(const TestImage& img, const std::string& registry_host, const std::string& repo_tag);

// Writes the OCI layout directory as a tar archive (for Import), with index.json naming `ref_name`.
void WriteOciArchive(const TestImage& img, const std::string& tar_path,
                     const std::string& ref_name);

// A tiny HTTP front on 127.0.0.1 forwarding /v2/ requests to `upstream` ("127.0.0.1:PORT") with
// one request per connection. With require_token it answers 401 + `WWW-Authenticate: Bearer
// realm="http://127.0.0.1:<port>/token",service="berth-test",scope=...` to requests without a
// token it issued; the realm issues tokens anonymously, or only for `username`/`password`
// (basic auth) or refresh token `refresh_token` (POST form) when those are set.
class TokenProxy {
 public:
  struct Options {
    bool require_token = true;
    std::string username, password;  // required at the realm when non-empty
    std::string refresh_token;       // accepted at the realm (POST grant_type=refresh_token)
    bool ignore_range = false;       // answer Range requests with the whole blob (200)
    bool basic_only = false;  // with username/password: demand Basic auth on /v2/ (no tokens)
    bool stall_blobs =
        false;  // blob GETs get headers and a few bytes, then nothing (until destruction)
    std::string
        redirect_blobs_to;  // "127.0.0.1:PORT": blob GETs answered 307 to that host, same path
    // >= 0: a blob's 200/206 answer stops after this many body bytes (full Content-Length sent):
    // the connection is closed, or held open without a byte more with stall_after_cut.
    int64_t cut_blobs_after = -1;
    bool cut_once = false;  // only the first GET of each blob is cut
    bool stall_after_cut = false;
    // > 0: a blob's body is sent in 20 pieces over this many milliseconds (a slow registry).
    int blob_body_ms = 0;
    // >= 0: CorruptBlob flips the byte at this offset of the body instead of the middle one.
    int64_t corrupt_offset = -1;
  };
  explicit TokenProxy(std::string upstream);
  TokenProxy(std::string upstream, Options opts);
  ~TokenProxy();
  TokenProxy(const TokenProxy&) = delete;
  TokenProxy& operator=(const TokenProxy&) = delete;

  int port() const { return port_; }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string realm() const { return "http://" + host() + "/token"; }

  void CorruptBlob(const std::string& digest);  // flip a byte in every later GET of this blob
  void ClearCorruption();
  int BlobGets(const std::string& digest) const;  // GETs of /v2/<repo>/blobs/<digest> forwarded
  int ManifestGets() const;
  int TokensIssued() const;
  int Unauthorized() const;       // 401s sent
  int AuthorizationSeen() const;  // requests that arrived with an Authorization header

 private:
  void AcceptLoop();
  void Serve(int fd);

  std::string upstream_;
  Options opts_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread accept_thread_;
  mutable std::mutex mu_;
  std::vector<std::thread> workers_;
  std::set<std::string> tokens_, corrupt_, cut_;
  std::map<std::string, int> blob_gets_;
  int manifest_gets_ = 0, tokens_issued_ = 0, unauthorized_ = 0, authorization_seen_ = 0;
};

}  // namespace berth::testing
