#include "monitor/loglost.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>

namespace berth::monitor {

std::string LogLossPath(const std::string& bundle) { return bundle + "/log-lost"; }

std::string FormatLogLoss(const LogLoss& l) {
  return "entries " + std::to_string(l.entries) + "\nbytes " + std::to_string(l.bytes) + "\n";
}

namespace {

bool ParseCount(std::string_view s, uint64_t* v) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t r = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    r = r * 10 + static_cast<uint64_t>(c - '0');
  }
  *v = r;
  return true;
}

}  // namespace

std::string ParseLogLoss(std::string_view text, LogLoss* out) {
  LogLoss l;
  bool entries = false, bytes = false;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos) {
      if (line.empty()) continue;
      return "line without a value: \"" + std::string(line.substr(0, 64)) + "\"";
    }
    std::string_view key = line.substr(0, sp), value = line.substr(sp + 1);
    uint64_t* dst = key == "entries" ? &l.entries : key == "bytes" ? &l.bytes : nullptr;
    if (!dst) continue;
    if (!ParseCount(value, dst))
      return "invalid " + std::string(key) + " \"" + std::string(value.substr(0, 32)) + "\"";
    (key == "entries" ? entries : bytes) = true;
  }
  if (!entries || !bytes) return "entries and bytes are required";
  *out = l;
  return "";
}

std::string ReadLogLoss(const std::string& bundle, LogLoss* out) {
  std::string path = LogLossPath(bundle);
  *out = LogLoss{};
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? "" : path + ": " + std::strerror(errno);
  char buf[256];
  ssize_t n;
  do {
    n = ::pread(fd, buf, sizeof buf, 0);
  } while (n < 0 && errno == EINTR);
  int err = errno;
  ::close(fd);
  if (n < 0) return path + ": " + std::strerror(err);
  std::string why = ParseLogLoss(std::string_view(buf, static_cast<size_t>(n)), out);
  return why.empty() ? "" : path + ": " + why;
}

}  // namespace berth::monitor
