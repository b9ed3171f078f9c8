// Where snapshot directories are made: on ext4 without a journal, a new snapshot is kept out of
// the block groups whose inodes a removed snapshot has just freed (src/snapshot/spread.cpp).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <regex>

#include "common/exec.h"
#include "common/fs.h"
#include "snapshot/snapshotter.h"
#include "support/support.h"

using berth::testing::TempDir;

namespace {

ino_t Inode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_ino;
}

// A field of `dumpe2fs -h`, e.g. "Inodes per group"; 0 when missing.
uint64_t SuperblockField(const std::string& dump, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(dump, m, std::regex(name + ":\\s+([0-9]+)"))) return 0;
  return std::stoull(m[1]);
}

// A fresh ext4 without a journal on a sparse 16 GiB file, loop-mounted at <dir>/mnt: 8 flex
// groups of 16 block groups.
class LoopExt4 {
 public:
  explicit LoopExt4(const TempDir& dir) : image_(dir / "fs.img"), mnt_(dir / "mnt") {
    if (!berth::testing::IsRoot()) {
      skip_ = "needs root to mount a file system";
      return;
    }
    int fd = ::open(image_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    bool sized = fd >= 0 && ::ftruncate(fd, 16LL << 30) == 0;
    if (fd >= 0) ::close(fd);
    if (!sized) {
      skip_ = "cannot make a sparse 16 GiB file under " + dir.path();
      return;
    }
    auto mk = Run({"mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-E", "nodiscard", image_});
    if (!mk.ok()) {
      skip_ = "mkfs.ext4: " + mk.err;
      return;
    }
    berth::fs::MkdirAll(mnt_);
    auto mount = Run({"mount", "-o", "loop", image_, mnt_});
    if (!mount.ok()) {
      skip_ = "cannot mount a loop device: " + mount.err;
      return;
    }
    std::string dump = Run({"dumpe2fs", "-h", image_}).out;
    flex_inodes_ = SuperblockField(dump, "Inodes per group") *
                   std::max<uint64_t>(1, SuperblockField(dump, "Flex block group size"));
    if (flex_inodes_ == 0) skip_ = "dumpe2fs -h gave no inode geometry";
  }
  ~LoopExt4() { berth::testing::UnmountAllBelow(mnt_); }
  const std::string& skip() const { return skip_; }
  const std::string& mnt() const { return mnt_; }
  uint64_t FlexOf(const std::string& path) const { return (Inode(path) - 1) / flex_inodes_; }

 private:
  static berth::exec::Result Run(const std::vector<std::string>& argv) {
    try {
      return berth::exec::Run(argv);
    } catch (const std::exception& e) {
      berth::exec::Result r;
      r.err = e.what();
      return r;
    }
  }
  std::string image_, mnt_, skip_;
  uint64_t flex_inodes_ = 0;
};

// A layer-like tree: 40 directories of 100 files.
void FillTree(const std::string& dir) {
  for (int d = 0; d < 40; ++d) {
    std::string sub = dir + "/d" + std::to_string(d);
    berth::fs::MkdirAll(sub);
    for (int f = 0; f < 100; ++f) {
      int fd = ::open((sub + "/f" + std::to_string(f)).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      ASSERT_GE(fd, 0);
      ::close(fd);
    }
  }
}

}  // namespace

TEST(SnapshotPlacement, NewSnapshotsAvoidTheInodesARemovalJustFreed) {
  TempDir dir("berth-placement");
  LoopExt4 ext4(dir);
  if (!ext4.skip().empty()) GTEST_SKIP() << ext4.skip();
  auto snap = berth::snapshot::NewNative(ext4.mnt() + "/root");
  const std::string snapshots = ext4.mnt() + "/root/snapshots";

  snap->Prepare("s", "");
  std::string s_dir = snap->ApplyDir("s");
  FillTree(s_dir);
  uint64_t k = ext4.FlexOf(s_dir);
  // While s fills its flex group, new top directories go to the others: give each of them more
  // directories than s's group will have once s is gone.
  for (int i = 0; i < 6; ++i) {
    std::string filler = snapshots + "/filler-" + std::to_string(i);
    ASSERT_EQ(::mkdir(filler.c_str(), 0700), 0);
    ASSERT_NE(ext4.FlexOf(filler), k);
  }
  snap->Remove("s");

  // Without berth's placement, a new directory there lands in the group s has just freed...
  std::string plain = snapshots + "/plain";
  ASSERT_EQ(::mkdir(plain.c_str(), 0700), 0);
  ASSERT_EQ(ext4.FlexOf(plain), k) << "the file system did not pick the freed group again";
  ASSERT_EQ(::rmdir(plain.c_str()), 0);

  // ...a snapshot does not, and works as any other.
  snap->Prepare("t", "");
  std::string t_dir = snap->ApplyDir("t");
  EXPECT_NE(ext4.FlexOf(t_dir), k);
  berth::testing::WriteFile(t_dir + "/f", "x");
  snap->Commit("T", "t");
  for (const auto& n : berth::fs::ListDir(snapshots))
    EXPECT_EQ(n.find(".placing-"), std::string::npos) << "left behind: " << n;
}

// What a crash between making a snapshot directory and renaming it into place left is removed
// when the snapshotter opens.
TEST(SnapshotPlacement, InterruptedPlacementIsRemovedOnOpen) {
  TempDir dir;
  const std::string root = dir / "root";
  berth::fs::MkdirAll(root + "/snapshots/.placing-7-0/fs");
  auto snap = berth::snapshot::NewNative(root);
  EXPECT_FALSE(berth::fs::Exists(root + "/snapshots/.placing-7-0"));
  snap->Prepare("a", "");
  EXPECT_TRUE(berth::fs::IsDir(snap->ApplyDir("a")));
}
