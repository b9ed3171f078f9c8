// The layer pipeline against a real registry: every codec, many and shared layers, concurrent
// pulls, and failures (corrupt blob, DiffID mismatch, a connection cut mid-layer, a stalled
// registry) that leave no image, no staging snapshot and no blob behind.
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "common/error.h"
#include "common/fs.h"
#include "content/store.h"
#include "image/service.h"
#include "image_support.h"
#include "snapshot/snapshotter.h"
#include "support/support.h"

namespace {

using berth::Code;
using berth::Error;
using berth::image::ImageService;
using namespace berth::testing;

class PipelineTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    if (!RegistrySkipReason().empty()) return;
    registry_ = new LocalRegistry();
  }
  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
  }
  void SetUp() override {
    if (std::string why = RegistrySkipReason(); !why.empty()) GTEST_SKIP() << why;
    tmp_ = std::make_unique<TempDir>("berth-pipeline-test");
  }
  void TearDown() override {
    service_.reset();
    if (tmp_) UnmountAllBelow(tmp_->path());
  }
  ImageService& Service(ImageService::Options o = {}) {
    o.root = *tmp_ / "root";
    o.snapshotter = GetParam();
    service_ = std::make_unique<ImageService>(o);
    return *service_;
  }
  TestImage Push(const std::string& id, const std::string& repo_tag, TestImageOptions o = {}) {
    o.id = id;
    TestImage img = BuildTestImage(*tmp_ / ("oci-" + id), o);
    PushImage(img, registry_->host(), repo_tag);
    return img;
  }
  std::string Ref(const std::string& repo_tag) const { return registry_->host() + "/" + repo_tag; }

  std::string ReadFromImage(ImageService& s, const std::string& chain_id, const std::string& file) {
    std::string key = "view-" + std::to_string(views_++);
    auto mounts = s.snapshotter().View(key, chain_id);
    std::string target = *tmp_ / key;
    berth::fs::MkdirAll(target);
    berth::snapshot::MountAll(mounts, target);
    std::string path = target + "/" + file, data;
    if (berth::fs::Exists(path)) data = berth::fs::ReadFile(path);
    berth::snapshot::UnmountAll(target);
    s.snapshotter().Remove(key);
    return data;
  }
  bool CanMount() const { return ::geteuid() == 0; }
  static TestImageOptions Filler(size_t bytes) {
    TestImageOptions o;
    o.filler_bytes = bytes;
    return o;
  }
  static TestImageOptions WrongDiffId() {
    TestImageOptions o;
    o.wrong_diff_id = true;
    return o;
  }
  static TokenProxy::Options Plain() {
    TokenProxy::Options o;
    o.require_token = false;  // a counting (and cutting) front
    return o;
  }

  // Nothing of a failed pull is left: no image, no snapshot (staging or committed), no blob.
  void ExpectNothingLeft(ImageService& s) {
    EXPECT_TRUE(s.List().empty());
    for (const auto& i : s.snapshotter().List())
      ADD_FAILURE() << "snapshot left: " << i.name << " (" << berth::snapshot::KindName(i.kind)
                    << ")";
    for (const auto& d : s.content().List()) ADD_FAILURE() << "blob left: " << d;
  }

  static LocalRegistry* registry_;
  std::unique_ptr<TempDir> tmp_;
  std::unique_ptr<ImageService> service_;
  int views_ = 0;
};
LocalRegistry* PipelineTest::registry_ = nullptr;

