#include "common/caps.h"

#include <cstdint>
#include <fstream>
#include <string>

namespace berth::caps {

bool HasEffective(int cap) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) != 0) continue;
    uint64_t mask = std::stoull(line.substr(7), nullptr, 16);
    return (mask >> cap) & 1;
  }
  return false;
}

}  // namespace berth::caps
