// The directories of an overlay `lowerdir=` option value ("a:b:c", the top layer first).
#pragma once

#include <string>
#include <vector>

namespace berth::snapshot {

inline std::vector<std::string> SplitLowerdir(const std::string& value) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t end = value.find(':', start);
    out.push_back(value.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) return out;
    start = end + 1;
  }
}

}  // namespace berth::snapshot
