#include "image/progress.h"

#include <spdlog/spdlog.h>

namespace berth::image {

void PullWatchdog::Run() {
  using Clock = std::chrono::steady_clock;
  int64_t last = ps_.Received();
  auto last_change = Clock::now(), last_log = Clock::now();
  const auto tick =
      std::chrono::milliseconds(std::min<int64_t>(1000, timeout_.count() * 1000 / 4 + 1));
  std::unique_lock<std::mutex> lk(mu_);
  while (!cv_.wait_for(lk, tick, [&] { return stop_; })) {
    const auto now = Clock::now();
    const int64_t got = ps_.Received(), size = ps_.Size();
    if (got != last) {
      last = got;
      last_change = now;
    }
    if (now - last_log >= log_every_) {
      last_log = now;
      spdlog::info("pulling {}: {} of {} bytes, {} of {} layers done", ps_.ref, got, size,
                   ps_.Finished(), ps_.layers.size());
    }
    if (got < size && timeout_.count() > 0 && now - last_change >= timeout_) {
      std::string why =
          "no progress for " + std::to_string(timeout_.count()) + "s (image_pull_progress_timeout)";
      spdlog::warn("pulling {}: {}, {} of {} bytes: cancelled", ps_.ref, why, got, size);
      cancel_(why);
      return;
    }
  }
}

}  // namespace berth::image
