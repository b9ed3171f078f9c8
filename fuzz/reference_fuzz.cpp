// Image reference parsing: any input either parses into a reference that round-trips through
// String() or is rejected with berth::Error; nothing else escapes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "image/reference.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string s(reinterpret_cast<const char*>(data), size);
  try {
    berth::image::Reference r = berth::image::ParseReference(s);
    // The normalised form is itself valid and stable.
    berth::image::Reference again = berth::image::ParseReference(r.String());
    if (again.String() != r.String()) abort();
    berth::image::Reference familiar = berth::image::ParseReference(r.Familiar());
    if (familiar.String() != r.String()) abort();
    if (r.domain.empty() || r.path.empty() || (r.tag.empty() && r.digest.empty())) abort();
  } catch (const berth::Error&) {
  }
  return 0;
}
