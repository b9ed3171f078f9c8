// Snapshot trees spread over the file system's allocation groups.
//
// ext4 places a new directory near its parent's block group (the Orlov allocator), and a new
// file's inode in its directory's group. Snapshots are independent trees that are made and
// removed whole (an image's layers, a container's upper dir), so every new snapshot would land
// in the groups that the last removed one has just freed. ext4 without a journal does not reuse
// an inode within minutes of its deletion: it scans past every such inode of the group, for
// every file it creates, which made unpacking a layer of 30000 files several times slower right
// after another was removed. With FS_TOPDIR_FL ("chattr +T") on the snapshots directory, each
// snapshot directory goes to a group chosen from its name's hash among those with the most room,
// as ext4 does for the top-level directories of a file system.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "snapshot/internal.h"

namespace berth::snapshot::internal {

bool SpreadSubdirs(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  int flags = 0;
  bool ok = ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
  if (ok && !(flags & FS_TOPDIR_FL)) {
    flags |= FS_TOPDIR_FL;
    ok = ::ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
  }
  ::close(fd);
  return ok;
}

}  // namespace berth::snapshot::internal
