// berth_userns: the range rules (pure), and with root: pinned user namespaces, network namespaces
// owned by them, idmapped trees, the staged idmapped volume and overlay over idmapped layers.
#include "userns/userns.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "common/error.h"
#include "common/fs.h"
#include "mount/rro.h"
#include "snapshot/snapshotter.h"
#include "support/support.h"

namespace {

using berth::userns::IDMap;

std::string Why(const std::vector<IDMap>& m) {
  try {
    berth::userns::CheckRanges(m, "uids");
  } catch (const berth::Error& e) {
    EXPECT_EQ(e.code(), berth::Code::kInvalidArgument);
    return e.what();
  }
  return "";
}

TEST(UsernsRanges, ValidListsPass) {
  EXPECT_EQ(Why({{0, 100000, 65536}}), "");
  EXPECT_EQ(Why({{0, 100000, 1000}, {1000, 200000, 1000}}), "");
  EXPECT_EQ(Why({{0, 4294901759u, 65535}}), "");  // ends at 4294967294
}

TEST(UsernsRanges, EachBadRangeIsNamed) {
  EXPECT_EQ(Why({{0, 100000, 0}}),
            "uids[0]: empty range: container_id 0, host_id 100000, length 0");
  EXPECT_EQ(Why({{0, 4294901760u, 65536}}),
            "uids[0]: host range overflows past 4294967294: container_id 0, host_id 4294901760, "
            "length 65536");
  EXPECT_EQ(Why({{4294967290u, 1, 10}}),
            "uids[0]: container range overflows past 4294967294: container_id 4294967290, host_id "
            "1, length 10");
  EXPECT_EQ(Why({{0, 100000, 1000}, {999, 300000, 5}}),
            "uids[1]: container range overlaps uids[0] (container_id 0, host_id 100000, length "
            "1000): container_id 999, "
            "host_id 300000, length 5");
  EXPECT_EQ(Why({{0, 100000, 1000}, {5000, 100500, 5}}),
            "uids[1]: host range overlaps uids[0] (container_id 0, host_id 100000, length 1000): "
            "container_id 5000, "
            "host_id 100500, length 5");
}

TEST(UsernsRanges, ToHostAndMapText) {
  std::vector<IDMap> m = {{0, 100000, 10}, {1000, 5000, 2}};
  EXPECT_EQ(berth::userns::ToHost(m, 0), 100000);
  EXPECT_EQ(berth::userns::ToHost(m, 9), 100009);
  EXPECT_EQ(berth::userns::ToHost(m, 10), -1);
  EXPECT_EQ(berth::userns::ToHost(m, 1001), 5001);
  EXPECT_EQ(berth::userns::MapText(m), "0 100000 10\n1000 5000 2\n");
}

class UsernsHost : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!berth::testing::IsRoot())
      GTEST_SKIP() << "needs root (user namespaces with mappings, mounts)";
    auto s = berth::userns::ProbeIdmap("/tmp");
    if (!s.supported) GTEST_SKIP() << "idmapped mounts unavailable: " << s.reason;
    dir_ = std::make_unique<berth::testing::TempDir>("berth-userns");
  }
  std::unique_ptr<berth::testing::TempDir> dir_;
  const berth::userns::Mapping map_{{{0, 3200000000u, 65536}}, {{0, 3200000000u, 65536}}};
};

// Namespace children made by several threads at once each hold a copy of the descriptor table,
// with the others' hold pipes: none may keep another's open (they would wait on each other for
// ever), so every call returns.
TEST_F(UsernsHost, ConcurrentNamespaceChildrenNeverWaitOnEachOther) {
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        if ((i + t) % 2) {
          auto fd = berth::userns::NewUsernsFd(map_);
          EXPECT_GE(fd.get(), 0);
        } else {
          std::string p = *dir_ / ("u" + std::to_string(t) + "-" + std::to_string(i));
          berth::userns::CreatePinnedWithNetns(p, p + ".net", map_);
          berth::userns::RemovePinned(p);
          ::umount2((p + ".net").c_str(), MNT_DETACH);
          ::unlink((p + ".net").c_str());
        }
        ++done;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(done.load(), 240);
}

