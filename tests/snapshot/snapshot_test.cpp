#include "snapshot/snapshotter.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/fs.h"
#include "support/support.h"

using namespace berth::snapshot;
using berth::Code;
using berth::Error;
using berth::testing::TempDir;

namespace {

std::string Slurp(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Code CodeOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  return Code::kOk;
}

// The id of a snapshot: the number in its directory's path.
int64_t IdOf(Snapshotter& s, const std::string& key) {
  auto m = s.Mounts(key);
  std::string src = m.at(0).type == "overlay" ? "" : m[0].source;
  for (const auto& o : m[0].options) {
    if (o.rfind("upperdir=", 0) == 0) src = o.substr(9);
  }
  if (src.empty()) {  // a view with several layers: no directory of its own in the mounts
    ADD_FAILURE() << key << " has no directory of its own in its mounts";
    return 0;
  }
  auto end = src.rfind("/fs");
  auto start = src.rfind('/', end - 1) + 1;
  return std::stoll(src.substr(start, end - start));
}

std::vector<std::string> WithoutIndex(std::vector<std::string> opts) {
  if (!opts.empty() && opts[0] == "index=off") opts.erase(opts.begin());
  return opts;
}

void CommonLifecycle(Snapshotter& s) {
  s.Prepare("l1-active", "");
  berth::testing::WriteFile(s.ApplyDir("l1-active") + "/a", "A1");
  s.Commit("l1", "l1-active");
  EXPECT_FALSE(s.Stat("l1-active"));
  ASSERT_TRUE(s.Stat("l1"));
  EXPECT_EQ(s.Stat("l1")->kind, Kind::kCommitted);

  s.Prepare("l2-active", "l1");
  EXPECT_EQ(s.Stat("l2-active")->parent, "l1");
  berth::testing::WriteFile(s.ApplyDir("l2-active") + "/b", "B2");
  s.Commit("l2", "l2-active");

  EXPECT_EQ(CodeOf([&] { s.Prepare("l2", ""); }), Code::kAlreadyExists);
  EXPECT_EQ(CodeOf([&] { s.Prepare("x", "missing"); }), Code::kNotFound);
  s.Prepare("c1", "l2");
  EXPECT_EQ(CodeOf([&] { s.Prepare("x", "c1"); }),
            Code::kFailedPrecondition);                                   // parent not committed
  EXPECT_EQ(CodeOf([&] { s.Remove("l1"); }), Code::kFailedPrecondition);  // has children
  EXPECT_EQ(CodeOf([&] { s.Commit("l3", "l2"); }), Code::kFailedPrecondition);  // not active
  EXPECT_EQ(CodeOf([&] { s.ApplyDir("l2"); }), Code::kFailedPrecondition);
  EXPECT_EQ(s.List().size(), 3u);
  auto u = s.GetUsage("l1");
  EXPECT_GE(u.inodes, 2);
  EXPECT_GT(u.bytes, 0);
  s.Remove("c1");
  s.Remove("l2");
  s.Remove("l1");
  EXPECT_TRUE(s.List().empty());
}

TEST(Snapshot, OverlayMountsShape) {
  TempDir dir;
  auto s = NewOverlay(dir / "root");
  EXPECT_EQ(s->Name(), "overlayfs");
  auto m = s->Prepare("a", "");
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].type, "bind");
  EXPECT_EQ(m[0].source, dir / "root/snapshots/1/fs");
  s->Commit("A", "a");
  m = s->View("v", "A");
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].type, "bind");
  EXPECT_EQ(m[0].options, (std::vector<std::string>{"ro", "rbind"}));
  s->Prepare("b", "A");
  s->Commit("B", "b");
  m = s->Prepare("c", "B");
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].type, "overlay");
  EXPECT_EQ(
      WithoutIndex(m[0].options),
      (std::vector<std::string>{
          "workdir=" + dir / "root/snapshots/4/work", "upperdir=" + dir / "root/snapshots/4/fs",
          "lowerdir=" + dir / "root/snapshots/3/fs:" + dir / "root/snapshots/1/fs"}));
  m = s->View("v2", "B");
  EXPECT_EQ(WithoutIndex(m[0].options),
            (std::vector<std::string>{
                "lowerdir=" + dir / "root/snapshots/3/fs:" + dir / "root/snapshots/1/fs"}));
  EXPECT_EQ(s->Mounts("c")[0].type, "overlay");
}

