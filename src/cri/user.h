// The default user of an image (OCI config.User) as CRI's Image.uid / Image.username.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace berth::cri {

struct ImageUser {
  std::optional<int64_t> uid;  // set when the user part is numeric
  std::string username;        // set when the user part is a name
};

// As containerd: "" -> neither; "1000" / "1000:1000" -> uid 1000; "nobody" / "nobody:nogroup" ->
// username "nobody"; ":1000" -> neither. Only the part before the first ':' counts. A number that
// does not fit in int64 is treated as a name.
ImageUser ParseImageUser(std::string_view user);

}  // namespace berth::cri
