#include "mount/mountinfo.h"

#include <charconv>

#include "common/error.h"
#include "common/fs.h"

namespace berth::mount {

namespace {

std::vector<std::string_view> SplitFields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i >= line.size()) break;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
    out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

template <typename T>
bool ParseNumber(std::string_view s, T& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

[[noreturn]] void Malformed(size_t line_no, const std::string& cause) {
  throw Error(Code::kInvalidArgument, "mountinfo line " + std::to_string(line_no) + ": " + cause);
}

bool IsOctal(char c) { return c >= '0' && c <= '7'; }

}  // namespace

bool HasOption(std::string_view options, std::string_view opt) {
  size_t i = 0;
  while (i <= options.size()) {
    size_t j = options.find(',', i);
    if (j == std::string_view::npos) j = options.size();
    if (options.substr(i, j - i) == opt) return true;
    i = j + 1;
  }
  return false;
}

bool PathAtOrUnder(std::string_view path, std::string_view base) {
  while (base.size() > 1 && base.back() == '/') base.remove_suffix(1);
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  if (base == "/") return !path.empty() && path[0] == '/';
  if (path.size() < base.size() || path.substr(0, base.size()) != base) return false;
  return path.size() == base.size() || path[base.size()] == '/';
}

bool MountInfo::ReadOnly() const { return HasOption(options, "ro"); }
bool MountInfo::SuperReadOnly() const { return HasOption(super_options, "ro"); }

std::string UnescapeMountPath(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && IsOctal(s[i + 1]) && IsOctal(s[i + 2]) &&
        IsOctal(s[i + 3])) {
      int v = (s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0');
      if (v <= 0xff) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

std::vector<MountInfo> ParseMountInfo(std::string_view text) {
  std::vector<MountInfo> out;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    auto f = SplitFields(line);
    if (f.empty()) continue;
    if (f.size() < 9) Malformed(line_no, "expected at least 9 fields, got " + std::to_string(f.size()));
    MountInfo m;
    if (!ParseNumber(f[0], m.id)) Malformed(line_no, "bad mount id \"" + std::string(f[0]) + "\"");
    if (!ParseNumber(f[1], m.parent_id))
      Malformed(line_no, "bad parent id \"" + std::string(f[1]) + "\"");
    size_t colon = f[2].find(':');
    if (colon == std::string_view::npos || !ParseNumber(f[2].substr(0, colon), m.major) ||
        !ParseNumber(f[2].substr(colon + 1), m.minor))
      Malformed(line_no, "bad major:minor \"" + std::string(f[2]) + "\"");
    m.root = UnescapeMountPath(f[3]);
    m.mount_point = UnescapeMountPath(f[4]);
    m.options = std::string(f[5]);
    size_t i = 6;
    while (i < f.size() && f[i] != "-") m.optional_fields.emplace_back(f[i++]);
    if (i >= f.size()) Malformed(line_no, "missing \"-\" separator");
    ++i;
    if (f.size() - i < 2) Malformed(line_no, "missing file system type or source after \"-\"");
    m.fs_type = UnescapeMountPath(f[i]);
    m.source = UnescapeMountPath(f[i + 1]);
    if (f.size() - i >= 3) m.super_options = std::string(f[i + 2]);
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<MountInfo> ReadMountInfo(int pid) {
  std::string path = pid == 0 ? "/proc/self/mountinfo" : "/proc/" + std::to_string(pid) + "/mountinfo";
  std::string text = fs::ReadFile(path);
  try {
    return ParseMountInfo(text);
  } catch (const Error& e) {
    throw Error(e.code(), path + ": " + e.what());
  }
}

}  // namespace berth::mount
