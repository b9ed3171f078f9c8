// The CRI container log format, as kubelet reads it:
//   <RFC3339Nano timestamp> <stdout|stderr> <P|F> <text>\n
// "F" ends a line; "P" is a partial piece: of a line longer than the maximum line size, or the
// text the stream held when it closed without a final newline (as containerd writes both).
// Pure functions, libc and the C++ standard library only: berth-monitor links this code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace berth::monitor {

enum class Stream { kStdout, kStderr };
const char* StreamName(Stream s);

// "2026-11-29T05:10:13.000000000Z" (UTC, always nine fraction digits) for ns since the epoch.
std::string FormatTimestamp(int64_t unix_ns);
// Appends one complete log entry (with its trailing '\n') to `out`.
void AppendLogEntry(std::string& out, int64_t unix_ns, Stream stream, bool partial,
                    std::string_view text);

// Cuts a byte stream into log entries. Feed() may be called with any chunking; each complete
// line is emitted once as F (the '\n' itself is not part of the text); a line reaching
// `max_line` bytes without '\n' is emitted as P pieces of exactly max_line bytes; Finish()
// emits what is left (no newline at EOF) as P. max_line <= 0 means no limit.
class LineSplitter {
 public:
  using Sink = void (*)(void* ctx, bool partial, std::string_view text);
  LineSplitter(long max_line, Sink sink, void* ctx) : max_(max_line), sink_(sink), ctx_(ctx) {}
  void Feed(std::string_view data);
  void Finish();
  size_t buffered() const { return buf_.size(); }

 private:
  long max_;
  Sink sink_;
  void* ctx_;
  std::string buf_;
};

// One parsed log line (the form kubelet's parser accepts: timestamp, stream, tag, text).
struct LogEntry {
  std::string_view timestamp;
  Stream stream = Stream::kStdout;
  bool partial = false;
  std::string_view text;  // without the trailing newline
};
// Parses one line (with or without its trailing '\n'). Returns "" on success, else the reason.
// The timestamp is checked for RFC 3339 shape (date, 'T', time, optional fraction, zone).
std::string ParseLogLine(std::string_view line, LogEntry* out);
// Parses an RFC 3339 timestamp (with optional fraction, 'Z' or +hh:mm) into ns since the epoch.
bool ParseTimestamp(std::string_view ts, int64_t* unix_ns);

}  // namespace berth::monitor
