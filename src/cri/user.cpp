#include "cri/user.h"

#include <charconv>

namespace berth::cri {

ImageUser ParseImageUser(std::string_view user) {
  ImageUser out;
  if (auto colon = user.find(':'); colon != std::string_view::npos) user = user.substr(0, colon);
  if (user.empty()) return out;
  int64_t uid = 0;
  const char* begin = user.data();
  const char* end = user.data() + user.size();
  // Go's strconv.ParseInt accepts a leading '+' or '-'.
  const char* digits = begin;
  if (*digits == '+') ++digits;
  auto [ptr, ec] = std::from_chars(digits, end, uid);
  if (digits != end && ec == std::errc() && ptr == end && !(digits != begin && *digits == '-')) {
    out.uid = uid;
  } else {
    out.username = std::string(user);
  }
  return out;
}

}  // namespace berth::cri
