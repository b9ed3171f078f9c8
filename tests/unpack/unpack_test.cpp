#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/fs.h"
#include "content/store.h"
#include "image/unpack.h"
#include "snapshot/snapshotter.h"
#include "support/support.h"
#include "tar_builder.h"

using namespace berth::testing;
using berth::Code;
using berth::Error;
using berth::content::Sha256Digest;
using berth::image::ApplyLayer;

namespace {

std::string Slurp(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string WriteBlob(const TempDir& dir, const std::string& name, const std::string& data) {
  std::string p = dir / name;
  WriteFile(p, data);
  return p;
}

bool Exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

std::vector<std::string> ListDir(const std::string& p) {
  std::vector<std::string> out;
  auto r = berth::fs::IsDir(p);
  if (!r) return out;
  DIR* d = ::opendir(p.c_str());
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  ::closedir(d);
  return out;
}

TEST(Unpack, ChainID) {
  std::string a = Sha256Digest("a"), b = Sha256Digest("b"), c = Sha256Digest("c");
  EXPECT_EQ(berth::image::ChainID({a}), a);
  EXPECT_EQ(berth::image::ChainID({a, b}), Sha256Digest(a + " " + b));
  EXPECT_EQ(berth::image::ChainID({a, b, c}), Sha256Digest(Sha256Digest(a + " " + b) + " " + c));
}

TEST(Unpack, DiffIdForEveryCompression) {
  std::vector<TarEntry> entries = {Dir("etc"), File("etc/hostname", "berth\n"),
                                   File("bin/tool", std::string(100000, 'x'), 0755)};
  std::string plain = BuildTar(entries);
  std::string want = Sha256Digest(plain);
  TempDir dir;
  int i = 0;
  for (auto c : {TarCompression::kNone, TarCompression::kGzip, TarCompression::kZstd}) {
    std::string blob = WriteBlob(dir, "blob" + std::to_string(i), BuildTar(entries, c));
    std::string dest = dir / ("out" + std::to_string(i++));
    berth::fs::MkdirAll(dest);
    auto r = ApplyLayer(blob, dest, false);
    EXPECT_EQ(r.diff_id, want);
    EXPECT_EQ(r.size, static_cast<int64_t>(plain.size()));
    EXPECT_EQ(Slurp(dest + "/etc/hostname"), "berth\n");
    EXPECT_EQ(Slurp(dest + "/bin/tool"), std::string(100000, 'x'));
    struct stat st;
    ASSERT_EQ(::stat((dest + "/bin").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0755u);  // implicit parent
  }
}

TEST(Unpack, UnsupportedOrBrokenInput) {
  TempDir dir;
  berth::fs::MkdirAll(dir / "out");
  for (std::string data :
       {std::string("BZh91AY&SY"), std::string("\x1f\x8b garbage", 10),
        std::string("not a tar at all, just text that goes on and on") + std::string(600, 'z')}) {
    std::string blob = WriteBlob(dir, "blob", data);
    try {
      ApplyLayer(blob, dir / "out", false);
      FAIL() << "accepted " << data.substr(0, 10);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kInvalidArgument) << e.what();
    }
  }
  std::string tar = BuildTar({File("a", std::string(5000, 'a'))});
  std::string blob = WriteBlob(dir, "trunc", tar.substr(0, 1000));
  EXPECT_THROW(ApplyLayer(blob, dir / "out", false), Error);
}

TEST(Unpack, PreservesMetadata) {
  if (!IsRoot()) GTEST_SKIP() << "needs root (chown, mknod, security xattrs)";
  TempDir dir;
  TarEntry f = File("usr/bin/ping", "ping", 04755);
  f.uid = 1001;
  f.gid = 1002;
  f.mtime = 1234567890;
  // VFS_CAP_REVISION_2 with CAP_NET_RAW permitted+effective.
  std::string cap(
      "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20);
  f.xattrs = {
      {"security.capability", cap}, {"user.note", "hello"}, {"trusted.overlay.redirect", "/etc"}};
  TarEntry dev;
  dev.name = "dev/null";
  dev.type = AE_IFCHR;
  dev.perm = 0666;
  dev.rdev_major = 1;
  dev.rdev_minor = 3;
  TarEntry fifo;
  fifo.name = "run/fifo";
  fifo.type = AE_IFIFO;
  fifo.perm = 0620;
  TarEntry d = Dir("var/empty", 0711);
  d.mtime = 1000000000;
  d.uid = 7;
  std::string blob =
      WriteBlob(dir, "blob",
                BuildTar({f, Hardlink("usr/bin/ping6", "usr/bin/ping"), Symlink("bin", "usr/bin"),
                          dev, fifo, d, File("var/empty/inner", "x")}));
  std::string out = dir / "out";
  berth::fs::MkdirAll(out);
  ApplyLayer(blob, out, false);
  struct stat st;
  ASSERT_EQ(::lstat((out + "/usr/bin/ping").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1001u);
  EXPECT_EQ(st.st_gid, 1002u);
  EXPECT_EQ(st.st_mode & 07777, 04755u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1234567890);
  EXPECT_EQ(st.st_nlink, 2u);
  char buf[64];
  ssize_t n = ::getxattr((out + "/usr/bin/ping").c_str(), "security.capability", buf, sizeof buf);
  ASSERT_EQ(n, 20);
  EXPECT_EQ(std::string(buf, 20), cap);
  n = ::getxattr((out + "/usr/bin/ping").c_str(), "user.note", buf, sizeof buf);
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), "hello");
  EXPECT_LT(
      ::getxattr((out + "/usr/bin/ping").c_str(), "trusted.overlay.redirect", buf, sizeof buf), 0);
  struct stat h;
  ASSERT_EQ(::lstat((out + "/usr/bin/ping6").c_str(), &h), 0);
  EXPECT_EQ(h.st_ino, st.st_ino);
  n = ::readlink((out + "/bin").c_str(), buf, sizeof buf);
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), "usr/bin");
  ASSERT_EQ(::lstat((out + "/dev/null").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(1, 3));
  ASSERT_EQ(::lstat((out + "/run/fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0620u);
  ASSERT_EQ(::lstat((out + "/var/empty").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0711u);
  EXPECT_EQ(st.st_uid, 7u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1000000000);  // set after its child was written
}

TEST(Unpack, OverlayWhiteouts) {
  if (!IsRoot()) GTEST_SKIP() << "needs root (whiteout device nodes, trusted xattrs)";
  TempDir dir;
  std::string blob =
      WriteBlob(dir, "blob",
                BuildTar({File(".wh.gone", ""), Dir("opaque"), File("opaque/.wh..wh..opq", ""),
                          File("opaque/new", "n"), File("sub/.wh.old", "")}));
  std::string out = dir / "out";
  berth::fs::MkdirAll(out);
  ApplyLayer(blob, out, true);
  struct stat st;
  ASSERT_EQ(::lstat((out + "/gone").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  ASSERT_EQ(::lstat((out + "/sub/old").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  char v[4] = {};
  EXPECT_EQ(::getxattr((out + "/opaque").c_str(), "trusted.overlay.opaque", v, sizeof v), 1);
  EXPECT_EQ(v[0], 'y');
  EXPECT_EQ(Slurp(out + "/opaque/new"), "n");
  EXPECT_FALSE(Exists(out + "/.wh.gone"));
  EXPECT_FALSE(Exists(out + "/opaque/.wh..wh..opq"));
}

TEST(Unpack, NativeWhiteoutsDelete) {
  TempDir dir;
  std::string out = dir / "out";
  WriteFile(out + "/gone", "old");
  WriteFile(out + "/gonedir/deep/file", "old");
  WriteFile(out + "/opaque/old1", "old");
  WriteFile(out + "/opaque/olddir/x", "old");
  WriteFile(out + "/keep", "keep");
  std::string blob =
      WriteBlob(dir, "blob",
                BuildTar({File(".wh.gone", ""), File(".wh.gonedir", ""), Dir("opaque"),
                          File("opaque/new", "n"), File("opaque/implicit/deep", "d"),
                          File("opaque/.wh..wh..opq", ""), File(".wh.never-existed", "")}));
  ApplyLayer(blob, out, false);
  EXPECT_FALSE(Exists(out + "/gone"));
  EXPECT_FALSE(Exists(out + "/gonedir"));
  EXPECT_FALSE(Exists(out + "/opaque/old1"));
  EXPECT_FALSE(Exists(out + "/opaque/olddir"));
  EXPECT_EQ(Slurp(out + "/opaque/new"), "n");
  EXPECT_EQ(Slurp(out + "/opaque/implicit/deep"), "d");
  EXPECT_EQ(Slurp(out + "/keep"), "keep");
  EXPECT_FALSE(Exists(out + "/.wh.never-existed"));
}

TEST(Unpack, ReplacesExistingEntriesWithoutFollowing) {
  TempDir dir;
  std::string out = dir / "out";
  std::string outside = dir / "outside";
  WriteFile(outside + "/target", "precious");
  berth::fs::MkdirAll(out);
  // A symlink to a file outside, then a regular file of the same name: the link is replaced.
  std::string blob =
      WriteBlob(dir, "blob", BuildTar({Symlink("s", outside + "/target"), File("s", "mine")}));
  ApplyLayer(blob, out, false);
  EXPECT_EQ(Slurp(outside + "/target"), "precious");
  EXPECT_EQ(Slurp(out + "/s"), "mine");
  // A hard link to a symlink links the symlink itself.
  blob = WriteBlob(dir, "blob2", BuildTar({Symlink("l", outside + "/target"), Hardlink("h", "l")}));
  ApplyLayer(blob, out, false);
  struct stat st;
  ASSERT_EQ(::lstat((out + "/h").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(Slurp(outside + "/target"), "precious");
}

// Into an empty destination (a new snapshot) only the layer's own earlier entries can be in the
// way of an entry: those are replaced as in a full one, also after a whiteout of the same name.
TEST(Unpack, LaterEntriesReplaceEarlierOnesInAnEmptyDestination) {
  for (bool overlay : {false, true}) {
    if (overlay && !IsRoot()) continue;  // whiteout device nodes need root
    TempDir dir;
    std::string out = dir / "out";
    berth::fs::MkdirAll(out);
    std::string blob = WriteBlob(
        dir, "blob",
        BuildTar({File("x", "1"), File("x", "2"), Dir("d"), File("d/in", "i"), File("d", "file"),
                  Hardlink("h", "x"), File("h", "3"), File(".wh.w", ""), File("w", "new"),
                  File("deep/a/b", "b"), Symlink("deep/a", "/elsewhere"), File("sub/.wh.old", ""),
                  Dir("sub"), File("sub/in", "s"), File("sub2/.wh.x", ""), File("sub2", "f")}));
    ApplyLayer(blob, out, overlay);
    EXPECT_EQ(Slurp(out + "/x"), "2") << overlay;
    EXPECT_EQ(Slurp(out + "/d"), "file") << overlay;
    EXPECT_EQ(Slurp(out + "/h"), "3") << overlay;
    EXPECT_EQ(Slurp(out + "/w"), "new") << overlay;
    struct stat st;
    ASSERT_EQ(::lstat((out + "/deep/a").c_str(), &st), 0);
    EXPECT_TRUE(S_ISLNK(st.st_mode)) << overlay;
    ASSERT_EQ(::lstat((out + "/x").c_str(), &st), 0);
    EXPECT_EQ(st.st_nlink, 1u) << overlay;
    EXPECT_EQ(Slurp(out + "/sub/in"), "s") << overlay;
    EXPECT_EQ(Slurp(out + "/sub2"), "f") << overlay;
  }
}

TEST(Unpack, AbsoluteNamesAreRelativeToTheLayerRoot) {
  TempDir dir;
  std::string out = dir / "out";
  berth::fs::MkdirAll(out);
  std::string name = "/etc/berth-unpack-test-" + std::to_string(::getpid());
  std::string blob =
      WriteBlob(dir, "blob", BuildTar({File(name, "inside"), File("/./x/../y", "y")}));
  ApplyLayer(blob, out, false);
  EXPECT_FALSE(Exists(name));
  EXPECT_EQ(Slurp(out + name), "inside");
  EXPECT_EQ(Slurp(out + "/y"), "y");
}

struct Hostile {
  std::string label;
  std::vector<TarEntry> entries;
  std::string entry;  // named in the error
};

TEST(Unpack, HostileLayersAreRejected) {
  TempDir dir;
  std::string outside = dir / "outside";
  berth::fs::MkdirAll(outside);
  std::vector<Hostile> cases = {
      {"dotdot", {File("../outside/x", "evil")}, "../outside/x"},
      {"nested dotdot", {Dir("a"), File("a/../../outside/x", "evil")}, "a/../../outside/x"},
      {"absolute dotdot", {File("/../outside/x", "evil")}, "/../outside/x"},
      {"symlink parent", {Symlink("a", outside), File("a/x", "evil")}, "a/x"},
      {"symlink parent dir", {Symlink("a", outside), Dir("a/sub")}, "a/sub/"},
      {"symlink grandparent", {Symlink("a", "/"), File("a/tmp/x", "evil")}, "a/tmp/x"},
      {"hardlink escape", {Hardlink("h", "../../etc/passwd")}, "h"},
      {"hardlink through symlink", {Symlink("a", "/etc"), Hardlink("h", "a/passwd")}, "h"},
      {"whiteout through symlink", {Symlink("a", outside), File("a/.wh.keep", "")}, "a/.wh.keep"},
      {"opaque through symlink",
       {Symlink("a", outside), File("a/.wh..wh..opq", "")},
       "a/.wh..wh..opq"},
      {"whiteout dotdot", {File("../outside/.wh.keep", "")}, "../outside/.wh.keep"},
  };
  WriteFile(outside + "/keep", "keep");
  int i = 0;
  for (auto& c : cases) {
    std::string out = dir / ("out" + std::to_string(i));
    berth::fs::MkdirAll(out);
    std::string blob = WriteBlob(dir, "blob" + std::to_string(i++), BuildTar(c.entries));
    try {
      ApplyLayer(blob, out, false);
      ADD_FAILURE() << c.label << ": accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kInvalidArgument) << c.label << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find("\"" + c.entry + "\""), std::string::npos)
          << c.label << ": " << e.what();
    }
    EXPECT_EQ(ListDir(outside), std::vector<std::string>{"keep"}) << c.label;
    EXPECT_EQ(Slurp(outside + "/keep"), "keep") << c.label;
    EXPECT_FALSE(Exists(dir / "x")) << c.label;
  }
  EXPECT_EQ(Slurp("/etc/passwd").empty(), false);
}

TEST(Unpack, UnpackIntoSnapshots) {
  TempDir dir;
  berth::content::Store store(dir / "content");
  bool overlay = IsRoot() && berth::snapshot::OverlaySupported(dir / "snap");
  auto sn = overlay ? berth::snapshot::NewOverlay(dir / "snap")
                    : berth::snapshot::NewNative(dir / "snap");
  std::string l1 = BuildTar({File("a", "1"), File("shadow", "old")});
  std::string l2 = BuildTar({File("b", "2"), File("shadow", "new")}, TarCompression::kGzip);
  std::string d1 = store.Write(l1), d2 = store.Write(l2);
  std::string diff1 = Sha256Digest(l1),
              diff2 = Sha256Digest(BuildTar({File("b", "2"), File("shadow", "new")}));
  std::string top = berth::image::Unpack(store, *sn, {d1, d2}, {diff1, diff2});
  EXPECT_EQ(top, berth::image::ChainID({diff1, diff2}));
  ASSERT_TRUE(sn->Stat(diff1));
  ASSERT_TRUE(sn->Stat(top));
  EXPECT_EQ(sn->Stat(top)->parent, diff1);
  EXPECT_EQ(sn->Stat(top)->kind, berth::snapshot::Kind::kCommitted);
  EXPECT_EQ(sn->List().size(), 2u);
  // Again: everything exists, nothing is extracted.
  EXPECT_EQ(berth::image::Unpack(store, *sn, {d1, d2}, {diff1, diff2}), top);
  EXPECT_EQ(sn->List().size(), 2u);

  if (IsRoot()) {
    sn->View("check", top);
    std::string mnt = dir / "mnt";
    berth::fs::MkdirAll(mnt);
    berth::snapshot::MountAll(sn->Mounts("check"), mnt);
    EXPECT_EQ(Slurp(mnt + "/a"), "1");
    EXPECT_EQ(Slurp(mnt + "/b"), "2");
    EXPECT_EQ(Slurp(mnt + "/shadow"), "new");
    berth::snapshot::UnmountAll(mnt);
    sn->Remove("check");
  }

  // A wrong diff id fails and leaves no active snapshot behind.
  std::string l3 = BuildTar({File("c", "3")});
  std::string d3 = store.Write(l3);
  try {
    berth::image::Unpack(store, *sn, {d1, d3}, {diff1, Sha256Digest("not it")});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("diff id mismatch"), std::string::npos) << e.what();
  }
  EXPECT_EQ(sn->List().size(), 2u);
  // A hostile layer likewise.
  std::string bad = BuildTar({File("../x", "evil")});
  std::string db = store.Write(bad);
  EXPECT_THROW(berth::image::Unpack(store, *sn, {db}, {Sha256Digest(bad)}), Error);
  EXPECT_EQ(sn->List().size(), 2u);
  // Mismatched lists.
  EXPECT_THROW(berth::image::Unpack(store, *sn, {d1}, {diff1, diff2}), Error);
}

}  // namespace