TEST(Snapshot, OverlayLifecycle) {
  TempDir dir;
  auto s = NewOverlay(dir / "root");
  CommonLifecycle(*s);
}

TEST(Snapshot, NativeLifecycle) {
  TempDir dir;
  auto s = NewNative(dir / "root");
  EXPECT_EQ(s->Name(), "native");
  CommonLifecycle(*s);
}

TEST(Snapshot, MetadataSurvivesReopenAndOrphansAreRemoved) {
  TempDir dir;
  {
    auto s = NewOverlay(dir / "root");
    s->Prepare("a", "");
    s->Commit("A", "a");
    s->Prepare("b", "A");
  }
  berth::fs::MkdirAll(dir / "root/snapshots/77/fs");
  auto s = NewOverlay(dir / "root");
  ASSERT_TRUE(s->Stat("A"));
  EXPECT_EQ(s->Stat("b")->parent, "A");
  EXPECT_FALSE(berth::fs::Exists(dir / "root/snapshots/77"));
  s->Prepare("c", "");
  EXPECT_GT(IdOf(*s, "c"), 2);  // ids are not reused
}

// An active snapshot's record lives in its own directory: making one rewrites no shared file.
// Records survive a reopen, go with their directory, and ids stay unused also after the newest
// snapshot was removed.
TEST(Snapshot, ActiveRecordsLiveInTheirDirectories) {
  TempDir dir;
  int64_t removed = 0;
  {
    auto s = NewOverlay(dir / "root");
    s->Prepare("a", "");
    s->Commit("A", "a");
    std::string before = Slurp(dir / "root/metadata.json");
    s->Prepare("c1", "A");
    s->View("v1", "A");
    EXPECT_EQ(Slurp(dir / "root/metadata.json"), before);
    int64_t c1 = IdOf(*s, "c1");
    auto meta =
        nlohmann::json::parse(Slurp(dir / ("root/snapshots/" + std::to_string(c1) + "/meta.json")));
    EXPECT_EQ(meta["key"], "c1");
    EXPECT_EQ(meta["kind"], "active");
    EXPECT_EQ(meta["parent"], "A");
    s->Prepare("gone", "A");
    removed = IdOf(*s, "gone");
    s->Remove("gone");
    EXPECT_FALSE(berth::fs::Exists(dir / ("root/snapshots/" + std::to_string(removed))));
    EXPECT_EQ(Slurp(dir / "root/metadata.json"), before);
  }
  auto s = NewOverlay(dir / "root");
  ASSERT_TRUE(s->Stat("c1"));
  EXPECT_EQ(s->Stat("c1")->kind, Kind::kActive);
  EXPECT_EQ(s->Stat("c1")->parent, "A");
  EXPECT_EQ(s->Stat("v1")->kind, Kind::kView);
  EXPECT_FALSE(s->Stat("gone"));
  EXPECT_EQ(s->List().size(), 3u);
  s->Prepare("next", "A");
  EXPECT_GT(IdOf(*s, "next"), removed);
  // Committed: the record moves to metadata.json.
  s->Prepare("l2", "A");
  int64_t l2 = IdOf(*s, "l2");
  s->Commit("L2", "l2");
  EXPECT_FALSE(berth::fs::Exists(dir / ("root/snapshots/" + std::to_string(l2) + "/meta.json")));
  EXPECT_NE(Slurp(dir / "root/metadata.json").find("\"L2\""), std::string::npos);
  s.reset();
  s = NewOverlay(dir / "root");
  EXPECT_EQ(s->Stat("L2")->kind, Kind::kCommitted);
  EXPECT_EQ(s->Stat("L2")->parent, "A");
}

