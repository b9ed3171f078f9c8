// What the streaming server runs: a command (exec, attach) whose stdio it copies to and from the
// client, and the dialer of a port-forward. Implemented by src/lifecycle; kept free of any
// protocol so that the server and its tests do not depend on containers.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace berth::streaming {

struct TermSize {
  uint16_t width = 0, height = 0;
};

// Which streams the client asked for (from the CRI request).
struct CommandOptions {
  bool stdin = false, stdout = true, stderr = true, tty = false;
};

// A running command. The server takes the fds it copies (each Take* hands over ownership once;
// -1 = none) and calls Wait() on a thread of its own.
class Process {
 public:
  virtual ~Process() = default;
  virtual int TakeStdin() = 0;   // write end; closing it is EOF for the command
  virtual int TakeStdout() = 0;  // read end (the pty with a tty)
  virtual int TakeStderr() = 0;  // read end (-1 with a tty)
  virtual void Resize(TermSize size) = 0;
  // Blocks until the command ended; its exit status (128+signal when killed). Throws Error when
  // the command could not run.
  virtual int Wait() = 0;
  // The client went away: the command (an exec'd process and its children) is killed; an attach
  // only lets go of the container.
  virtual void Cancel() = 0;
};

using ProcessStarter = std::function<std::unique_ptr<Process>(const CommandOptions&)>;
// Connects to `port` on localhost in the pod's network namespace; returns the connected socket.
// Throws Error naming the port and the cause.
using PortDialer = std::function<int(uint16_t port)>;

// What a token stands for.
struct Request {
  enum class Kind { kExec, kAttach, kPortForward };
  Kind kind = Kind::kExec;
  CommandOptions command;       // exec, attach
  ProcessStarter start;         // exec, attach
  std::vector<uint16_t> ports;  // port-forward: the ports of the CRI request (may be empty)
  PortDialer dial;              // port-forward
};

}  // namespace berth::streaming
