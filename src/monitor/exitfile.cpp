#include "monitor/exitfile.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>

namespace berth::monitor {

namespace {
bool ParseInt64(std::string_view s, int64_t* v) {
  if (s.empty() || s.size() > 20) return false;
  bool neg = false;
  size_t i = 0;
  if (s[0] == '-') {
    neg = true;
    i = 1;
    if (s.size() == 1) return false;
  }
  uint64_t r = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    uint64_t next = r * 10 + static_cast<uint64_t>(s[i] - '0');
    if (next / 10 != r || next > static_cast<uint64_t>(INT64_MAX)) return false;
    r = next;
  }
  *v = neg ? -static_cast<int64_t>(r) : static_cast<int64_t>(r);
  return true;
}
}  // namespace

std::string FormatExitInfo(const ExitInfo& info) {
  std::string out;
  out += "exit_code " + std::to_string(info.exit_code) + "\n";
  out += "exited_at " + std::to_string(info.exited_at_ns) + "\n";
  out += "signal " + std::to_string(info.signal) + "\n";
  out += std::string("oom_killed ") + (info.oom_killed ? "1" : "0") + "\n";
  if (!info.error.empty()) {
    std::string e = info.error;
    for (char& c : e)
      if (c == '\n' || c == '\r') c = ' ';
    out += "error " + e + "\n";
  }
  return out;
}

std::string ParseExitInfo(std::string_view text, ExitInfo* out) {
  ExitInfo info;
  bool have_code = false, have_time = false;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.empty()) continue;
    size_t sp = line.find(' ');
    std::string_view key = line.substr(0, sp);
    std::string_view val = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
    int64_t v = 0;
    if (key == "exit_code") {
      if (!ParseInt64(val, &v) || v < -1 || v > 255 + 128) return "invalid exit_code";
      info.exit_code = static_cast<int>(v);
      have_code = true;
    } else if (key == "exited_at") {
      if (!ParseInt64(val, &v) || v < 0) return "invalid exited_at";
      info.exited_at_ns = v;
      have_time = true;
    } else if (key == "signal") {
      if (!ParseInt64(val, &v) || v < 0 || v > 128) return "invalid signal";
      info.signal = static_cast<int>(v);
    } else if (key == "oom_killed") {
      if (val != "0" && val != "1") return "invalid oom_killed";
      info.oom_killed = val == "1";
    } else if (key == "error") {
      info.error = std::string(val);
    }
  }
  if (!have_code) return "missing exit_code";
  if (!have_time) return "missing exited_at";
  *out = info;
  return "";
}

int WriteFileAtomicRaw(const std::string& path, std::string_view data) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return e;
    }
    off += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return e;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return e;
  }
  return 0;
}

}  // namespace berth::monitor
