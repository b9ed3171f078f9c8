#include "mount/mountinfo.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace berth::mount {
namespace {

TEST(MountInfo, ParsesProcExample) {
  auto m = ParseMountInfo(
      "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n");
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].id, 36);
  EXPECT_EQ(m[0].parent_id, 35);
  EXPECT_EQ(m[0].major, 98u);
  EXPECT_EQ(m[0].minor, 0u);
  EXPECT_EQ(m[0].root, "/mnt1");
  EXPECT_EQ(m[0].mount_point, "/mnt2");
  EXPECT_EQ(m[0].options, "rw,noatime");
  EXPECT_EQ(m[0].optional_fields, std::vector<std::string>{"master:1"});
  EXPECT_EQ(m[0].fs_type, "ext3");
  EXPECT_EQ(m[0].source, "/dev/root");
  EXPECT_EQ(m[0].super_options, "rw,errors=continue");
  EXPECT_FALSE(m[0].ReadOnly());
  EXPECT_TRUE(m[0].Writable());
}

TEST(MountInfo, NoOptionalAndSeveralOptionalFields) {
  auto m = ParseMountInfo(
      "1 0 0:1 / / ro - rootfs rootfs rw\n"
      "\n"
      "2 1 0:2 / /a rw shared:1 master:2 propagate_from:3 unbindable - tmpfs tmpfs ro\n");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_TRUE(m[0].optional_fields.empty());
  EXPECT_TRUE(m[0].ReadOnly());
  EXPECT_FALSE(m[0].Writable());
  EXPECT_EQ(m[1].optional_fields.size(), 4u);
  EXPECT_TRUE(m[1].SuperReadOnly());
  EXPECT_FALSE(m[1].Writable());
}

TEST(MountInfo, UnescapesPaths) {
  auto m = ParseMountInfo(
      "40 1 0:3 /my\\040dir /mnt/a\\040b\\011c\\012d\\134e rw - tmpfs my\\040src rw\n");
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].root, "/my dir");
  EXPECT_EQ(m[0].mount_point, "/mnt/a b\tc\nd\\e");
  EXPECT_EQ(m[0].source, "my src");
  EXPECT_EQ(UnescapeMountPath("\\04"), "\\04");
  EXPECT_EQ(UnescapeMountPath("a\\"), "a\\");
  EXPECT_EQ(UnescapeMountPath("\\999"), "\\999");
}

TEST(MountInfo, MissingSuperOptionsIsTolerated) {
  auto m = ParseMountInfo("1 0 0:1 / / rw - tmpfs none\n");
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].super_options, "");
}

void ExpectMalformed(const std::string& text, const std::string& fragment) {
  try {
    ParseMountInfo(text);
    FAIL() << "no error for " << text;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(MountInfo, MalformedLinesNameTheLineAndCause) {
  ExpectMalformed("1 0 0:1 / / rw - tmpfs none rw\nshort line\n", "mountinfo line 2: expected at least 9 fields");
  ExpectMalformed("x 0 0:1 / / rw - tmpfs none rw\n", "bad mount id \"x\"");
  ExpectMalformed("1 y 0:1 / / rw - tmpfs none rw\n", "bad parent id");
  ExpectMalformed("1 0 01 / / rw - tmpfs none rw\n", "bad major:minor \"01\"");
  ExpectMalformed("1 0 0:1 / / rw a b c d e\n", "missing \"-\" separator");
  ExpectMalformed("1 0 0:1 / / rw a b c d -\n", "missing file system type");
}

TEST(MountInfo, ReadsOwnMountInfo) {
  auto m = ReadMountInfo();
  EXPECT_FALSE(m.empty());
}

TEST(MountInfo, Helpers) {
  EXPECT_TRUE(HasOption("rw,nosuid,relatime", "nosuid"));
  EXPECT_FALSE(HasOption("rw,nosuidx", "nosuid"));
  EXPECT_FALSE(HasOption("", "ro"));
  EXPECT_TRUE(PathAtOrUnder("/a/b", "/a"));
  EXPECT_TRUE(PathAtOrUnder("/a", "/a/"));
  EXPECT_FALSE(PathAtOrUnder("/ab", "/a"));
  EXPECT_TRUE(PathAtOrUnder("/x", "/"));
}

}  // namespace
}  // namespace berth::mount
