#include "streaming/session.h"

#include <unistd.h>

#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace berth::streaming {

awaitable<void> Event::Wait() {
  if (!set_) {
    // The timer never expires (set once, so that a second waiter does not cancel the first).
    boost::system::error_code ec;
    co_await t_.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  set_ = false;
}

awaitable<void> InputBudget::Room(const bool& stop) {
  while (pending_ > kMax && !stop) co_await drained_.Wait();
}

namespace {

// Runs `fn` on a thread of its own (it may block: starting a runtime, connecting) and resumes
// on `ex` with its result.
template <class T>
awaitable<T> OffThread(asio::any_io_executor ex, std::function<T()> fn) {
  struct State {
    explicit State(asio::any_io_executor e) : ex(e), done(e) {}
    asio::any_io_executor ex;
    Event done;
    std::optional<T> value;
    std::exception_ptr error;
  };
  auto st = std::make_shared<State>(ex);
  std::thread([st, fn = std::move(fn)] {
    try {
      st->value = fn();
    } catch (...) {
      st->error = std::current_exception();
    }
    asio::post(st->ex, [st] { st->done.Notify(); });
  }).detach();
  co_await st->done.Wait();
  if (st->error) std::rethrow_exception(st->error);
  co_return std::move(*st->value);
}

std::string What(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown error";
  }
}

}  // namespace

CommandRunner::CommandRunner(asio::any_io_executor ex, Request req, CommandOptions opts,
                             std::weak_ptr<CommandSink> sink, std::shared_ptr<InputBudget> budget)
    : ex_(ex),
      req_(std::move(req)),
      opts_(opts),
      sink_(std::move(sink)),
      budget_(std::move(budget)) {}

void CommandRunner::Start() {
  asio::co_spawn(
      ex_, [self = shared_from_this()]() { return self->Run(); }, asio::detached);
}

awaitable<void> CommandRunner::Run() {
  auto start = req_.start;
  auto opts = opts_;
  try {
    std::function<std::shared_ptr<Process>()> fn = [start, opts]() -> std::shared_ptr<Process> {
      return start(opts);
    };
    auto started =
        OffThread<std::shared_ptr<Process>>(ex_, std::move(fn));  // not in the co_await (GCC 12)
    proc_ = co_await std::move(started);
  } catch (...) {
    error_ = What(std::current_exception());
  }
  started_ = true;
  if (!proc_) {
    DropStdin();
    exited_ = true;
    Done();
    co_return;
  }
  if (gone_) proc_->Cancel();
  if (size_.width > 0) proc_->Resize(size_);  // a resize that came while the process started
  int in = proc_->TakeStdin();
  if (in >= 0) {
    stdin_ = std::make_unique<asio::posix::stream_descriptor>(ex_, in);
    if (!stdin_queue_.empty() || stdin_eof_) {
      stdin_writing_ = true;
      asio::co_spawn(
          ex_, [self = shared_from_this()]() { return self->WriteStdin(); }, asio::detached);
    }
  } else {
    DropStdin();  // a process without stdin: what the client sends there goes nowhere
  }
  for (auto [fd, ch] : {std::pair{proc_->TakeStdout(), int(kStdout)},
                        std::pair{proc_->TakeStderr(), int(kStderr)}}) {
    if (fd < 0) continue;
    ++pumps_;
    asio::co_spawn(
        ex_, [self = shared_from_this(), fd = fd, ch = ch]() { return self->Pump(fd, ch); },
        asio::detached);
  }
  auto proc = proc_;
  auto self = shared_from_this();
  std::thread([self, proc] {
    int code = -1;
    std::string err;
    try {
      code = proc->Wait();
    } catch (...) {
      err = What(std::current_exception());
    }
    asio::post(self->ex_, [self, code, err] {
      self->exited_ = true;
      self->exit_code_ = code;
      self->error_ = err;
      // Closing stdin lets a process still reading it go; an attached container keeps its own.
      self->stdin_.reset();
      if (!self->stdin_writing_) self->DropStdin();
      self->Done();
    });
  }).detach();
}

