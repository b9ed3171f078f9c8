// File capability and POSIX ACL xattr values from image layers, shifted for a chown'ed copy: any
// bytes are taken; an ACL keeps its size, capabilities keep theirs or become a 24-byte version 3.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "snapshot/shift_xattrs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const berth::userns::Mapping m{{{0, 100000, 65536}, {70000, 5000, 10}},
                                        {{0, 200000, 65536}}};
  std::string v(reinterpret_cast<const char*>(data), size);
  auto acl = berth::snapshot::ShiftAclXattr(v, m);
  if (acl.size() != v.size()) abort();
  if (v.size() >= 4 && acl.compare(0, 4, v, 0, 4) != 0) abort();  // the version is kept
  auto caps = berth::snapshot::ShiftCapsXattr(v, m);
  if (caps.size() != v.size() && caps.size() != 24) abort();
  return 0;
}
