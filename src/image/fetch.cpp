#include "image/fetch.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/exec.h"

namespace berth::image {

namespace {

constexpr uint32_t kMaxFrame = 8u << 20;

}  // namespace

std::string FetchHelperPath() { return exec::FindHelper("berth-fetch"); }

namespace {

struct IdlePool {
  struct Entry {
    std::string path;
    std::unique_ptr<FetchProcess> proc;
    std::chrono::steady_clock::time_point since;
  };
  std::mutex mu;
  std::vector<Entry> idle;
  bool reaper = false;
};

IdlePool& Pool() {
  static auto* pool = new IdlePool;  // never destroyed: the reaper may outlive main()
  return *pool;
}

// Closes expired processes every few seconds; ends when none is left.
void Reap() {
  IdlePool& pool = Pool();
  for (;;) {
    std::this_thread::sleep_for(std::chrono::seconds(5));
    std::vector<std::unique_ptr<FetchProcess>> expired;
    {
      std::lock_guard<std::mutex> lk(pool.mu);
      auto now = std::chrono::steady_clock::now();
      for (auto it = pool.idle.begin(); it != pool.idle.end();) {
        if (now - it->since >= std::chrono::seconds(kIdleFetchSeconds)) {
          expired.push_back(std::move(it->proc));
          it = pool.idle.erase(it);
        } else {
          ++it;
        }
      }
      if (pool.idle.empty()) {
        pool.reaper = false;
        return;  // `expired` closes them on the way out
      }
    }
  }
}

}  // namespace

std::unique_ptr<FetchProcess> TakeIdleFetchProcess(const std::string& path) {
  IdlePool& pool = Pool();
  std::lock_guard<std::mutex> lk(pool.mu);
  for (auto it = pool.idle.rbegin(); it != pool.idle.rend(); ++it) {
    if (it->path != path) continue;
    auto p = std::move(it->proc);
    pool.idle.erase(std::next(it).base());
    return p;
  }
  return nullptr;
}

void KeepIdleFetchProcess(const std::string& path, std::unique_ptr<FetchProcess> p) {
  if (!p || !p->usable()) return;
  IdlePool& pool = Pool();
  std::unique_ptr<FetchProcess> drop;
  std::lock_guard<std::mutex> lk(pool.mu);
  if (pool.idle.size() >= kIdleFetchProcesses) {
    drop = std::move(pool.idle.front().proc);  // the oldest goes
    pool.idle.erase(pool.idle.begin());
  }
  pool.idle.push_back({path, std::move(p), std::chrono::steady_clock::now()});
  if (!pool.reaper) {
    pool.reaper = true;
    std::thread(Reap).detach();
  }
}

FetchProcess::FetchProcess(const std::string& path) {
  if (path.empty()) throw Error(Code::kUnavailable, "berth-fetch (registry transfers) not found: set BERTH_FETCH_PATH");
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) ThrowErrno("berth-fetch: socketpair");
  try {
    pid_ = exec::Spawn({path}, {{sv[1], 3}}, /*null_stdio=*/true);
  } catch (const Error& e) {
    ::close(sv[0]);
    ::close(sv[1]);
    throw Error(Code::kUnavailable, std::string("registry transfers: ") + e.what());
  }
  ::close(sv[1]);
  fd_ = sv[0];
}

FetchProcess::~FetchProcess() {
  if (fd_ >= 0) ::close(fd_);  // berth-fetch exits at end of file
  if (pid_ > 0) {
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

void FetchProcess::Kill() {
  if (pid_ > 0) ::kill(pid_, SIGKILL);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

FetchResult FetchProcess::Do(const FetchRequest& req, const std::function<void(std::string_view)>& on_header,
                             const std::function<bool(long, const char*, size_t)>& on_body,
                             const std::function<void(const char*, size_t)>& on_error_body) {
  if (fd_ < 0) throw Error(Code::kUnavailable, "berth-fetch is not running");
  nlohmann::json q = {{"method", req.method},   {"url", req.url},
                      {"headers", req.headers}, {"post", req.post},
                      {"connect_timeout", req.connect_timeout_s}, {"low_speed_time", req.low_speed_time_s},
                      {"skip_verify", req.skip_verify}, {"ca_pem", req.ca_pem},
                      {"cert", req.cert},       {"key", req.key}};
  std::string body = q.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  auto fail = [&](const std::string& what) -> Error {
    Kill();
    return Error(Code::kUnavailable, req.method + " " + req.url + ": berth-fetch " + what);
  };
  std::string frame(5, '\0');
  uint32_t len = static_cast<uint32_t>(body.size());
  frame[0] = 'Q';
  for (int i = 0; i < 4; ++i) frame[1 + i] = static_cast<char>((len >> (8 * i)) & 0xff);
  frame += body;
  for (size_t off = 0; off < frame.size();) {
    ssize_t w = ::send(fd_, frame.data() + off, frame.size() - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw fail("is gone");
    off += static_cast<size_t>(w);
  }
  auto read_all = [&](char* p, size_t n) {
    while (n > 0) {
      ssize_t r = ::recv(fd_, p, n, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      p += r;
      n -= static_cast<size_t>(r);
    }
    return true;
  };
  std::string payload;
  for (;;) {
    unsigned char head[5];
    if (!read_all(reinterpret_cast<char*>(head), 5)) throw fail("exited during the transfer");
    uint32_t n = head[1] | head[2] << 8 | head[3] << 16 | static_cast<uint32_t>(head[4]) << 24;
    if (n > kMaxFrame) throw fail("sent a malformed frame");
    payload.resize(n);
    if (n > 0 && !read_all(payload.data(), n)) throw fail("exited during the transfer");
    switch (head[0]) {
      case 'H':
        on_header(payload);
        break;
      case 'B': {
        if (n < 4) throw fail("sent a malformed frame");
        long status = static_cast<unsigned char>(payload[0]) | static_cast<unsigned char>(payload[1]) << 8 |
                      static_cast<unsigned char>(payload[2]) << 16 | static_cast<long>(static_cast<unsigned char>(payload[3])) << 24;
        if (!on_body(status, payload.data() + 4, n - 4)) {
          Kill();
          return FetchResult{-1, status, "", "aborted"};
        }
        break;
      }
      case 'X':
        on_error_body(payload.data(), n);
        break;
      case 'E': {
        auto e = nlohmann::json::parse(payload, nullptr, false);
        if (!e.is_object()) throw fail("sent a malformed end of transfer");
        FetchResult r;
        r.rc = e.value("rc", -1);
        r.status = e.value("status", 0L);
        r.redirect = e.value("redirect", "");
        r.error = e.value("error", "");
        return r;
      }
      default:
        throw fail("sent a malformed frame");
    }
  }
}

}  // namespace berth::image
