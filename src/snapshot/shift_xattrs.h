// Xattr values that name users or groups, as a chown'ed copy rewrites them (shifted.cpp). Their
// input comes from image layers: any bytes are taken, never read past their end.
#pragma once

#include <string>

#include "userns/userns.h"

namespace berth::snapshot {

// security.capability: version 2 becomes version 3 owned by the mapped root; version 3 gets its
// root id shifted; anything else (short, unknown version) is returned as it is.
std::string ShiftCapsXattr(std::string value, const userns::Mapping& m);
// system.posix_acl_access / _default: ACL_USER and ACL_GROUP entries shifted; the rest, and a
// trailing partial entry, kept as they are. Ids outside the mapping stay.
std::string ShiftAclXattr(std::string value, const userns::Mapping& m);

}  // namespace berth::snapshot
