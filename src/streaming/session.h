// Internal to berth_streaming: the parts a connection's protocol (SPDY or WebSocket) shares.
#pragma once

#include <utility>  // before asio: its awaitable.hpp uses std::exchange

#include <boost/asio.hpp>

#include <deque>
#include <memory>
#include <string>

#include "streaming/process.h"

namespace berth::streaming {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

// Channels as kubelet numbers them (remotecommand): the WebSocket channel byte, and the SPDY
// streamType a number stands for.
enum Channel : int { kStdin = 0, kStdout = 1, kStderr = 2, kError = 3, kResize = 4 };

// A steady_timer used as an event: Wait() returns once Notify() was called (or at once if it
// was called since the last Wait()). Notify() wakes every waiter.
class Event {
 public:
  explicit Event(const asio::any_io_executor& ex) : t_(ex, asio::steady_timer::time_point::max()) {}
  awaitable<void> Wait();
  void Notify() {
    set_ = true;
    t_.cancel();
  }

 private:
  asio::steady_timer t_;
  bool set_ = false;
};

// Bytes a session took from its client and has not yet written on (to a process's stdin or a
// port in the pod). While they exceed kMax the session reads nothing more from its client, so
// that a client sending faster than the pod reads is held back by TCP, not by berthd's memory.
// All on the server's one I/O thread.
class InputBudget {
 public:
  static constexpr size_t kMax = 4u << 20;
  explicit InputBudget(const asio::any_io_executor& ex) : drained_(ex) {}
  void Take(size_t n) { pending_ += n; }
  void Give(size_t n) {
    pending_ -= n < pending_ ? n : pending_;
    drained_.Notify();
  }
  // Returns once the pending bytes are within kMax (or at once when `stop` is set).
  awaitable<void> Room(const bool& stop);
  void Wake() { drained_.Notify(); }

 private:
  size_t pending_ = 0;
  Event drained_;
};

// What a remotecommand session writes, implemented by each protocol.
class CommandSink {
 public:
  virtual ~CommandSink() = default;
  virtual void Output(int channel, std::string data) = 0;  // stdout, stderr
  virtual void CloseOutput(int channel) = 0;
  virtual size_t Queued() const = 0;  // bytes not yet written to the socket
  virtual Event& Drained() = 0;       // notified when the queue shrinks
  // The command ended: exit code, or `error` when it could not run. The protocol writes the
  // status and closes.
  virtual void Finish(int exit_code, const std::string& error) = 0;
};

// Runs one exec or attach for a session: starts the process (off the I/O thread), copies its
// output to the sink and the client's stdin to it, forwards resizes, reports its end.
class CommandRunner : public std::enable_shared_from_this<CommandRunner> {
 public:
  CommandRunner(asio::any_io_executor ex, Request req, CommandOptions opts,
                std::weak_ptr<CommandSink> sink, std::shared_ptr<InputBudget> budget);
  void Start();
  void Stdin(std::string data);
  void StdinEof();
  void Resize(TermSize s);
  void ResizeJson(const std::string& chunk);  // {"Width":W,"Height":H} messages, maybe split
  void ClientGone();

 private:
  awaitable<void> Run();
  awaitable<void> Pump(int fd, int channel);
  awaitable<void> WriteStdin();
  void Done();
  void DropStdin();

  asio::any_io_executor ex_;
  Request req_;
  CommandOptions opts_;
  std::weak_ptr<CommandSink> sink_;
  std::shared_ptr<InputBudget> budget_;
  std::shared_ptr<Process> proc_;
  std::unique_ptr<asio::posix::stream_descriptor> stdin_;
  std::deque<std::string> stdin_queue_;
  bool stdin_eof_ = false, stdin_writing_ = false, gone_ = false, finished_ = false,
       started_ = false;
  int pumps_ = 0;
  bool exited_ = false;
  int exit_code_ = -1;
  std::string error_;
  std::string resize_buf_;
  TermSize size_;
};

}  // namespace berth::streaming
