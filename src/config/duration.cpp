// Go time.ParseDuration / time.Duration.String, for the duration-valued config keys.
#include <cstdint>
#include <limits>
#include <string>

#include "config/cri.h"

namespace berth::config {
namespace {

// Nanoseconds per unit; 0 when the unit is unknown. Advances i past the unit.
uint64_t ParseUnit(std::string_view s, size_t& i) {
  static constexpr struct {
    std::string_view name;
    uint64_t ns;
  } kUnits[] = {
      {"ns", 1},
      {"us", 1000},
      {"\xC2\xB5s", 1000},  // U+00B5 micro sign
      {"\xCE\xBCs", 1000},  // U+03BC Greek mu
      {"ms", 1000000},
      {"s", 1000000000ull},
      {"m", 60ull * 1000000000ull},
      {"h", 3600ull * 1000000000ull},
  };
  // Longest match first: "ms" before "m", "ns"/"us" before "s".
  size_t best_len = 0;
  uint64_t best = 0;
  for (const auto& u : kUnits) {
    if (s.substr(i, u.name.size()) == u.name && u.name.size() > best_len) {
      best_len = u.name.size();
      best = u.ns;
    }
  }
  i += best_len;
  return best;
}

}  // namespace

bool ParseDuration(std::string_view s, std::chrono::nanoseconds* out) {
  size_t i = 0;
  bool neg = false;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) {
    neg = s[i] == '-';
    ++i;
  }
  if (s.substr(i) == "0") {
    if (out) *out = std::chrono::nanoseconds(0);
    return true;
  }
  if (i >= s.size()) return false;
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t total = 0;
  while (i < s.size()) {
    // Integer part.
    uint64_t whole = 0;
    bool overflow = false;
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (whole > (kMax - (s[i] - '0')) / 10) overflow = true;
      if (!overflow) whole = whole * 10 + (s[i] - '0');
      ++i;
    }
    bool had_int = i > start;
    // Fraction.
    uint64_t frac = 0;
    double scale = 1;
    bool had_frac = false;
    if (i < s.size() && s[i] == '.') {
      ++i;
      size_t fstart = i;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        if (frac < (std::numeric_limits<uint64_t>::max() / 10) - 10 && scale < 1e18) {
          frac = frac * 10 + (s[i] - '0');
          scale *= 10;
        }
        ++i;
      }
      had_frac = i > fstart;
    }
    if (!had_int && !had_frac) return false;
    if (overflow) return false;
    uint64_t unit = ParseUnit(s, i);
    if (unit == 0) return false;
    if (whole > kMax / unit) return false;
    uint64_t v = whole * unit;
    if (frac > 0) {
      double f = static_cast<double>(frac) * (static_cast<double>(unit) / scale);
      if (f >= static_cast<double>(kMax)) return false;
      v += static_cast<uint64_t>(f);
      if (v > kMax) return false;
    }
    if (v > kMax - total) return false;
    total += v;
  }
  if (out) {
    int64_t n = static_cast<int64_t>(total);
    *out = std::chrono::nanoseconds(neg ? -n : n);
  }
  return true;
}

std::string FormatDuration(std::chrono::nanoseconds d) {
  int64_t n = d.count();
  if (n == 0) return "0s";
  bool neg = n < 0;
  uint64_t u = neg ? static_cast<uint64_t>(-(n + 1)) + 1 : static_cast<uint64_t>(n);
  std::string out;
  auto frac = [](uint64_t v, uint64_t per, int digits) {
    // v / per with up to `digits` fractional digits, trailing zeros trimmed.
    std::string s = std::to_string(v / per);
    uint64_t rem = v % per;
    if (rem != 0) {
      std::string f = std::to_string(rem);
      f = std::string(digits - f.size(), '0') + f;
      while (!f.empty() && f.back() == '0') f.pop_back();
      s += "." + f;
    }
    return s;
  };
  if (u < 1000) {
    out = std::to_string(u) + "ns";
  } else if (u < 1000000) {
    out = frac(u, 1000, 3) + "\xC2\xB5s";
  } else if (u < 1000000000ull) {
    out = frac(u, 1000000, 6) + "ms";
  } else {
    uint64_t h = u / (3600ull * 1000000000ull);
    uint64_t rest = u % (3600ull * 1000000000ull);
    uint64_t m = rest / (60ull * 1000000000ull);
    rest %= 60ull * 1000000000ull;
    if (h > 0) out += std::to_string(h) + "h";
    if (h > 0 || m > 0) out += std::to_string(m) + "m";
    out += frac(rest, 1000000000ull, 9) + "s";
  }
  return neg ? "-" + out : out;
}

}  // namespace berth::config