// metadata.json of an older version, with an active snapshot in it; and a commit cut short
// between the two records (the committed one wins).
TEST(Snapshot, OlderMetadataAndInterruptedCommitsLoad) {
  TempDir dir;
  for (const char* d : {"1/fs", "2/fs", "2/work", "3/fs"})
    berth::fs::MkdirAll(dir / (std::string("root/snapshots/") + d));
  berth::testing::WriteFile(dir / "root/metadata.json", R"({"next_id": 4, "snapshots": {
      "A": {"id": 1, "kind": "committed", "parent": "", "created": 1},
      "b": {"id": 2, "kind": "active", "parent": "A", "created": 2},
      "C": {"id": 3, "kind": "committed", "parent": "A", "created": 3}}})");
  berth::testing::WriteFile(
      dir / "root/snapshots/3/meta.json",
      R"({"id": 3, "kind": "active", "parent": "A", "created": 3, "key": "c"})");
  auto s = NewOverlay(dir / "root");
  ASSERT_TRUE(s->Stat("b"));
  EXPECT_EQ(s->Stat("b")->kind, Kind::kActive);
  EXPECT_EQ(s->Stat("C")->kind, Kind::kCommitted);
  EXPECT_FALSE(s->Stat("c"));
  EXPECT_FALSE(berth::fs::Exists(dir / "root/snapshots/3/meta.json"));
  EXPECT_TRUE(berth::fs::Exists(dir / "root/snapshots/2/meta.json"));
  EXPECT_EQ(Slurp(dir / "root/metadata.json").find("\"b\""), std::string::npos);
  EXPECT_EQ(s->Mounts("b")[0].type, "overlay");
  s.reset();
  s = NewOverlay(dir / "root");
  EXPECT_EQ(s->List().size(), 3u);
  s->Prepare("d", "C");
  EXPECT_GE(IdOf(*s, "d"), 4);
}

TEST(Snapshot, ConcurrentPrepare) {
  TempDir dir;
  auto s = NewOverlay(dir / "root");
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        std::string k = std::to_string(t) + "-" + std::to_string(i);
        s->Prepare(k, "");
        s->Commit("c" + k, k);
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(s->List().size(), 80u);
}