TEST_F(UsernsHost, PinnedUsernsAndANetnsItOwns) {
  std::string user = *dir_ / "user", net = *dir_ / "net";
  berth::userns::CreatePinned(user, map_);
  EXPECT_TRUE(berth::userns::IsPinned(user));
  berth::userns::CreateNetnsIn(user, net);
  EXPECT_TRUE(berth::userns::IsPinned(net));
  // The network namespace's owner is the pinned user namespace (NS_GET_USERNS compares inodes).
  struct stat a, b;
  ASSERT_EQ(::stat(user.c_str(), &a), 0);
  int nfd = ::open(net.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(nfd, 0);
  int owner = ::ioctl(nfd, 0xb701 /* NS_GET_USERNS */);
  ASSERT_GE(owner, 0);
  ASSERT_EQ(::fstat(owner, &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  ::close(owner);
  ::close(nfd);
  EXPECT_THROW(berth::userns::CreatePinned(user, map_), berth::Error);  // the file exists
  berth::userns::RemovePinned(net);
  berth::userns::RemovePinned(user);
  EXPECT_FALSE(berth::fs::Exists(user));
  berth::userns::RemovePinned(user);  // missing is fine

  // Both from one clone, as RunPodSandbox makes them.
  berth::userns::CreatePinnedWithNetns(user, net, map_);
  EXPECT_TRUE(berth::userns::IsPinned(user));
  EXPECT_TRUE(berth::userns::IsPinned(net));
  nfd = ::open(net.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(nfd, 0);
  owner = ::ioctl(nfd, 0xb701 /* NS_GET_USERNS */);
  ASSERT_GE(owner, 0);
  ASSERT_EQ(::stat(user.c_str(), &a), 0);
  ASSERT_EQ(::fstat(owner, &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  ::close(owner);
  ::close(nfd);
  EXPECT_THROW(berth::userns::CreatePinnedWithNetns(user, *dir_ / "net2", map_), berth::Error);
  EXPECT_FALSE(berth::fs::Exists(*dir_ / "net2"));  // nothing left when it fails
  berth::userns::RemovePinned(net);
  berth::userns::RemovePinned(user);
}

TEST_F(UsernsHost, OverlayOnIdmappedLayersAndAStagedIdmappedVolume) {
  for (const char* d : {"l1", "l2", "up", "work", "merged"}) berth::fs::MkdirAll(*dir_ / d, 0755);
  berth::testing::WriteFile(*dir_ / "l1/a", "a");
  berth::testing::WriteFile(*dir_ / "l2/b", "b");
  auto ns = berth::userns::NewUsernsFd(map_);
  berth::snapshot::Mount m{"overlay",
                           "overlay",
                           {"lowerdir=" + (*dir_ / "l2") + ":" + (*dir_ / "l1"),
                            "upperdir=" + (*dir_ / "up"), "workdir=" + (*dir_ / "work")}};
  berth::snapshot::MountAllIdmapped({m}, *dir_ / "merged", ns.get(), 3200000000u, 3200000000u);
  struct stat st;
  ASSERT_EQ(::stat((*dir_ / "merged/a").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 3200000000u);  // root's on disk, the mapped root's through the layer
  ASSERT_EQ(::stat((*dir_ / "up").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 3200000000u);
  ASSERT_EQ(::stat((*dir_ / "l1/a").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);  // nothing chown'ed
  berth::snapshot::UnmountAll(*dir_ / "merged");

  std::string state = *dir_ / "state";
  berth::fs::MkdirAll(state, 0711);
  std::string staged =
      berth::mount::StageIdmapped(state, "c1", *dir_ / "l1", ns.get(), /*read_only=*/true);
  ASSERT_EQ(::stat((staged + "/a").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 3200000000u);
  EXPECT_NE(::mkdir((staged + "/x").c_str(), 0755), 0);
  EXPECT_EQ(errno, EROFS);
  berth::mount::CleanupStaged(state, "c1");
  EXPECT_FALSE(berth::fs::Exists(staged));
}

}  // namespace
