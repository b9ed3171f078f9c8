// Snapshot trees spread over the file system's allocation groups, away from recent removals.
//
// ext4 places a new directory near its parent's block group (the Orlov allocator), and a new
// file's inode in its directory's group. Snapshots are independent trees that are made and
// removed whole (an image's layers, a container's upper dir), so every new snapshot would land
// in the groups that the last removed one has just freed. With FS_TOPDIR_FL ("chattr +T") on the
// snapshots directory, each snapshot directory goes to a group chosen from its name's hash among
// those with the fewest directories and the most room, as ext4 does for the top-level
// directories of a file system.
//
// That is not enough without a journal: ext4 then does not reuse an inode for 60 s after its
// deletion, or 360 s while its inode table block is dirty (and making an inode dirties its
// block), and scans past every such inode of the group, from the group's start, for every inode
// it makes. A group berth has just emptied by removing a snapshot has few directories and much
// room, so it is the very group the allocator picks next, and a layer unpacked there runs
// several times slower. Placement remembers where the removed trees' inodes were for those six
// minutes; a new snapshot directory that lands there is set aside (it stays, one more directory
// in that group, so that the allocator's next pick differs) and made again under another name,
// and the directory kept is renamed into place (renaming keeps the inode, and so the group).
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <ctime>

#include "common/error.h"
#include "common/fs.h"
#include "snapshot/internal.h"

namespace berth::snapshot::internal {

namespace {

constexpr int64_t kRecentSeconds = 360;  // RECENTCY_MIN (60) + RECENTCY_DIRTY (300)
constexpr size_t kMaxFreed = 256;        // removals remembered at most (the oldest go first)
constexpr int kTries = 8;                // directories made before one is kept anyway
constexpr unsigned long long kMinInodes = 256;  // smaller trees are not remembered
constexpr char kPlacing[] = ".placing-";

int64_t Now() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec;
}

// The block device's kernel name ("vda", "dm-0") of the file system holding dir.
std::string DeviceName(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return "";
  char link[64], target[PATH_MAX];
  std::snprintf(link, sizeof link, "/sys/dev/block/%u:%u", major(st.st_dev), minor(st.st_dev));
  ssize_t n = ::readlink(link, target, sizeof target - 1);
  if (n <= 0) return "";
  std::string t(target, static_cast<size_t>(n));
  return t.substr(t.rfind('/') + 1);
}

// FS_TOPDIR_FL on dir, where the file system has it (elsewhere it is a hint that is not needed).
void SpreadSubdirs(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  int flags = 0;
  if (::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && !(flags & FS_TOPDIR_FL)) {
    flags |= FS_TOPDIR_FL;
    ::ioctl(fd, FS_IOC_SETFLAGS, &flags);
  }
  ::close(fd);
}

// ext4 without a journal, which does not reuse an inode for minutes after its deletion.
bool DelaysInodeReuse(const std::string& dir) {
  struct statfs sf;
  if (::statfs(dir.c_str(), &sf) != 0 || sf.f_type != EXT4_SUPER_MAGIC) return false;
  std::string dev = DeviceName(dir);
  // jbd2 lists every journal it runs as <device>-<inode of the journal, 8>.
  return !dev.empty() && !fs::Exists("/proc/fs/jbd2/" + dev + "-8");
}

}  // namespace

Placement::Placement(std::string parent) : parent_(std::move(parent)) {
  SpreadSubdirs(parent_);
  active_ = DelaysInodeReuse(parent_);
}

bool Placement::IsLeftover(const std::string& name) { return name.rfind(kPlacing, 0) == 0; }

void Placement::Freed(const fs::InodeSpan& span) {
  // A sparse tree (its inodes far apart) says nothing about where a new one would go.
  if (!active_ || span.count < kMinInodes || (span.hi - span.lo) / 8 > span.count) return;
  std::lock_guard<std::mutex> l(mu_);
  if (freed_.size() == kMaxFreed) freed_.pop_front();
  freed_.push_back({span.lo, span.hi, Now()});
}

bool Placement::NearFreed(unsigned long long ino) {
  std::lock_guard<std::mutex> l(mu_);
  int64_t now = Now();
  while (!freed_.empty() && now - freed_.front().at >= kRecentSeconds) freed_.pop_front();
  for (const auto& f : freed_) {
    // A tree as large as the removed one, started within its span before it, or anywhere up to
    // a span after its start, would share its groups.
    unsigned long long span = f.hi - f.lo + 1;
    if (ino + span >= f.lo && ino <= f.hi + span) return true;
  }
  return false;
}

void Placement::MakeDir(const std::string& name, unsigned mode) {
  std::string path = parent_ + "/" + name;
  if (!active_) {
    if (::mkdir(path.c_str(), mode) != 0) ThrowErrno("failed to create " + path);
    return;
  }
  std::vector<std::string> made;  // the last one is kept, the others are set aside
  try {
    for (int i = 0; i < kTries; ++i) {
      made.push_back(parent_ + "/" + kPlacing + name + "-" + std::to_string(i));
      if (::mkdir(made.back().c_str(), mode) != 0) {
        int err = errno;
        std::string failed = made.back();
        made.pop_back();
        ThrowErrno("failed to create " + failed, err);
      }
      struct stat st;
      if (::stat(made.back().c_str(), &st) != 0) ThrowErrno("failed to stat " + made.back());
      if (!NearFreed(st.st_ino)) break;
    }
    if (::rename(made.back().c_str(), path.c_str()) != 0)
      ThrowErrno("failed to rename " + made.back() + " to " + path);
    made.pop_back();
  } catch (...) {
    for (const auto& d : made) ::rmdir(d.c_str());
    throw;
  }
  for (const auto& d : made) ::rmdir(d.c_str());
}

}  // namespace berth::snapshot::internal
