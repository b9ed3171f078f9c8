// A bounded queue of byte chunks between two threads of a layer pipeline (fetch -> decompress ->
// unpack). The producer blocks while `capacity` bytes are queued; Cancel wakes both sides.
// Chunk buffers go round: the consumer's previous chunk is kept (a few of them) and handed to the
// producer again by Buffer(), so that a layer's bytes are not written into fresh pages (page
// faults and zeroing) for every megabyte.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace berth::image {

class ChunkPipe {
 public:
  explicit ChunkPipe(size_t capacity = 8 << 20) : capacity_(capacity) {}
  // False when the pipe was cancelled (the consumer gave up): the producer stops.
  bool Push(std::string&& chunk) {
    if (chunk.empty()) return !Cancelled();
    std::unique_lock<std::mutex> lk(mu_);
    space_.wait(lk, [&] {
      return cancelled_ || discarding_ || queued_ == 0 || queued_ + chunk.size() <= capacity_;
    });
    if (cancelled_) return false;
    if (discarding_) return true;
    queued_ += chunk.size();
    q_.push_back(std::move(chunk));
    data_.notify_one();
    return true;
  }
  // Next chunk into out (whose old buffer is kept for Buffer()); false at the end (Close) or
  // when cancelled (see Cancelled()).
  bool Pop(std::string& out) {
    std::unique_lock<std::mutex> lk(mu_);
    Keep(out);
    data_.wait(lk, [&] { return cancelled_ || discarding_ || closed_ || !q_.empty(); });
    if (cancelled_ || discarding_ || q_.empty()) return false;
    out = std::move(q_.front());
    q_.pop_front();
    queued_ -= out.size();
    space_.notify_one();
    return true;
  }
  // A buffer of `size` bytes for the next chunk (contents unspecified): a used one when there is.
  std::string Buffer(size_t size) {
    std::string b;
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (!spare_.empty()) {
        b = std::move(spare_.back());
        spare_.pop_back();
      }
    }
    b.resize(size);  // a kept buffer is full-sized already: nothing to zero
    return b;
  }
  // A kept buffer (empty when there is none), for a stage that passes chunks on and hands the
  // consumer's used buffers back upstream (see Keep()).
  std::string TakeSpare() {
    std::lock_guard<std::mutex> lk(mu_);
    if (spare_.empty()) return {};
    std::string b = std::move(spare_.back());
    spare_.pop_back();
    return b;
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
    spare_.clear();
    data_.notify_all();
    space_.notify_all();
  }
  // The consumer is gone but the producer goes on to its end (its bytes are dropped): a fetch
  // still finishes, so that the blob's digest is checked.
  void Discard() {
    std::lock_guard<std::mutex> lk(mu_);
    discarding_ = true;
    q_.clear();
    queued_ = 0;
    spare_.clear();
    data_.notify_all();
    space_.notify_all();
  }
  bool Cancelled() const {
    std::lock_guard<std::mutex> lk(mu_);
    return cancelled_;
  }
  // For the consumer: no more chunks will come (cancelled or discarding).
  bool Stopped() const {
    std::lock_guard<std::mutex> lk(mu_);
    return cancelled_ || discarding_;
  }

 private:
  static constexpr size_t kSpares = 4;
  void Keep(std::string& used) {
    if (used.capacity() >= (256u << 10) && spare_.size() < kSpares && !cancelled_) {
      used.resize(used.capacity());
      spare_.push_back(std::move(used));
    }
    used.clear();
  }
  const size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable data_, space_;
  std::deque<std::string> q_;
  std::vector<std::string> spare_;
  size_t queued_ = 0;
  bool closed_ = false, cancelled_ = false, discarding_ = false;
};

// Gathers writes into chunks of `chunk` bytes before they go into a pipe. A producer can also
// write straight into the chunk: Space() is where the next bytes go, Commit(n) says n of them
// were written there.
class ChunkWriter {
 public:
  ChunkWriter(ChunkPipe& pipe, size_t chunk = 1 << 20) : pipe_(pipe), chunk_(chunk) {}
  bool Write(const char* p, size_t n) {
    while (n > 0) {
      size_t room;
      char* to = Space(&room);
      size_t k = n < room ? n : room;
      std::memcpy(to, p, k);
      p += k;
      n -= k;
      if (!Commit(k)) return false;
    }
    return true;
  }
  char* Space(size_t* room) {
    if (buf_.size() != chunk_) {
      buf_ = pipe_.Buffer(chunk_);
      used_ = 0;
    }
    *room = chunk_ - used_;
    return buf_.data() + used_;
  }
  // False when the pipe was cancelled.
  bool Commit(size_t n) {
    used_ += n;
    return used_ < chunk_ || Flush();
  }
  bool Flush() {
    if (buf_.size() != chunk_ || used_ == 0) return !pipe_.Cancelled();
    buf_.resize(used_);
    used_ = 0;
    return pipe_.Push(std::move(buf_));
  }

 private:
  ChunkPipe& pipe_;
  size_t chunk_, used_ = 0;
  std::string buf_;
};

}  // namespace berth::image
