// Helpers shared by the snapshotter implementations (not part of the public API).
#pragma once

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

// Sets FS_TOPDIR_FL on dir, so that ext4 spreads its subdirectories (snapshots) over the block
// groups instead of packing them where the last removed one was (see spread.cpp). False where
// the file system has no such flag (it is then only a placement hint that is not needed).
bool SpreadSubdirs(const std::string& dir);
// True on ext4 without a journal, which does not reuse an inode for minutes after its deletion.
bool DelaysInodeReuse(const std::string& dir);

// Where the snapshot directories under one parent are made (see spread.cpp): spread over the
// block groups, and on a file system that delays inode reuse, away from the inodes of trees
// removed in the last six minutes. Thread-safe.
class Placement {
 public:
  // Sets FS_TOPDIR_FL on parent and removes what a crash left of a MakeDir.
  explicit Placement(std::string parent);
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
