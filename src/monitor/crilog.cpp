#include "monitor/crilog.h"

#include <time.h>

namespace berth::monitor {

const char* StreamName(Stream s) { return s == Stream::kStdout ? "stdout" : "stderr"; }

namespace {

void Put2(char* p, int v) {
  p[0] = static_cast<char>('0' + v / 10 % 10);
  p[1] = static_cast<char>('0' + v % 10);
}

bool Digits(std::string_view s, size_t pos, size_t n, int* v) {
  if (pos + n > s.size()) return false;
  int r = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    r = r * 10 + (c - '0');
  }
  *v = r;
  return true;
}

// Days since 1970-01-01 for a civil date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

std::string FormatTimestamp(int64_t unix_ns) {
  int64_t secs = unix_ns / 1000000000;
  int64_t nanos = unix_ns % 1000000000;
  if (nanos < 0) {
    nanos += 1000000000;
    secs -= 1;
  }
  time_t t = static_cast<time_t>(secs);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  int year = tm.tm_year + 1900;
  if (year < 0) year = 0;
  buf[0] = static_cast<char>('0' + year / 1000 % 10);
  buf[1] = static_cast<char>('0' + year / 100 % 10);
  Put2(buf + 2, year % 100);
  buf[4] = '-';
  Put2(buf + 5, tm.tm_mon + 1);
  buf[7] = '-';
  Put2(buf + 8, tm.tm_mday);
  buf[10] = 'T';
  Put2(buf + 11, tm.tm_hour);
  buf[13] = ':';
  Put2(buf + 14, tm.tm_min);
  buf[16] = ':';
  Put2(buf + 17, tm.tm_sec);
  buf[19] = '.';
  int64_t n = nanos;
  for (int i = 8; i >= 0; --i) {
    buf[20 + i] = static_cast<char>('0' + n % 10);
    n /= 10;
  }
  buf[29] = 'Z';
  return std::string(buf, 30);
}

void AppendLogEntry(std::string& out, int64_t unix_ns, Stream stream, bool partial,
                    std::string_view text) {
  out += FormatTimestamp(unix_ns);
  out += ' ';
  out += StreamName(stream);
  out += partial ? " P " : " F ";
  out.append(text.data(), text.size());
  out += '\n';
}

void LineSplitter::Feed(std::string_view data) {
  while (!data.empty()) {
    size_t nl = data.find('\n');
    size_t take = nl == std::string_view::npos ? data.size() : nl;
    if (max_ > 0) {
      size_t room = static_cast<size_t>(max_) - buf_.size();
      if (take > room) {
        // The line is longer than the limit: emit exactly max_ bytes as a partial piece.
        if (buf_.empty()) {
          sink_(ctx_, true, data.substr(0, room));
        } else {
          buf_.append(data.data(), room);
          sink_(ctx_, true, buf_);
          buf_.clear();
        }
        data.remove_prefix(room);
        continue;
      }
    }
    if (nl == std::string_view::npos) {
      buf_.append(data.data(), data.size());
      return;
    }
    if (buf_.empty()) {
      sink_(ctx_, false, data.substr(0, nl));
    } else {
      buf_.append(data.data(), nl);
      sink_(ctx_, false, buf_);
      buf_.clear();
    }
    data.remove_prefix(nl + 1);
  }
}

void LineSplitter::Finish() {
  if (buf_.empty()) return;
  sink_(ctx_, true, buf_);  // no newline ended it: a partial line, as containerd writes it
  buf_.clear();
  buf_.shrink_to_fit();
}

bool ParseTimestamp(std::string_view s, int64_t* unix_ns) {
  int year, mon, day, hh, mm, ss;
  if (!Digits(s, 0, 4, &year) || s.size() < 20 || s[4] != '-' || !Digits(s, 5, 2, &mon) ||
      s[7] != '-' || !Digits(s, 8, 2, &day) || (s[10] != 'T' && s[10] != 't') ||
      !Digits(s, 11, 2, &hh) || s[13] != ':' || !Digits(s, 14, 2, &mm) || s[16] != ':' ||
      !Digits(s, 17, 2, &ss))
    return false;
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60) return false;
  size_t pos = 19;
  int64_t frac = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 9) frac = frac * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return false;
    for (size_t i = digits; i < 9; ++i) frac *= 10;
  }
  if (pos >= s.size()) return false;
  int64_t offset = 0;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int oh, om;
    if (!Digits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !Digits(s, pos + 4, 2, &om) || oh > 23 || om > 59)
      return false;
    offset = (oh * 3600 + om * 60) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return false;
  }
  if (pos != s.size()) return false;
  int64_t days = DaysFromCivil(year, static_cast<unsigned>(mon), static_cast<unsigned>(day));
  int64_t secs = days * 86400 + hh * 3600 + mm * 60 + ss - offset;
  if (secs > 9223372035LL || secs < -9223372035LL) return false;  // outside int64 nanoseconds
  *unix_ns = secs * 1000000000 + frac;
  return true;
}

std::string ParseLogLine(std::string_view line, LogEntry* out) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return "missing stream after timestamp";
  std::string_view ts = line.substr(0, sp1);
  int64_t ns;
  if (!ParseTimestamp(ts, &ns)) return "invalid timestamp";
  std::string_view rest = line.substr(sp1 + 1);
  size_t sp2 = rest.find(' ');
  if (sp2 == std::string_view::npos) return "missing tag after stream";
  std::string_view stream = rest.substr(0, sp2);
  LogEntry e;
  e.timestamp = ts;
  if (stream == "stdout") {
    e.stream = Stream::kStdout;
  } else if (stream == "stderr") {
    e.stream = Stream::kStderr;
  } else {
    return "unknown stream";
  }
  rest.remove_prefix(sp2 + 1);
  size_t sp3 = rest.find(' ');
  std::string_view tag = rest.substr(0, sp3);
  // Tags may carry more fields separated by ':' (the first one is P or F).
  std::string_view first = tag.substr(0, tag.find(':'));
  if (first == "P") {
    e.partial = true;
  } else if (first == "F") {
    e.partial = false;
  } else {
    return "unknown tag";
  }
  e.text = sp3 == std::string_view::npos ? std::string_view() : rest.substr(sp3 + 1);
  *out = e;
  return "";
}

}  // namespace berth::monitor
