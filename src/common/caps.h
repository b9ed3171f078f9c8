// Capabilities of the calling process (its effective set, from /proc/self/status).
#pragma once

namespace berth::caps {

// Linux capability numbers (linux/capability.h) berthd checks for.
inline constexpr int kNetAdmin = 12;
inline constexpr int kSysAdmin = 21;
inline constexpr int kSysResource = 24;

// True when the capability is in the effective set. False when /proc/self/status is unreadable.
bool HasEffective(int cap);

}  // namespace berth::caps
