// Attach: how berthd reaches a running container's own stdio through its berth-monitor.
//
// The monitor listens on a unix SOCK_SEQPACKET socket, "<container dir>/attach/sock" (directory
// 0700, socket 0600: only root opens it). One connection is one attached client; every packet
// is one text message:
//   client -> monitor
//     "attach <stdin> <stdout> <stderr>"  (each 0 or 1), first, with SCM_RIGHTS carrying, in this
//                                        order, the read end of a pipe for the container's stdin,
//                                        the write end of one for its stdout, of one for its
//                                        stderr: one fd per stream asked for
//     "resize <width> <height>"          the container's terminal size (tty containers)
//   monitor -> client
//     "ok <tty> <stdin>"                 attached; tty: the container has a terminal (its output
//                                        comes on the stdout pipe); stdin: 1 when the client's
//                                        stdin reaches the container (0: none, or closed by
//                                        stdin_once), else the client's stdin pipe is closed
//     "exit <code>"                      the container exited; its output was written in full
//     "detach"                           the client's stdin ended (without stdin_once): the
//                                        client is let go, the container keeps running
//     "error <message>"                  the client is let go (too slow, bad message...)
//   after which the monitor closes the connection and the client's pipes.
//
// The monitor copies the container's stdout and stderr to every attached client as well as to
// the CRI log. A client more than kMaxLag bytes behind is let go ("error ..."): the container
// and its log never wait for an attached client. Stdin from all clients goes to the container's
// stdin (a pipe the monitor holds open, or the terminal). With stdin_once, the first client
// whose stdin ends (or who goes away) closes the container's stdin: the pipe is closed (end of
// file), or on a terminal in canonical mode the end-of-file character is written.
//
// This header and attach.cpp are libc and the C++ standard library only (linked into the static
// berth-monitor).
#pragma once

#include <poll.h>
#include <sys/un.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace berth::monitor {

// "<dir>/attach/sock" for the container directory (the bundle) `dir`.
std::string AttachSocketPath(const std::string& dir);

// The address of a unix socket at `path`, also when the path is longer than sun_path allows:
// then through "/proc/self/fd/N/<name>" with N an O_PATH fd of the parent directory, which the
// caller closes (*dir_fd, -1 when unused) after bind/connect. False when the parent cannot be
// opened.
bool UnixAddress(const std::string& path, struct sockaddr_un* addr, int* dir_fd);

// A parsed client message. kind "" = malformed.
struct AttachMessage {
  std::string kind;  // "attach", "resize"
  bool in = false, out = false, err = false;
  uint32_t width = 0, height = 0;
};
AttachMessage ParseAttachMessage(std::string_view text);

class AttachServer {
 public:
  static constexpr size_t kMaxClients = 32;
  static constexpr size_t kMaxLag = 1u << 20;  // bytes queued in the monitor per client

  AttachServer();
  ~AttachServer();
  AttachServer(const AttachServer&) = delete;
  AttachServer& operator=(const AttachServer&) = delete;

  // Creates the socket's directory (0700) and the listening socket `path` (0600); `tty`: the
  // container has a terminal. "" or what failed.
  std::string Listen(const std::string& path, bool tty);
  // The container's stdin: the write end of its stdin pipe (owned from now on), or -1 (none).
  void SetStdin(int fd, bool stdin_once);
  // The terminal's master (not owned): resize target, and stdin sink when the container was
  // created with stdin.
  void SetTerminal(int master, bool has_stdin, bool stdin_once);

  // Appends the fds to poll to p (at most max entries); how many.
  int PollFds(struct pollfd* p, int max);
  // The same entries, with revents.
  void Handle(const struct pollfd* p, int n);
  // Container output (stream 1 stdout, 2 stderr) for every attached client.
  void Output(int stream, std::string_view data);
  // The container exited and its output is all in: what is queued is written (for at most
  // `flush_ms`), every client gets "exit <code>", the socket is removed.
  void Exited(int code, int flush_ms);

 private:
  struct Client;
  void Accept();
  void OnControl(Client& c);
  void OnHello(Client& c, const AttachMessage& m, const int* fds);
  void OnStdin(Client& c);
  void StdinEnded(Client& c);
  void CloseContainerStdin();
  void WritePending(Client& c, int stream);
  void WriteStdinPending();
  void Drop(Client& c, const std::string& message);
  void Sweep();

  std::vector<std::pair<Client*, int>> polled_;  // the entries of the last PollFds: who, role
  int listen_fd_ = -1;
  bool tty_ = false;
  bool close_stdin_wanted_ = false;
  std::string path_;
  int stdin_fd_ = -1;  // the container's stdin pipe (owned), or the terminal (not owned)
  bool stdin_owned_ = false, stdin_once_ = false, stdin_closed_ = false;
  int master_ = -1;
  uint16_t width_ = 0, height_ = 0;
  std::string stdin_pending_;  // read from a client, not yet taken by the container
  std::vector<std::unique_ptr<Client>> clients_;
};

}  // namespace berth::monitor
