// Network namespaces of pod sandboxes, pinned by a bind mount of the namespace file so that they
// outlive the process that created them (and berthd itself).
#pragma once

#include <string>

namespace berth::network {

// Creates a new network namespace with its loopback interface up and bind-mounts it onto `path`
// (an empty file is created first; the parent directory must exist). A short-lived thread does
// unshare(CLONE_NEWNET), SIOCSIFFLAGS(lo, IFF_UP) and the bind mount of
// /proc/thread-self/ns/net.
// Throws Error naming the path and the failing step.
void CreateNetns(const std::string& path);

// Creates the empty file `path` (it must not exist) for another process to bind-mount a network
// namespace onto (berth-pause does, for the sandboxes berthd starts itself).
void CreateNetnsFile(const std::string& path);

// Unmounts (MNT_DETACH) and removes the pinned namespace. A missing path is fine.
void RemoveNetns(const std::string& path);

// True when `path` is a mounted network namespace file.
bool IsNetns(const std::string& path);

}  // namespace berth::network
