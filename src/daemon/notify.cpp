// sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET (a path, or "@name" for an
// abstract socket).
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "daemon/daemon.h"

namespace berth::daemon {

bool NotifySystemd(const std::string& state) {
  const char* env = std::getenv("NOTIFY_SOCKET");
  if (!env || !*env) return false;
  std::string path = env;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path || (path[0] != '/' && path[0] != '@')) return false;
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (path[0] == '@') addr.sun_path[0] = '\0';
  socklen_t len = socklen_t(offsetof(sockaddr_un, sun_path) + path.size());
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ssize_t n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                       reinterpret_cast<sockaddr*>(&addr), len);
  ::close(fd);
  return n == ssize_t(state.size());
}

}  // namespace berth::daemon
