// Client of the distribution API v2 (through berth-fetch, image/fetch.h) for one repository: manifests, blobs streamed into
// the content store with verification and resume, bearer/basic auth, redirects, mirrors.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "content/store.h"
#include "image/hosts.h"
#include "image/manifest.h"
#include "image/service.h"

namespace berth::image {

// Decodes standard base64 ("user:pass" in AuthConfig.auth); throws Error(kInvalidArgument).
std::string Base64Decode(std::string_view in);
std::string Base64Encode(std::string_view in);

// A parsed WWW-Authenticate challenge: scheme "bearer"/"basic" (lowercase) and its parameters.
struct AuthChallenge {
  std::string scheme;
  std::map<std::string, std::string> params;  // realm, service, scope, error...
};
std::vector<AuthChallenge> ParseAuthChallenges(std::string_view header);

class RegistryClient {
 public:
  struct Options {
    std::chrono::seconds progress_timeout{300};
    std::chrono::seconds connect_timeout{30};
    int retries = 3;  // per blob, resuming from what was already received
    std::string fetch_path;  // berth-fetch ("" = FetchHelperPath())
  };
  // `registry` is the reference's domain, `repository` its path ("library/busybox").
  RegistryClient(std::vector<RegistryHost> hosts, std::string registry, std::string repository,
                 AuthConfig auth, Options opts);
  ~RegistryClient();
  RegistryClient(const RegistryClient&) = delete;
  RegistryClient& operator=(const RegistryClient&) = delete;

  struct FetchedManifest {
    std::string digest, media_type, body;
  };
  // GET <repo>/manifests/<tag or digest> from the hosts that can resolve, in order. The digest is
  // computed from the body; for a digest reference it must match. Errors: kNotFound when every
  // host answered 404, kPermissionDenied for refused credentials, kUnavailable for network errors.
  FetchedManifest GetManifest(const std::string& tag_or_digest);
  // A small blob or manifest by digest, verified; at most max_size bytes.
  std::string FetchBytes(const Descriptor& desc, size_t max_size, bool manifest);
  // Streams a blob into the writer (resuming at writer.Offset() with a Range request, restarting
  // when the server ignores it) and commits it with digest and size verification.
  // `received` counts bytes as they arrive (for progress reports). `tee`, when given, sees every
  // byte written with its offset in the blob (after a restart from zero, offsets start again),
  // then a call with n == 0 once all bytes are in, before the commit (which syncs the blob);
  // when it returns false the transfer stops with Error(kCancelled).
  using Tee = std::function<bool(int64_t offset, const char* data, size_t n)>;
  void FetchBlob(const Descriptor& desc, content::Store::Writer& writer,
                 std::atomic<int64_t>* received = nullptr, const Tee* tee = nullptr);

  // Stops every transfer in progress and refuses new ones: they fail with
  // Error(kDeadlineExceeded, why). Thread-safe.
  void Cancel(const std::string& why);

  // Number of HTTP requests sent (tests, benchmarks).
  int64_t requests() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace berth::image
