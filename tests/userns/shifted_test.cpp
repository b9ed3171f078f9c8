// The chown'ed-copy fallback for user-namespaced root file systems (snapshot::EnsureShiftedCopy):
// layers merged as overlay would, owners shifted, modes, hard links, xattrs, device nodes and file
// capabilities kept, one copy per mapping, and a stage left by a crash cleared. Needs root.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>

#include <gtest/gtest.h>

#include "common/fs.h"
#include "snapshot/snapshotter.h"
#include "support/support.h"
#include "userns/userns.h"

namespace {

constexpr uint32_t kBase = 3200000000u;

struct stat Stat(const std::string& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p << ": " << std::strerror(errno);
  return st;
}

void File(const std::string& p, const std::string& data, mode_t mode, uid_t uid, gid_t gid) {
  berth::fs::WriteFileAtomic(p, data, mode, false);
  ASSERT_EQ(::lchown(p.c_str(), uid, gid), 0);
  ASSERT_EQ(::chmod(p.c_str(), mode), 0);
}

class ShiftedCopy : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!berth::testing::IsRoot()) GTEST_SKIP() << "needs root (chown, mknod, trusted xattrs)";
    dir_ = std::make_unique<berth::testing::TempDir>("berth-shifted");
    lower_ = *dir_ / "lower";
    upper_ = *dir_ / "upper";
    for (const auto& d : {lower_, upper_}) berth::fs::MkdirAll(d, 0755);
    // The bottom layer.
    berth::fs::MkdirAll(lower_ + "/bin", 0755);
    File(lower_ + "/bin/su", "su", 04755, 0, 0);
    ASSERT_EQ(::link((lower_ + "/bin/su").c_str(), (lower_ + "/bin/su-link").c_str()), 0);
    ASSERT_EQ(::symlink("su", (lower_ + "/bin/sym").c_str()), 0);
    File(lower_ + "/bin/ping", "ping", 0755, 0, 0);
    // security.capability version 2: cap_net_raw permitted and effective.
    unsigned char caps[20] = {0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00};
    ASSERT_EQ(::setxattr((lower_ + "/bin/ping").c_str(), "security.capability", caps, 20, 0), 0);
    berth::fs::MkdirAll(lower_ + "/home/user", 0700);
    ASSERT_EQ(::chown((lower_ + "/home/user").c_str(), 1000, 1000), 0);
    File(lower_ + "/home/user/note", "n", 0640, 1000, 1001);
    ASSERT_EQ(::setxattr((lower_ + "/home/user/note").c_str(), "user.tag", "v", 1, 0), 0);
    // An ACL naming user 1000 (user::rw-, user:1000:r--, group::r--, mask::r--, other::---).
    const unsigned char acl[] = {2,    0,    0,    0,    1,    0,    6,    0,    0xff, 0xff, 0xff,
                                 0xff, 2,    0,    4,    0,    0xe8, 3,    0,    0,    4,    0,
                                 4,    0,    0xff, 0xff, 0xff, 0xff, 0x10, 0,    4,    0,    0xff,
                                 0xff, 0xff, 0xff, 0x20, 0,    0,    0,    0xff, 0xff, 0xff, 0xff};
    acl_ok_ = ::setxattr((lower_ + "/home/user/note").c_str(), "system.posix_acl_access", acl,
                         sizeof acl, 0) == 0;
    berth::fs::MkdirAll(lower_ + "/dev", 0755);
    ASSERT_EQ(::mknod((lower_ + "/dev/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
    ASSERT_EQ(::mkfifo((lower_ + "/dev/fifo").c_str(), 0600), 0);
    File(lower_ + "/gone", "x", 0644, 0, 0);
    berth::fs::MkdirAll(lower_ + "/opq/old", 0755);
    File(lower_ + "/replaced", "file", 0644, 0, 0);
    // The top layer: a whiteout, an opaque directory, a file replaced by a directory.
    ASSERT_EQ(::mknod((upper_ + "/gone").c_str(), S_IFCHR | 0, makedev(0, 0)), 0);
    berth::fs::MkdirAll(upper_ + "/opq", 0755);
    ASSERT_EQ(::setxattr((upper_ + "/opq").c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
    File(upper_ + "/opq/new", "new", 0644, 0, 0);
    berth::fs::MkdirAll(upper_ + "/replaced", 0750);
  }

  berth::snapshot::ShiftedCopy Copy(const std::string& stage) {
    return berth::snapshot::EnsureShiftedCopy({upper_, lower_}, map_, *dir_ / "cache", stage);
  }

  std::unique_ptr<berth::testing::TempDir> dir_;
  std::string lower_, upper_;
  bool acl_ok_ = false;  // the file system of the test's directory takes POSIX ACLs
  const berth::userns::Mapping map_{{{0, kBase, 65536}}, {{0, kBase, 65536}}};
};

TEST_F(ShiftedCopy, MergesLayersAndShiftsOwnersKeepingEverythingElse) {
  auto c = Copy(*dir_ / "cache/.stage-a");
  ASSERT_TRUE(c.made);
  EXPECT_EQ(c.dir, *dir_ / ("cache/" + berth::snapshot::MappingKey(map_)));
  EXPECT_EQ(berth::snapshot::MappingKey(map_), "u0-3200000000-65536_g0-3200000000-65536");
  const std::string& r = c.dir;
  auto su = Stat(r + "/bin/su");
  EXPECT_EQ(su.st_uid, kBase);
  EXPECT_EQ(su.st_gid, kBase);
  EXPECT_EQ(su.st_mode & 07777, 04755u) << "set-uid bit kept after chown";
  EXPECT_EQ(Stat(r + "/bin/su-link").st_ino, su.st_ino) << "hard link kept";
  EXPECT_TRUE(S_ISLNK(Stat(r + "/bin/sym").st_mode));
  EXPECT_EQ(Stat(r + "/bin/sym").st_uid, kBase);
  auto home = Stat(r + "/home/user");
  EXPECT_EQ(home.st_uid, kBase + 1000);
  EXPECT_EQ(home.st_mode & 07777, 0700u);
  auto note = Stat(r + "/home/user/note");
  EXPECT_EQ(note.st_uid, kBase + 1000);
  EXPECT_EQ(note.st_gid, kBase + 1001);
  char v[8] = {};
  EXPECT_EQ(::getxattr((r + "/home/user/note").c_str(), "user.tag", v, sizeof v), 1);
  EXPECT_EQ(berth::fs::ReadFile(r + "/home/user/note", 100), "n");
  if (acl_ok_) {
    unsigned char acl[64] = {};
    ASSERT_EQ(
        ::getxattr((r + "/home/user/note").c_str(), "system.posix_acl_access", acl, sizeof acl),
        44);
    uint32_t named;
    std::memcpy(&named, acl + 16, 4);
    EXPECT_EQ(named, kBase + 1000) << "the ACL's named user is shifted";
  }
  auto null = Stat(r + "/dev/null");
  EXPECT_TRUE(S_ISCHR(null.st_mode));
  EXPECT_EQ(null.st_rdev, makedev(1, 3));
  EXPECT_TRUE(S_ISFIFO(Stat(r + "/dev/fifo").st_mode));
  // File capabilities: version 3, owned by the pod's root, so they count inside the pod.
  unsigned char caps[32] = {};
  ASSERT_EQ(::getxattr((r + "/bin/ping").c_str(), "security.capability", caps, sizeof caps), 24);
  EXPECT_EQ(caps[3], 0x03);
  uint32_t rootid;
  std::memcpy(&rootid, caps + 20, 4);
  EXPECT_EQ(rootid, kBase);
  // Merged as overlay would.
  EXPECT_NE(::access((r + "/gone").c_str(), F_OK), 0) << "whiteout applied";
  EXPECT_NE(::access((r + "/opq/old").c_str(), F_OK), 0) << "opaque directory hides the lower one";
  EXPECT_EQ(berth::fs::ReadFile(r + "/opq/new", 100), "new");
  EXPECT_EQ(::getxattr((r + "/opq").c_str(), "trusted.overlay.opaque", v, sizeof v), -1);
  EXPECT_TRUE(S_ISDIR(Stat(r + "/replaced").st_mode));
  EXPECT_EQ(Stat(r + "/replaced").st_mode & 07777, 0750u);
  EXPECT_EQ(Stat(r).st_uid, kBase);
  // The layers themselves are untouched.
  EXPECT_EQ(Stat(lower_ + "/bin/su").st_uid, 0u);
  EXPECT_FALSE(berth::fs::Exists(*dir_ / "cache/.stage-a")) << "the stage was renamed";
}

TEST_F(ShiftedCopy, MadeOncePerMappingAndAStageLeftByACrashIsCleared) {
  auto first = Copy(*dir_ / "cache/.stage-a");
  ASSERT_TRUE(first.made);
  auto ino = Stat(first.dir + "/bin/su").st_ino;
  auto again = Copy(*dir_ / "cache/.stage-b");
  EXPECT_FALSE(again.made);
  EXPECT_EQ(again.dir, first.dir);
  EXPECT_EQ(Stat(again.dir + "/bin/su").st_ino, ino) << "the same copy";
  // Another mapping, with a half-done stage left behind by a crash.
  const berth::userns::Mapping other{{{0, kBase + 65536, 65536}}, {{0, kBase + 65536, 65536}}};
  const std::string stage = *dir_ / "cache/.stage-c";
  berth::fs::MkdirAll(stage + "/bin", 0755);
  File(stage + "/bin/half", "h", 0644, 0, 0);
  auto c = berth::snapshot::EnsureShiftedCopy({upper_, lower_}, other, *dir_ / "cache", stage);
  ASSERT_TRUE(c.made);
  EXPECT_FALSE(berth::fs::Exists(c.dir + "/bin/half")) << "nothing of the old stage kept";
  EXPECT_FALSE(berth::fs::Exists(stage));
  EXPECT_EQ(Stat(c.dir + "/bin/su").st_uid, kBase + 65536);
}

// The native snapshotter's container snapshot is the container's own copy: shifted in place and
// bind-mounted, set-uid bits and file capabilities kept.
TEST_F(ShiftedCopy, NativeSnapshotIsShiftedInPlace) {
  const std::string target = *dir_ / "rootfs";
  berth::fs::MkdirAll(target, 0755);
  auto c = berth::snapshot::MountAllShifted({{"bind", lower_, {"rw", "rbind"}}}, target, map_, "x");
  EXPECT_TRUE(c.dir.empty());
  auto su = Stat(target + "/bin/su");
  EXPECT_EQ(su.st_uid, kBase);
  EXPECT_EQ(su.st_mode & 07777, 04755u);
  EXPECT_EQ(Stat(target + "/home/user/note").st_gid, kBase + 1001);
  EXPECT_EQ(Stat(lower_ + "/bin/su").st_uid, kBase) << "in place";
  unsigned char caps[32] = {};
  ASSERT_EQ(::getxattr((target + "/bin/ping").c_str(), "security.capability", caps, sizeof caps),
            24);
  EXPECT_EQ(caps[3], 0x03);
  berth::snapshot::UnmountAll(target);
}

}  // namespace
