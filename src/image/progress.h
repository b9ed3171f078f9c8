// The progress of one pull: bytes received per layer (read by ImageService::Progress and the
// watchdog), and the watchdog that logs it every few seconds and cancels a pull that receives
// nothing for `image_pull_progress_timeout`, as containerd does.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "image/manifest.h"
#include "image/service.h"

namespace berth::image {

struct PullState {
  enum State { kWaiting, kPulling, kDone, kExists };
  PullState(std::string r, const std::vector<Descriptor>& ls)
      : ref(std::move(r)),
        layers(ls),
        received(new std::atomic<int64_t>[ls.size()]),
        state(new std::atomic<int>[ls.size()]) {
    for (size_t i = 0; i < ls.size(); ++i) {
      received[i] = 0;
      state[i] = kWaiting;
    }
  }
  const std::string ref;
  const std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  const std::vector<Descriptor> layers;
  std::unique_ptr<std::atomic<int64_t>[]> received;
  std::unique_ptr<std::atomic<int>[]> state;

  int64_t Received() const {
    int64_t n = 0;
    for (size_t i = 0; i < layers.size(); ++i) n += received[i];
    return n;
  }
  int64_t Size() const {
    int64_t n = 0;
    for (const auto& l : layers) n += l.size;
    return n;
  }
  size_t Finished() const {
    size_t n = 0;
    for (size_t i = 0; i < layers.size(); ++i) n += state[i] >= kDone;
    return n;
  }
  PullProgress Snapshot() const {
    static const char* names[] = {"waiting", "pulling", "done", "exists"};
    PullProgress p;
    p.ref = ref;
    p.elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - start)
                       .count();
    for (size_t i = 0; i < layers.size(); ++i)
      p.layers.push_back({layers[i].digest, layers[i].size, received[i], names[state[i]]});
    return p;
  }
};

// Logs every `log_every` and calls `cancel` once the pull has received nothing for `timeout`
// while bytes are still to come. Stops when destroyed.
class PullWatchdog {
 public:
  PullWatchdog(const PullState& ps, std::chrono::seconds timeout,
               std::function<void(const std::string&)> cancel,
               std::chrono::seconds log_every = std::chrono::seconds(5))
      : ps_(ps),
        timeout_(timeout),
        log_every_(log_every),
        cancel_(std::move(cancel)),
        thread_([this] { Run(); }) {}
  ~PullWatchdog() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  void Run();
  const PullState& ps_;
  std::chrono::seconds timeout_, log_every_;
  std::function<void(const std::string&)> cancel_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace berth::image