TEST_P(PipelineTest, GzipZstdAndUncompressedLayers) {
  TestImageOptions o;
  o.compression = {"gzip", "zstd", "none"};
  o.extra_layers = 5;  // 8 layers: each codec at least twice
  o.filler_bytes = 1 << 20;
  TestImage img = Push("codecs-" + GetParam(), "test/codecs:v1", o);
  ImageService& s = Service();
  auto image = s.Pull(Ref("test/codecs:v1"), {});
  EXPECT_EQ(image.id, img.config_digest);
  ASSERT_EQ(img.layer_digests.size(), 8u);
  std::string parent = image.chain_id;
  int depth = 0;
  while (!parent.empty()) {
    auto info = s.snapshotter().Stat(parent);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(info->kind, berth::snapshot::Kind::kCommitted);
    parent = info->parent;
    ++depth;
  }
  EXPECT_EQ(depth, 8);  // committed in order, one chain
  for (const auto& i : s.snapshotter().List())
    EXPECT_EQ(i.kind, berth::snapshot::Kind::kCommitted) << i.name;
  if (!CanMount()) return;
  EXPECT_EQ(ReadFromImage(s, image.chain_id, "data/hello.txt"), "hello from layer 2\n");
  EXPECT_EQ(ReadFromImage(s, image.chain_id, "data/remove-me.txt"), "");
  EXPECT_EQ(ReadFromImage(s, image.chain_id, "layers/4.bin").size(), (1u << 20) / 4);
}

TEST_P(PipelineTest, ImagesSharingLayersPulledAtOnceFetchEachBlobOnce) {
  TestImageOptions o;
  o.extra_layers = 2;
  TestImage a = Push("share-a-" + GetParam(), "test/share-a:v1", o);
  TestImage b = Push("share-b-" + GetParam(), "test/share-b:v1", o);
  ASSERT_EQ(a.layer_digests[0], b.layer_digests[0]);  // busybox layer shared
  ASSERT_NE(a.layer_digests[1], b.layer_digests[1]);
  TokenProxy proxy(registry_->host(), Plain());
  ImageService& s = Service();
  std::vector<std::future<berth::image::Image>> pulls;
  for (const std::string repo :
       {"test/share-a:v1", "test/share-b:v1", "test/share-a:v1", "test/share-b:v1"})
    pulls.push_back(std::async(std::launch::async,
                               [&, repo] { return s.Pull(proxy.host() + "/" + repo, {}); }));
  std::vector<berth::image::Image> got;
  for (auto& f : pulls) got.push_back(f.get());
  EXPECT_EQ(got[0].id, a.config_digest);
  EXPECT_EQ(got[1].id, b.config_digest);
  EXPECT_EQ(got[2].id, a.config_digest);
  EXPECT_EQ(proxy.BlobGets(a.layer_digests[0]), 1);
  for (const auto& l : a.layer_digests) EXPECT_EQ(proxy.BlobGets(l), 1) << l;
  for (const auto& l : b.layer_digests) EXPECT_EQ(proxy.BlobGets(l), 1) << l;
  for (const auto& i : s.snapshotter().List())
    EXPECT_EQ(i.kind, berth::snapshot::Kind::kCommitted) << i.name;
  EXPECT_EQ(s.snapshotter().Stat(a.diff_ids[0])->kind, berth::snapshot::Kind::kCommitted);
}

TEST_P(PipelineTest, CorruptBlobFailsNamingTheLayerAndLeavesNothing) {
  TestImage img = Push("corrupt-" + GetParam(), "test/corrupt:v1", Filler(2 << 20));
  TokenProxy proxy(registry_->host(), Plain());
  proxy.CorruptBlob(img.layer_digests[1]);
  ImageService& s = Service();
  try {
    s.Pull(proxy.host() + "/test/corrupt:v1", {});
    FAIL() << "a corrupt blob was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(img.layer_digests[1]), std::string::npos) << e.what();
  }
  ExpectNothingLeft(s);
}

TEST_P(PipelineTest, DiffIdMismatchFailsAndLeavesNothing) {
  TestImage img = Push("diffid-" + GetParam(), "test/diffid:v1", WrongDiffId());
  ImageService& s = Service();
  try {
    s.Pull(Ref("test/diffid:v1"), {});
    FAIL() << "a wrong DiffID was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    EXPECT_NE(
        std::string(e.what()).find("layer " + img.layer_digests.back() + ": diff id mismatch"),
        std::string::npos)
        << e.what();
  }
  ExpectNothingLeft(s);
}

