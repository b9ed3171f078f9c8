// A bounded queue of byte chunks between two threads of a layer pipeline (fetch -> decompress ->
// unpack). The producer blocks while `capacity` bytes are queued; Cancel wakes both sides.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>

namespace berth::image {

class ChunkPipe {
 public:
  explicit ChunkPipe(size_t capacity = 8 << 20) : capacity_(capacity) {}
  // False when the pipe was cancelled (the consumer gave up): the producer stops.
  bool Push(std::string&& chunk) {
    if (chunk.empty()) return !Cancelled();
    std::unique_lock<std::mutex> lk(mu_);
    space_.wait(lk,
                [&] { return cancelled_ || queued_ == 0 || queued_ + chunk.size() <= capacity_; });
    if (cancelled_) return false;
    queued_ += chunk.size();
    q_.push_back(std::move(chunk));
    data_.notify_one();
    return true;
  }
  // Next chunk into out; false at the end (Close) or when cancelled (see Cancelled()).
  bool Pop(std::string& out) {
    std::unique_lock<std::mutex> lk(mu_);
    data_.wait(lk, [&] { return cancelled_ || closed_ || !q_.empty(); });
    if (cancelled_ || q_.empty()) return false;
    out = std::move(q_.front());
    q_.pop_front();
    queued_ -= out.size();
    space_.notify_one();
    return true;
  }
  void Close() {
    std::lock_guard<std::mutex> lk(mu_);
    closed_ = true;
    data_.notify_all();
  }
  void Cancel() {
    std::lock_guard<std::mutex> lk(mu_);
    cancelled_ = true;
    q_.clear();
    data_.notify_all();
    space_.notify_all();
  }
  bool Cancelled() const {
    std::lock_guard<std::mutex> lk(mu_);
    return cancelled_;
  }

 private:
  const size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable data_, space_;
  std::deque<std::string> q_;
  size_t queued_ = 0;
  bool closed_ = false, cancelled_ = false;
};

// Gathers small writes into chunks of `chunk` bytes before they go into a pipe.
class ChunkWriter {
 public:
  ChunkWriter(ChunkPipe& pipe, size_t chunk = 1 << 20) : pipe_(pipe), chunk_(chunk) {}
  bool Write(const char* p, size_t n) {
    buf_.append(p, n);
    return buf_.size() < chunk_ || Flush();
  }
  bool Flush() {
    std::string c;
    c.reserve(chunk_);
    c.swap(buf_);
    return pipe_.Push(std::move(c));
  }

 private:
  ChunkPipe& pipe_;
  size_t chunk_;
  std::string buf_;
};

}  // namespace berth::image
