// berthd's side of attach (monitor/attach.h): a connection to a container's berth-monitor that
// carries the container's stdio to one client.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace berth::monitor {

class AttachConnection {
 public:
  // Connects to the monitor's attach socket (AttachSocketPath of the container's dir) and
  // attaches the streams asked for. Throws Error: kFailedPrecondition when no monitor listens
  // (the container is not running), kUnavailable when it refuses the client.
  static std::unique_ptr<AttachConnection> Open(const std::string& socket_path, bool in, bool out,
                                                bool err);
  ~AttachConnection();
  AttachConnection(const AttachConnection&) = delete;
  AttachConnection& operator=(const AttachConnection&) = delete;

  // The pipe ends (each handed over once; -1 = not asked for, or stdin the container does not
  // take): write end of the container's stdin, read ends of its stdout and stderr.
  int TakeStdin();
  int TakeStdout();
  int TakeStderr();
  bool tty() const { return tty_; }
  void Resize(uint16_t width, uint16_t height);
  // Blocks until the monitor lets the client go: the container exited ("exit") or the client's
  // stdin ended ("detach"). Throws Error with the monitor's message otherwise.
  void Wait();
  // Lets go of the container: Wait() returns and the monitor drops the client.
  void Cancel();

 private:
  AttachConnection() = default;
  int ctl_ = -1;
  int in_ = -1, out_ = -1, err_ = -1;
  bool tty_ = false;
  std::atomic<bool> cancelled_{false};
  std::string socket_;
};

}  // namespace berth::monitor
