// Times an image pull for the metrics: ObservePull([&] { return images.Pull(ref, auth); }).
// The result needs a `size` (bytes pulled); a berth::Error counts as a failure with its code's
// name as the reason, any other exception as "unknown". The exception is rethrown.
#pragma once

#include <chrono>
#include <cstdint>

#include "common/error.h"
#include "metrics/metrics.h"

namespace berth::metrics {

template <class Pull>
auto ObservePull(Pull&& pull) {
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  try {
    auto result = pull();
    ImagePull(result.size > 0 ? uint64_t(result.size) : 0, seconds(), "");
    return result;
  } catch (const Error& e) {
    ImagePull(0, seconds(), CodeName(static_cast<int>(e.code())));
    throw;
  } catch (...) {
    ImagePull(0, seconds(), "unknown");
    throw;
  }
}

}  // namespace berth::metrics