TEST_P(PipelineTest, ConnectionCutOnceMidLayerResumes) {
  TestImage img = Push("cut-once-" + GetParam(), "test/cut-once:v1", Filler(4 << 20));
  TokenProxy::Options po = Plain();
  po.cut_blobs_after = 1 << 20;
  po.cut_once = true;
  TokenProxy proxy(registry_->host(), po);
  ImageService& s = Service();
  auto image = s.Pull(proxy.host() + "/test/cut-once:v1", {});
  EXPECT_EQ(image.id, img.config_digest);
  EXPECT_EQ(proxy.BlobGets(img.layer_digests[1]), 2);  // cut, then resumed with Range
  if (CanMount()) {
    EXPECT_EQ(ReadFromImage(s, image.chain_id, "usr/share/berth/filler.bin").size(),
              size_t{4} << 20);
  }
}

TEST_P(PipelineTest, ConnectionCutEveryTimeFailsAndLeavesNothing) {
  TestImage img = Push("cut-" + GetParam(), "test/cut:v1", Filler(4 << 20));
  TokenProxy::Options po = Plain();
  po.cut_blobs_after = 1 << 20;
  TokenProxy proxy(registry_->host(), po);
  ImageService& s = Service();
  try {
    s.Pull(proxy.host() + "/test/cut:v1", {});
    FAIL() << "a cut blob was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnavailable) << e.what();
    EXPECT_NE(std::string(e.what()).find(img.layer_digests[1]), std::string::npos) << e.what();
  }
  ExpectNothingLeft(s);
}

TEST_P(PipelineTest, StalledRegistryIsCancelledByProgressTimeout) {
  TestImage img = Push("stall-" + GetParam(), "test/stall:v1", Filler(4 << 20));
  TokenProxy::Options po = Plain();
  po.cut_blobs_after = 1 << 20;
  po.stall_after_cut = true;
  TokenProxy proxy(registry_->host(), po);
  ImageService::Options o;
  o.progress_timeout = std::chrono::seconds(1);
  ImageService& s = Service(o);
  auto t0 = std::chrono::steady_clock::now();
  try {
    s.Pull(proxy.host() + "/test/stall:v1", {});
    FAIL() << "a stalled pull succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(img.layer_digests[1]), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(60));
  ExpectNothingLeft(s);
}

TEST_P(PipelineTest, ProgressIsVisibleWhilePullingAndAStallIsCancelled) {
  TestImage img = Push("progress-" + GetParam(), "test/progress:v1", Filler(4 << 20));
  TokenProxy::Options po = Plain();
  po.cut_blobs_after = 1 << 20;
  po.stall_after_cut = true;
  TokenProxy proxy(registry_->host(), po);
  ImageService::Options o;
  o.progress_timeout = std::chrono::seconds(3);
  ImageService& s = Service(o);
  const std::string ref = proxy.host() + "/test/progress:v1";
  auto pull = std::async(std::launch::async, [&] { return s.Pull(ref, {}); });
  std::optional<berth::image::PullProgress> seen;
  for (int i = 0; i < 200; ++i) {
    auto p = s.Progress(ref);
    if (p && p->layers.size() == 3 && p->layers[1].received >= (1 << 20)) {
      seen = p;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_TRUE(seen.has_value()) << "no progress seen";
  EXPECT_EQ(seen->ref, ref);
  EXPECT_EQ(seen->layers[1].digest, img.layer_digests[1]);
  EXPECT_EQ(seen->layers[1].state, "pulling");
  EXPECT_GT(seen->layers[1].size, seen->layers[1].received);
  try {
    pull.get();
    FAIL() << "a stalled pull succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kDeadlineExceeded) << e.what();
    EXPECT_NE(std::string(e.what()).find("no progress for 3s"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(s.Progress(ref).has_value());
  ExpectNothingLeft(s);
}

INSTANTIATE_TEST_SUITE_P(Snapshotters, PipelineTest, ::testing::Values("overlayfs", "native"),
                         [](const auto& info) { return info.param; });

}  // namespace