awaitable<void> CommandRunner::Pump(int fd, int channel) {
  asio::posix::stream_descriptor d(ex_, fd);
  std::vector<char> buf(64 * 1024);
  while (true) {
    auto sink = sink_.lock();
    if (!sink || gone_) break;
    if (sink->Queued() > (4u << 20)) {
      co_await sink->Drained().Wait();
      continue;
    }
    boost::system::error_code ec;
    size_t n =
        co_await d.async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
    if (n > 0) sink->Output(channel, std::string(buf.data(), n));
    if (ec) break;  // end of file, or EIO from a pty whose other side is closed
  }
  if (auto sink = sink_.lock()) sink->CloseOutput(channel);
  --pumps_;
  Done();
}

awaitable<void> CommandRunner::WriteStdin() {
  while (stdin_ && !stdin_queue_.empty()) {
    std::string data = std::move(stdin_queue_.front());
    stdin_queue_.pop_front();
    boost::system::error_code ec;
    co_await asio::async_write(*stdin_, asio::buffer(data),
                               asio::redirect_error(use_awaitable, ec));
    budget_->Give(data.size());
    if (ec) {
      stdin_.reset();
      break;
    }
  }
  if (stdin_ && stdin_eof_ && stdin_queue_.empty()) stdin_.reset();
  stdin_writing_ = false;
  if (!stdin_) DropStdin();
}

// Input that can no longer be written (no stdin, or it closed) is dropped and no longer counts.
void CommandRunner::DropStdin() {
  size_t n = 0;
  for (const auto& d : stdin_queue_) n += d.size();
  stdin_queue_.clear();
  budget_->Give(n);
}

void CommandRunner::Stdin(std::string data) {
  if (stdin_eof_ || data.empty()) return;
  if (started_ && !stdin_) return;  // no stdin (any more)
  budget_->Take(data.size());
  stdin_queue_.push_back(std::move(data));
  if (stdin_ && !stdin_writing_) {
    stdin_writing_ = true;
    asio::co_spawn(
        ex_, [self = shared_from_this()]() { return self->WriteStdin(); }, asio::detached);
  }
}

void CommandRunner::StdinEof() {
  stdin_eof_ = true;
  if (stdin_ && !stdin_writing_) {
    stdin_writing_ = true;
    asio::co_spawn(
        ex_, [self = shared_from_this()]() { return self->WriteStdin(); }, asio::detached);
  }
}

void CommandRunner::Resize(TermSize s) {
  if (s.width == 0 || s.height == 0) return;
  size_ = s;
  if (proc_) proc_->Resize(s);
}

void CommandRunner::ResizeJson(const std::string& chunk) {
  resize_buf_ += chunk;
  if (resize_buf_.size() > 64 * 1024) resize_buf_.clear();
  // Complete JSON objects at the front of the buffer (a stream of them, as json.Encoder writes).
  while (true) {
    size_t start = resize_buf_.find('{');
    if (start == std::string::npos) {
      resize_buf_.clear();
      return;
    }
    size_t end = resize_buf_.find('}', start);
    if (end == std::string::npos) return;
    auto j = nlohmann::json::parse(resize_buf_.substr(start, end - start + 1), nullptr, false);
    resize_buf_.erase(0, end + 1);
    if (!j.is_object()) continue;
    TermSize s;
    auto num = [&](const char* k) -> uint16_t {
      auto it = j.find(k);
      return it != j.end() && it->is_number_unsigned()
                 ? static_cast<uint16_t>(std::min<uint64_t>(it->get<uint64_t>(), 65535))
                 : 0;
    };
    s.width = num("Width");
    s.height = num("Height");
    Resize(s);
  }
}

void CommandRunner::ClientGone() {
  if (gone_) return;
  gone_ = true;
  if (proc_) proc_->Cancel();
}

void CommandRunner::Done() {
  if (!exited_ || pumps_ > 0 || finished_) return;
  finished_ = true;
  if (auto sink = sink_.lock()) sink->Finish(exit_code_, error_);
}

}  // namespace berth::streaming
