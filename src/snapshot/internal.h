// Helpers shared by the snapshotter implementations (not part of the public API).
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>

#include "common/fs.h"
#include "snapshot/snapshotter.h"

namespace berth::snapshot::internal {

// Copies the tree at src into dst (which must not exist, or be an empty directory) preserving
// owners, modes, mtimes, xattrs, device nodes, FIFOs, sockets, symlinks and hard links. Never
// follows symlinks.
void CopyTree(const std::string& src, const std::string& dst);

// Bytes (allocated blocks) and inodes below dir; hard links are counted once.
Usage DiskUsage(const std::string& dir);

// Where the snapshot directories under one parent are made (see spread.cpp): spread over the
// block groups, and on a file system that delays inode reuse, away from the inodes of trees
// removed in the last six minutes. Thread-safe.
class Placement {
 public:
  // Sets FS_TOPDIR_FL on parent (where the file system has it), so that ext4 spreads the
  // directories made in it over the block groups.
  explicit Placement(std::string parent);
  // A name in parent that a crash between MakeDir's mkdir and rename left.
  static bool IsLeftover(const std::string& name);
  // mkdir <parent>/<name>; throws Error naming the path.
  void MakeDir(const std::string& name, unsigned mode);
  // A tree under parent was removed (fs::RemoveAll's span).
  void Freed(const fs::InodeSpan& span);

 private:
  bool NearFreed(unsigned long long ino);
  struct Span {
    unsigned long long lo, hi;
    int64_t at;  // CLOCK_MONOTONIC seconds
  };
  std::string parent_;
  bool active_ = false;
  std::mutex mu_;
  std::deque<Span> freed_;
};

}  // namespace berth::snapshot::internal
