#include "mount/audit.h"

#include <gtest/gtest.h>

namespace berth::mount {
namespace {

const char* kContainer =
    "100 90 0:50 / / ro,relatime - overlay overlay rw\n"
    "101 100 0:51 / /proc rw,nosuid - proc proc rw\n"
    "102 100 0:52 / /dev rw,nosuid - tmpfs tmpfs rw\n"
    "103 100 8:1 /data /vol ro,relatime - ext4 /dev/sda1 rw\n"
    "104 103 0:53 / /vol/sub rw,relatime - tmpfs tmpfs rw,size=64k\n"
    "105 104 0:54 / /vol/sub/deeper rw - tmpfs tmpfs rw\n"
    "106 103 0:55 / /vol/ro-super rw - squashfs /dev/loop0 ro\n"
    "107 100 8:1 /other /rw-vol rw,relatime - ext4 /dev/sda1 rw\n"
    "108 107 0:56 / /rw-vol/sub rw - tmpfs tmpfs rw\n";

TEST(Audit, AutomaticRequestsFindWritableSubmounts) {
  auto f = AuditReadOnly(ParseMountInfo(kContainer));
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0].mount_point, "/vol/sub");
  EXPECT_EQ(f[0].requested, "/vol");
  EXPECT_EQ(f[0].fs_type, "tmpfs");
  EXPECT_EQ(f[0].mount_id, 104);
  EXPECT_EQ(f[0].reason,
            "tmpfs on /vol/sub is writable (per-mount options rw,relatime, super options "
            "rw,size=64k) below read-only /vol");
  EXPECT_EQ(f[1].mount_point, "/vol/sub/deeper");
}

TEST(Audit, ExplicitRequestChecksTheTopToo) {
  auto f = AuditReadOnly(ParseMountInfo(kContainer), {"/rw-vol/"});
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0].mount_point, "/rw-vol");
  EXPECT_NE(f[0].reason.find("the mount requested read-only is itself writable"), std::string::npos);
  EXPECT_EQ(f[1].mount_point, "/rw-vol/sub");
}

TEST(Audit, NothingWhenAllReadOnly) {
  auto m = ParseMountInfo(
      "1 0 0:1 / / rw - ext4 /dev/sda1 rw\n"
      "2 1 0:2 / /vol ro - tmpfs tmpfs rw\n"
      "3 2 0:3 / /vol/sub ro,nosuid - tmpfs tmpfs rw\n");
  EXPECT_TRUE(AuditReadOnly(m).empty());
  EXPECT_TRUE(AuditReadOnly(m, {"/vol"}).empty());
  EXPECT_TRUE(AuditReadOnly(m, {"/nonexistent"}).empty());
}

TEST(Audit, ClosestRequestWins) {
  auto f = AuditReadOnly(ParseMountInfo(kContainer), {"/vol", "/vol/sub"});
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0].requested, "/vol/sub");
  EXPECT_EQ(f[1].requested, "/vol/sub");
}

}  // namespace
}  // namespace berth::mount
