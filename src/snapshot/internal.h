// Helpers shared by the snapshotter implementations (not part of the public API).
#pragma once

#include <string>

#include "snapshot/snapshotter.h"

namespace berth::snapshot::internal {

// Copies the tree at src into dst (which must not exist, or be an empty directory) preserving
// owners, modes, mtimes, xattrs, device nodes, FIFOs, sockets, symlinks and hard links. Never
// follows symlinks.
void CopyTree(const std::string& src, const std::string& dst);

// Bytes (allocated blocks) and inodes below dir; hard links are counted once.
Usage DiskUsage(const std::string& dir);

// Sets FS_TOPDIR_FL on dir, so that ext4 spreads its subdirectories (snapshots) over the block
// groups instead of packing them where the last removed one was (see spread.cpp). False where
// the file system has no such flag (it is then only a placement hint that is not needed).
bool SpreadSubdirs(const std::string& dir);

}  // namespace berth::snapshot::internal