TEST(Snapshot, NativeCopyPreservesMetadata) {
  if (!berth::testing::IsRoot()) GTEST_SKIP() << "needs root (chown, mknod, trusted xattrs)";
  TempDir dir;
  auto s = NewNative(dir / "root");
  s->Prepare("a", "");
  std::string fs = s->ApplyDir("a");
  berth::testing::WriteFile(fs + "/dir/file", "data");
  ASSERT_EQ(::chown((fs + "/dir/file").c_str(), 1234, 5678), 0);
  ASSERT_EQ(::chmod((fs + "/dir/file").c_str(), 04751), 0);
  ASSERT_EQ(::setxattr((fs + "/dir/file").c_str(), "user.k", "v", 1, 0), 0);
  ASSERT_EQ(::setxattr((fs + "/dir/file").c_str(), "trusted.t", "tv", 2, 0), 0);
  ASSERT_EQ(::link((fs + "/dir/file").c_str(), (fs + "/hard").c_str()), 0);
  ASSERT_EQ(::symlink("../etc/none", (fs + "/dir/sym").c_str()), 0);
  ASSERT_EQ(::mknod((fs + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  ASSERT_EQ(::mkfifo((fs + "/fifo").c_str(), 0640), 0);
  struct timespec ts[2] = {{1000000, 0}, {1000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (fs + "/dir").c_str(), ts, 0), 0);
  s->Commit("A", "a");

  auto m = s->Prepare("b", "A");
  ASSERT_EQ(m[0].type, "bind");
  std::string b = m[0].source;
  struct stat st;
  ASSERT_EQ(::lstat((b + "/dir/file").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_EQ(st.st_mode & 07777, 04751u);
  EXPECT_EQ(st.st_nlink, 2u);
  struct stat hard;
  ASSERT_EQ(::lstat((b + "/hard").c_str(), &hard), 0);
  EXPECT_EQ(hard.st_ino, st.st_ino);
  char buf[16] = {};
  EXPECT_EQ(::getxattr((b + "/dir/file").c_str(), "user.k", buf, sizeof buf), 1);
  EXPECT_EQ(::getxattr((b + "/dir/file").c_str(), "trusted.t", buf, sizeof buf), 2);
  EXPECT_EQ(std::string(buf, 2), "tv");
  char link[64] = {};
  ASSERT_GT(::readlink((b + "/dir/sym").c_str(), link, sizeof link), 0);
  EXPECT_EQ(std::string(link), "../etc/none");
  ASSERT_EQ(::lstat((b + "/null").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(1, 3));
  ASSERT_EQ(::lstat((b + "/fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  ASSERT_EQ(::lstat((b + "/dir").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, 1000000);
  EXPECT_EQ(Slurp(b + "/dir/file"), "data");
  // The copy is independent of its parent.
  berth::testing::WriteFile(b + "/dir/file2", "x");
  EXPECT_FALSE(berth::fs::Exists(fs + "/dir/file2"));
}

TEST(Snapshot, OverlayMountsShowLayers) {
  if (!berth::testing::IsRoot()) GTEST_SKIP() << "needs root to mount";
  TempDir dir;
  if (!OverlaySupported(dir / "root"))
    GTEST_SKIP() << "overlayfs is not supported under " << dir.path();
  auto s = NewOverlay(dir / "root");
  s->Prepare("a", "");
  berth::testing::WriteFile(s->ApplyDir("a") + "/one", "1");
  berth::testing::WriteFile(s->ApplyDir("a") + "/shadowed", "old");
  s->Commit("A", "a");
  s->Prepare("b", "A");
  berth::testing::WriteFile(s->ApplyDir("b") + "/two", "2");
  berth::testing::WriteFile(s->ApplyDir("b") + "/shadowed", "new");
  s->Commit("B", "b");

  auto m = s->Prepare("rw", "B");
  std::string target = dir / "mnt";
  berth::fs::MkdirAll(target);
  MountAll(m, target);
  EXPECT_EQ(Slurp(target + "/one"), "1");
  EXPECT_EQ(Slurp(target + "/two"), "2");
  EXPECT_EQ(Slurp(target + "/shadowed"), "new");
  berth::testing::WriteFile(target + "/three", "3");
  UnmountAll(target);
  EXPECT_FALSE(berth::fs::Exists(target + "/one"));
  EXPECT_EQ(Slurp(s->ApplyDir("rw") + "/three"), "3");  // written into the upper dir

  // A single-parent view is a read-only bind mount.
  auto v = s->View("view", "A");
  MountAll(v, target);
  EXPECT_EQ(Slurp(target + "/shadowed"), "old");
  EXPECT_NE(::mkdir((target + "/new").c_str(), 0755), 0);
  EXPECT_EQ(errno, EROFS);
  UnmountAll(target);
  // A multi-layer view is a read-only overlay.
  auto v2 = s->View("view2", "B");
  MountAll(v2, target);
  EXPECT_EQ(Slurp(target + "/one"), "1");
  EXPECT_NE(::mkdir((target + "/new").c_str(), 0755), 0);
  UnmountAll(target);
  s->Remove("view2");
  s->Remove("view");
  s->Remove("rw");
}

TEST(Snapshot, OverlayManyLayersLongOptions) {
  if (!berth::testing::IsRoot()) GTEST_SKIP() << "needs root to mount";
  TempDir dir;
  std::string root = dir / std::string(150, 'r');
  if (!OverlaySupported(root)) GTEST_SKIP() << "overlayfs is not supported under " << dir.path();
  auto s = NewOverlay(root);
  std::string parent;
  for (int i = 0; i < 40; ++i) {
    std::string k = "k" + std::to_string(i);
    s->Prepare(k, parent);
    berth::testing::WriteFile(s->ApplyDir(k) + "/f" + std::to_string(i), std::to_string(i));
    s->Commit("L" + std::to_string(i), k);
    parent = "L" + std::to_string(i);
  }
  auto m = s->Prepare("top", parent);
  size_t len = 0;
  for (auto& o : m[0].options) len += o.size() + 1;
  EXPECT_GT(len, 4096u);
  std::string target = dir / "mnt";
  berth::fs::MkdirAll(target);
  MountAll(m, target);
  EXPECT_EQ(Slurp(target + "/f0"), "0");
  EXPECT_EQ(Slurp(target + "/f39"), "39");
  UnmountAll(target);
}

TEST(Snapshot, NativeMountIsBind) {
  if (!berth::testing::IsRoot()) GTEST_SKIP() << "needs root to mount";
  TempDir dir;
  auto s = NewNative(dir / "root");
  s->Prepare("a", "");
  berth::testing::WriteFile(s->ApplyDir("a") + "/f", "x");
  s->Commit("A", "a");
  auto v = s->View("v", "A");
  std::string target = dir / "mnt";
  berth::fs::MkdirAll(target);
  MountAll(v, target);
  EXPECT_EQ(Slurp(target + "/f"), "x");
  EXPECT_NE(::mkdir((target + "/new").c_str(), 0755), 0);
  UnmountAll(target);
}

}  // namespace

// The overlay probe's answer is kept for one boot, kernel and file system; anything else probes.
TEST(Snapshot, OverlayProbeCache) {
  if (!berth::testing::IsRoot()) GTEST_SKIP() << "needs root to mount";
  TempDir dir;
  const std::string root = dir / "root";
  const std::string cache = dir / "state/probes/overlayfs.json";
  bool cached = true;
  const bool supported = OverlaySupportedCached(root, cache, &cached);
  EXPECT_FALSE(cached);
  EXPECT_EQ(supported, OverlaySupported(root));
  // A root where overlayfs mounts or where the kernel refuses it (ENODEV, EINVAL) is remembered.
  ASSERT_TRUE(berth::fs::Exists(cache));
  const std::string first = Slurp(cache);
  EXPECT_NE(first.find("\"supported\":" + std::string(supported ? "true" : "false")),
            std::string::npos)
      << first;

  EXPECT_EQ(OverlaySupportedCached(root, cache, &cached), supported);
  EXPECT_TRUE(cached);

  // Another boot: probed again and rewritten.
  std::string other_boot = first;
  auto at = other_boot.find("\"boot_id\":\"");
  ASSERT_NE(at, std::string::npos);
  other_boot[at + 11] = other_boot[at + 11] == '0' ? '1' : '0';
  berth::testing::WriteFile(cache, other_boot);
  EXPECT_EQ(OverlaySupportedCached(root, cache, &cached), supported);
  EXPECT_FALSE(cached);
  EXPECT_EQ(Slurp(cache), first);

  // Another file system under root (the device is part of the key).
  std::string other_dev = first;
  at = other_dev.find("\"dev\":");
  ASSERT_NE(at, std::string::npos);
  other_dev.insert(at + 6, "1");
  berth::testing::WriteFile(cache, other_dev);
  EXPECT_EQ(OverlaySupportedCached(root, cache, &cached), supported);
  EXPECT_FALSE(cached);

  // A damaged file is ignored and rewritten.
  berth::testing::WriteFile(cache, "{not json");
  EXPECT_EQ(OverlaySupportedCached(root, cache, &cached), supported);
  EXPECT_FALSE(cached);
  EXPECT_EQ(Slurp(cache), first);

  // No probe directories are left behind.
  for (const auto& e : std::filesystem::directory_iterator(root))
    EXPECT_EQ(e.path().filename().string().rfind("overlay-probe-", 0), std::string::npos)
        << e.path();
}

namespace {
int DirFlags(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int flags = -1;
  if (fd >= 0 && ::ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) flags = -1;
  if (fd >= 0) ::close(fd);
  return flags;
}
}  // namespace

// The snapshots directory carries FS_TOPDIR_FL where the file system has it (ext4), so that each
// snapshot's tree is placed in block groups of its own.
TEST(Snapshot, SnapshotsDirectorySpreadsItsSubdirectories) {
  TempDir dir;
  berth::fs::MkdirAll(dir / "probe");
  int fd = ::open((dir / "probe").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  int flags = 0;
  bool supported = ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 &&
                   (flags |= FS_TOPDIR_FL, ::ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0) &&
                   (::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && (flags & FS_TOPDIR_FL));
  ::close(fd);
  if (!supported) GTEST_SKIP() << "the file system of " << dir.path() << " has no FS_TOPDIR_FL";
  EXPECT_FALSE(DirFlags(dir.path()) & FS_TOPDIR_FL);
  for (bool overlay : {true, false}) {
    std::string root = dir / (overlay ? "overlay" : "native");
    auto s = overlay ? NewOverlay(root) : NewNative(root);
    EXPECT_TRUE(DirFlags(root + "/snapshots") & FS_TOPDIR_FL) << root;
    s->Prepare("a", "");  // the flag is a placement hint only: snapshots work as before
    berth::testing::WriteFile(s->ApplyDir("a") + "/f", "x");
    s->Commit("A", "a");
    EXPECT_FALSE(DirFlags(root) & FS_TOPDIR_FL) << root;
  }
}
