// berth-fetch, berthd's HTTP client process for registry transfers (cmd/berth-fetch): libcurl
// and its TLS library run there, never in berthd, so a berthd that has pulled images keeps no
// trace of them in its memory (OpenSSL, once loaded, cannot be unloaded). A process serves one
// request at a time and keeps its connections between requests; the registry client keeps a
// few idle ones.
#pragma once

#include <signal.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace berth::image {

struct FetchRequest {
  std::string method = "GET", url;
  std::vector<std::string> headers;  // "Name: value"
  std::string post;                  // body of a POST
  long connect_timeout_s = 30, low_speed_time_s = 300;
  bool skip_verify = false;
  std::string ca_pem;                // CA bundle ("" = the system's)
  std::string cert, key;             // client certificate and key files
};

struct FetchResult {
  int rc = 0;          // CURLcode: 0 = the exchange completed (whatever its status)
  long status = 0;
  std::string redirect;  // Location of a redirect, resolved
  std::string error;     // curl's message when rc != 0
};

class FetchProcess {
 public:
  // Starts `path` (berth-fetch). Throws Error(kUnavailable) naming it when it cannot start.
  explicit FetchProcess(const std::string& path);
  ~FetchProcess();  // closes its socket and reaps it
  FetchProcess(const FetchProcess&) = delete;
  FetchProcess& operator=(const FetchProcess&) = delete;

  // One exchange: `on_header` gets each header line, `on_body` the body of a 2xx response with
  // its status (false aborts: the process is killed and usable() turns false), `on_error_body`
  // the body of any other response. Throws Error(kUnavailable) when the process fails.
  FetchResult Do(const FetchRequest& req, const std::function<void(std::string_view)>& on_header,
                 const std::function<bool(long, const char*, size_t)>& on_body,
                 const std::function<void(const char*, size_t)>& on_error_body);
  bool usable() const { return fd_ >= 0; }
  // Kills the process from another thread: the exchange in progress fails.
  void Interrupt() {
    if (pid_ > 0) ::kill(pid_, SIGKILL);
  }

 private:
  void Kill();
  int pid_ = -1, fd_ = -1;
};

// berth-fetch's path: BERTH_FETCH_PATH, else beside the running program or in its build tree.
std::string FetchHelperPath();

// Idle berth-fetch processes outlive the registry client that used them for a while, so that
// the next pull starts no process (and may reuse a connection): up to kIdleFetchProcesses, each
// closed kIdleFetchSeconds after it was last used.
inline constexpr size_t kIdleFetchProcesses = 4;
inline constexpr int kIdleFetchSeconds = 30;
// An idle process started from `path`, or nullptr.
std::unique_ptr<FetchProcess> TakeIdleFetchProcess(const std::string& path);
void KeepIdleFetchProcess(const std::string& path, std::unique_ptr<FetchProcess> p);

}  // namespace berth::image
