// Pulls from a real registry (Debian's docker-registry on 127.0.0.1) through the ImageService.
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <future>
#include <thread>

#include "common/error.h"
#include "common/fs.h"
#include "content/store.h"
#include "image/registry.h"
#include "image/service.h"
#include "image_support.h"
#include "snapshot/snapshotter.h"
#include "support/support.h"

namespace {

using berth::Code;
using berth::Error;
using berth::image::AuthConfig;
using berth::image::ImageService;
using namespace berth::testing;

class PullTest : public ::testing::Test {
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
    tmp_ = std::make_unique<TempDir>("berth-image-test");
  }
  void TearDown() override {
    service_.reset();
    if (tmp_) UnmountAllBelow(tmp_->path());
  }

  ImageService::Options Opts(const std::string& root = "root") {
    ImageService::Options o;
    o.root = *tmp_ / root;
    return o;
  }
  ImageService& Service() { return Service(Opts()); }
  ImageService& Service(ImageService::Options o) {
    if (o.root.empty()) o.root = *tmp_ / "root";
    service_ = std::make_unique<ImageService>(o);
    return *service_;
  }
  // Builds and pushes an image; returns it. `repo_tag` like "test/x:v1".
  TestImage Push(const std::string& id, const std::string& repo_tag, TestImageOptions o = {}) {
    o.id = id;
    TestImage img = BuildTestImage(*tmp_ / ("oci-" + id), o);
    PushImage(img, registry_->host(), repo_tag);
    return img;
  }
  std::string Ref(const std::string& repo_tag) const { return registry_->host() + "/" + repo_tag; }

  // Mounts a read-only view of the image's top snapshot and returns the file's content ("" when absent).
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

  static LocalRegistry* registry_;
  std::unique_ptr<TempDir> tmp_;
  std::unique_ptr<ImageService> service_;
  int views_ = 0;
};
LocalRegistry* PullTest::registry_ = nullptr;

TEST_F(PullTest, ByTagRecordsImageAndUnpacksLayers) {
  TestImage img = Push("bytag", "test/bytag:v1");
  ImageService& s = Service();
  auto image = s.Pull(Ref("test/bytag:v1"), {});
  EXPECT_EQ(image.id, img.config_digest);
  EXPECT_EQ(image.repo_tags, std::vector<std::string>{Ref("test/bytag:v1")});
  EXPECT_EQ(image.repo_digests, std::vector<std::string>{Ref("test/bytag@" + img.manifest_digest)});
  EXPECT_EQ(image.size, img.size);
  EXPECT_EQ(image.user, "1000");
  EXPECT_EQ(image.manifest_digest, img.manifest_digest);
  EXPECT_NE(image.config_json.find("BERTH_TEST=1"), std::string::npos);
  EXPECT_FALSE(image.pinned);
  ASSERT_FALSE(image.chain_id.empty());
  auto info = s.snapshotter().Stat(image.chain_id);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->kind, berth::snapshot::Kind::kCommitted);
  for (const auto& l : img.layer_digests) EXPECT_TRUE(s.content().Has(l)) << l;

  // Status by every name form.
  const std::string hex = img.config_digest.substr(7);
  for (const std::string& q : {img.config_digest, hex, hex.substr(0, 12), Ref("test/bytag:v1"),
                               Ref("test/bytag@" + img.manifest_digest)}) {
    auto st = s.Status(q);
    ASSERT_TRUE(st.has_value()) << q;
    EXPECT_EQ(st->id, img.config_digest) << q;
  }
  EXPECT_FALSE(s.Status(Ref("test/bytag:other")).has_value());
  EXPECT_FALSE(s.Status("sha256:" + std::string(64, '0')).has_value());
  EXPECT_FALSE(s.Status("Not A Ref").has_value());
  EXPECT_EQ(s.List().size(), 1u);
  EXPECT_EQ(s.List(Ref("test/bytag:v1")).size(), 1u);
  EXPECT_TRUE(s.List(Ref("test/nothing:v1")).empty());
  auto fsu = s.FsInfo();
  EXPECT_GT(fsu.used_bytes, img.size);
  EXPECT_GT(fsu.inodes_used, 10);

  // Re-pull is a no-op download-wise and returns the same image.
  EXPECT_EQ(s.Pull(Ref("test/bytag:v1"), {}).id, img.config_digest);

  if (!IsRoot()) GTEST_SKIP() << "mounting a snapshot view needs root";
  EXPECT_EQ(ReadFromImage(s, image.chain_id, "data/hello.txt"), "hello from layer 2\n");
  EXPECT_EQ(ReadFromImage(s, image.chain_id, "data/added.txt"), "added by layer 3\n");
  EXPECT_EQ(ReadFromImage(s, image.chain_id, "data/remove-me.txt"), "");  // whiteout applied
  EXPECT_EQ(ReadFromImage(s, image.chain_id, "etc/berth-id"), "bytag\n");
}

TEST_F(PullTest, ByDigestAndIndex) {
  TestImageOptions o;
  o.as_index = true;
  TestImage img = Push("index", "test/index:v1", o);
  ImageService& s = Service();
  auto image = s.Pull(Ref("test/index@" + img.top_digest), {});
  EXPECT_EQ(image.id, img.config_digest);  // the host's platform, not the s390x decoy
  EXPECT_EQ(image.manifest_digest, img.manifest_digest);
  EXPECT_TRUE(image.repo_tags.empty());
  EXPECT_EQ(image.repo_digests, std::vector<std::string>{Ref("test/index@" + img.top_digest)});
  // Then by tag: one image with both names.
  auto tagged = s.Pull(Ref("test/index:v1"), {});
  EXPECT_EQ(tagged.id, img.config_digest);
  EXPECT_EQ(tagged.repo_tags, std::vector<std::string>{Ref("test/index:v1")});
  EXPECT_EQ(s.List().size(), 1u);

  // A digest that is not there.
  try {
    s.Pull(Ref("test/index@sha256:" + std::string(64, 'e')), {});
    ADD_FAILURE() << "expected NotFound";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound) << e.what();
  }
  EXPECT_THROW(s.Pull("Invalid Ref", {}), Error);
}

TEST_F(PullTest, TokenAuthAnonymousAndWithCredentials) {
  TestImage img = Push("token", "test/token:v1");
  {
    TokenProxy proxy(registry_->host());
    ImageService& s = Service();
    auto image = s.Pull(proxy.host() + "/test/token:v1", {});
    EXPECT_EQ(image.id, img.config_digest);
    EXPECT_GE(proxy.TokensIssued(), 1);
    EXPECT_GE(proxy.Unauthorized(), 1);
  }
  TokenProxy::Options po;
  po.username = "alice";
  po.password = "s3cret";
  po.refresh_token = "refresh-alice";
  TokenProxy proxy(registry_->host(), po);
  ImageService& s = Service(Opts("root2"));
  try {
    s.Pull(proxy.host() + "/test/token:v1", {});
    ADD_FAILURE() << "anonymous pull should be refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kPermissionDenied) << e.what();
  }
  AuthConfig wrong;
  wrong.username = "alice";
  wrong.password = "nope";
  EXPECT_THROW(s.Pull(proxy.host() + "/test/token:v1", wrong), Error);
  AuthConfig basic;
  basic.auth = berth::image::Base64Encode("alice:s3cret");
  EXPECT_EQ(s.Pull(proxy.host() + "/test/token:v1", basic).id, img.config_digest);
  ASSERT_TRUE(s.Status(proxy.host() + "/test/token:v1").has_value());
  s.Remove(proxy.host() + "/test/token:v1");
  AuthConfig identity;
  identity.identity_token = "refresh-alice";
  EXPECT_EQ(s.Pull(proxy.host() + "/test/token:v1", identity).id, img.config_digest);
}

TEST_F(PullTest, HostsTomlMirrorsInOrder) {
  TestImage img = Push("mirror", "test/mirror:v1");
  TokenProxy::Options po;
  po.require_token = false;
  TokenProxy mirror(registry_->host(), po);
  std::string certs = *tmp_ / "certs.d";
  int dead = FreePort();
  WriteFile(certs + "/mirror.invalid/hosts.toml",
            "server = \"https://mirror.invalid\"\n"
            "[host.\"http://127.0.0.1:" + std::to_string(dead) + "\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
            "[host.\"http://" + mirror.host() + "\"]\n  capabilities = [\"pull\", \"resolve\"]\n");
  auto o = Opts();
  o.hosts_config_path = certs;
  ImageService& s = Service(o);
  auto image = s.Pull("mirror.invalid/test/mirror:v1", {});
  EXPECT_EQ(image.id, img.config_digest);
  EXPECT_EQ(image.repo_tags, std::vector<std::string>{"mirror.invalid/test/mirror:v1"});
  EXPECT_GE(mirror.ManifestGets(), 1);
  for (const auto& l : img.layer_digests) EXPECT_EQ(mirror.BlobGets(l), 1) << l;

  // _default applies to registries without their own directory.
  WriteFile(certs + "/_default/hosts.toml", "[host.\"http://" + mirror.host() + "\"]\n");
  EXPECT_EQ(s.Pull("other.invalid/test/mirror:v1", {}).id, img.config_digest);
}

TEST_F(PullTest, ConcurrentPullsShareOneDownload) {
  TestImage img = Push("concurrent", "test/concurrent:v1");
  TokenProxy proxy(registry_->host());
  auto o = Opts();
  o.max_concurrent_downloads = 2;
  ImageService& s = Service(o);
  const std::string ref = proxy.host() + "/test/concurrent:v1";
  std::vector<std::future<berth::image::Image>> futures;
  for (int i = 0; i < 6; ++i) futures.push_back(std::async(std::launch::async, [&] { return s.Pull(ref, {}); }));
  for (auto& f : futures) EXPECT_EQ(f.get().id, img.config_digest);
  for (const auto& l : img.layer_digests) EXPECT_EQ(proxy.BlobGets(l), 1) << l;
  EXPECT_EQ(s.List().size(), 1u);
}

TEST_F(PullTest, CorruptedBlobIsRejectedAndRepullWorks) {
  // A 3 MiB layer from a slow registry with a byte flipped at the start of its deflate data: the
  // gzip stream breaks long before the last byte arrives, and the digest mismatch must still be
  // what the pull reports.
  TestImageOptions io;
  io.filler_bytes = 3 << 20;
  TestImage img = Push("corrupt", "test/corrupt:v1", io);
  TokenProxy::Options po;
  po.blob_body_ms = 400;
  po.corrupt_offset = 12;
  TokenProxy proxy(registry_->host(), po);
  proxy.CorruptBlob(img.layer_digests[1]);
  ImageService& s = Service();
  const std::string ref = proxy.host() + "/test/corrupt:v1";
  try {
    s.Pull(ref, {});
    ADD_FAILURE() << "corrupted blob accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("digest mismatch"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(img.layer_digests[1]), std::string::npos) << e.what();
  }
  EXPECT_FALSE(s.Status(ref).has_value());
  EXPECT_TRUE(s.List().empty());
  EXPECT_FALSE(s.content().Has(img.layer_digests[1]));
  proxy.ClearCorruption();
  EXPECT_EQ(s.Pull(ref, {}).id, img.config_digest);
}

TEST_F(PullTest, HostileLayerFailsCleanly) {
  TestImageOptions o;
  o.hostile_layer = true;
  Push("hostile", "test/hostile:v1", o);
  ImageService& s = Service();
  try {
    s.Pull(Ref("test/hostile:v1"), {});
    ADD_FAILURE() << "path traversal accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument) << e.what();
  }
  EXPECT_TRUE(s.List().empty());
  EXPECT_FALSE(berth::fs::Exists(*tmp_ / "berth-escape"));
  EXPECT_FALSE(berth::fs::Exists(*tmp_ / "root/berth-escape"));
}

TEST_F(PullTest, ResumesPartialDownloadWithRange) {
  TestImageOptions o;
  o.filler_bytes = 512 * 1024;
  TestImage img = Push("resume", "test/resume:v1", o);
  const std::string layer = img.layer_digests[1];
  std::string blob = berth::fs::ReadFile(img.oci_dir + "/blobs/sha256/" + layer.substr(7));
  for (bool ignore_range : {false, true}) {
    SCOPED_TRACE(ignore_range ? "server ignores Range" : "server honours Range");
    TokenProxy::Options po;
    po.ignore_range = ignore_range;
    TokenProxy proxy(registry_->host(), po);
    ImageService& s = Service(Opts(ignore_range ? "root-a" : "root-b"));
    {
      auto w = s.content().OpenWriter(layer);
      w->Write(blob.data(), blob.size() / 2);
    }  // not committed: the partial ingest stays for the next pull
    EXPECT_EQ(s.Pull(proxy.host() + "/test/resume:v1", {}).id, img.config_digest);
    EXPECT_TRUE(s.content().Has(layer));
    EXPECT_EQ(s.content().Size(layer), static_cast<int64_t>(blob.size()));
  }
}

TEST_F(PullTest, RemoveByTagByIdAndRepull) {
  TestImage img = Push("remove", "test/remove:v1");
  PushImage(img, registry_->host(), "test/remove:v2");
  ImageService& s = Service();
  auto a = s.Pull(Ref("test/remove:v1"), {});
  s.Pull(Ref("test/remove:v2"), {});
  ASSERT_EQ(s.Status(a.id)->repo_tags.size(), 2u);
  // By tag: only that name goes.
  s.Remove(Ref("test/remove:v1"));
  auto st = s.Status(a.id);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->repo_tags, std::vector<std::string>{Ref("test/remove:v2")});
  EXPECT_TRUE(s.content().Has(img.layer_digests[0]));
  // By id: everything goes, content and snapshots are collected.
  s.Remove(a.id);
  EXPECT_FALSE(s.Status(a.id).has_value());
  EXPECT_TRUE(s.List().empty());
  for (const auto& l : img.layer_digests) EXPECT_FALSE(s.content().Has(l)) << l;
  EXPECT_FALSE(s.content().Has(img.config_digest));
  EXPECT_FALSE(s.snapshotter().Stat(a.chain_id).has_value());
  try {
    s.Remove(a.id);
    ADD_FAILURE() << "removing a missing image must fail";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
  }
  auto again = s.Pull(Ref("test/remove:v1"), {});
  EXPECT_EQ(again.id, a.id);
  EXPECT_TRUE(s.snapshotter().Stat(again.chain_id).has_value());
  // Removing the last tag also drops the digest name: the image is gone.
  s.Remove(Ref("test/remove:v1"));
  EXPECT_TRUE(s.List().empty());
}

TEST_F(PullTest, PinnedImageIsNotRemovedOrCollected) {
  TestImage pinned = Push("pinned", "test/pinned:v1");
  TestImage other = Push("unpinned", "test/unpinned:v1");
  auto opts = Opts();
  opts.pinned_images = {{"sandbox", Ref("test/pinned:v1")}};
  ImageService& s = Service(opts);
  auto p = s.Pull(Ref("test/pinned:v1"), {});
  EXPECT_TRUE(p.pinned);
  auto o = s.Pull(Ref("test/unpinned:v1"), {});
  EXPECT_FALSE(o.pinned);
  try {
    s.Remove(Ref("test/pinned:v1"));
    ADD_FAILURE() << "pinned image removed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kFailedPrecondition) << e.what();
  }
  s.Remove(o.id);  // runs the collector
  ASSERT_TRUE(s.Status(p.id).has_value());
  EXPECT_TRUE(s.Status(p.id)->pinned);
  for (const auto& l : pinned.layer_digests) EXPECT_TRUE(s.content().Has(l)) << l;  // shared busybox layer too
  EXPECT_FALSE(s.content().Has(other.layer_digests[1]));
  EXPECT_TRUE(s.snapshotter().Stat(p.chain_id).has_value());
}

TEST_F(PullTest, RestartKeepsImages) {
  TestImage img = Push("restart", "test/restart:v1");
  std::string chain;
  {
    ImageService& s = Service();
    chain = s.Pull(Ref("test/restart:v1"), {}).chain_id;
  }
  service_.reset();
  ImageService& s2 = Service();
  auto list = s2.List();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].id, img.config_digest);
  EXPECT_EQ(list[0].chain_id, chain);
  EXPECT_EQ(list[0].user, "1000");
  EXPECT_TRUE(s2.snapshotter().Stat(chain).has_value());
}

TEST_F(PullTest, ImportArchive) {
  TestImageOptions o;
  o.id = "import";
  TestImage img = BuildTestImage(*tmp_ / "oci-import", o);
  std::string tar = *tmp_ / "import.tar";
  WriteOciArchive(img, tar, "docker.io/library/imported:v1");
  ImageService& s = Service();
  auto images = s.Import(tar);
  ASSERT_EQ(images.size(), 1u);
  EXPECT_EQ(images[0].id, img.config_digest);
  EXPECT_EQ(images[0].repo_tags, std::vector<std::string>{"docker.io/library/imported:v1"});
  EXPECT_TRUE(s.Status("imported:v1").has_value());
  EXPECT_TRUE(s.snapshotter().Stat(images[0].chain_id).has_value());
  EXPECT_THROW(s.Import(*tmp_ / "missing.tar"), Error);
}

}  // namespace

namespace {

TEST_F(PullTest, BlobRedirectToAnotherHostDropsAuthorization) {
  TestImage img = Push("redirect", "test/redirect:v1");
  TokenProxy::Options storage_opts;
  storage_opts.require_token = false;
  TokenProxy storage(registry_->host(), storage_opts);  // the "blob storage" on another origin
  TokenProxy::Options front_opts;
  front_opts.redirect_blobs_to = storage.host();
  TokenProxy front(registry_->host(), front_opts);
  ImageService& s = Service();
  EXPECT_EQ(s.Pull(front.host() + "/test/redirect:v1", {}).id, img.config_digest);
  EXPECT_GE(front.TokensIssued(), 1);
  for (const auto& l : img.layer_digests) EXPECT_EQ(storage.BlobGets(l), 1) << l;
  EXPECT_EQ(storage.AuthorizationSeen(), 0);
}

TEST_F(PullTest, StalledDownloadIsAbortedByProgressTimeout) {
  Push("stall", "test/stall:v1");
  TokenProxy::Options po;
  po.require_token = false;
  po.stall_blobs = true;
  TokenProxy proxy(registry_->host(), po);
  auto o = Opts();
  o.progress_timeout = std::chrono::seconds(1);
  ImageService& s = Service(o);
  try {
    s.Pull(proxy.host() + "/test/stall:v1", {});
    ADD_FAILURE() << "a stalled download must fail";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kDeadlineExceeded) << e.what();
    EXPECT_NE(std::string(e.what()).find("no progress"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(s.List().empty());
}

}  // namespace

namespace {

TEST(PullTls, HttpsRegistryWithHostsTomlCA) {
  if (std::string why = RegistrySkipReason(); !why.empty()) GTEST_SKIP() << why;
  TempDir tmp("berth-image-tls");
  if (std::string why = MakeSelfSignedCert(tmp / "tls"); !why.empty()) GTEST_SKIP() << why;
  LocalRegistry plain;  // pushes go over http; the TLS registry serves the same storage
  TestImageOptions o;
  o.id = "tls";
  TestImage img = BuildTestImage(tmp / "oci", o);
  PushImage(img, plain.host(), "test/tls:v1");
  // A second registry process on the same storage, over https.
  LocalRegistry tls(tmp / "tls/cert.pem", tmp / "tls/key.pem");
  berth::fs::RemoveAll(tls.dir() + "/storage");
  ASSERT_EQ(symlink((plain.dir() + "/storage").c_str(), (tls.dir() + "/storage").c_str()), 0);

  // Registry "secure.test" is served by the TLS registry; CA from hosts.toml.
  std::string certs = tmp / "certs.d";
  WriteFile(certs + "/secure.test/ca.pem", berth::fs::ReadFile(tmp / "tls/cert.pem"));
  WriteFile(certs + "/secure.test/hosts.toml", "server = \"https://" + tls.host() + "\"\nca = \"ca.pem\"\n");
  // Same server without the CA: verification fails; with skip_verify it works.
  WriteFile(certs + "/untrusted.test/hosts.toml", "server = \"https://" + tls.host() + "\"\n");
  WriteFile(certs + "/skip.test/hosts.toml", "server = \"https://" + tls.host() + "\"\nskip_verify = true\n");

  ImageService::Options opts;
  opts.root = tmp / "root";
  opts.hosts_config_path = certs;
  ImageService s(opts);
  EXPECT_EQ(s.Pull("secure.test/test/tls:v1", {}).id, img.config_digest);
  try {
    s.Pull("untrusted.test/test/tls:v1", {});
    ADD_FAILURE() << "an untrusted certificate must be refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnavailable) << e.what();
  }
  EXPECT_EQ(s.Pull("skip.test/test/tls:v1", {}).id, img.config_digest);
  UnmountAllBelow(tmp.path());
}

}  // namespace

namespace {

TEST_F(PullTest, BasicAuthChallenge) {
  TestImage img = Push("basic", "test/basic:v1");
  TokenProxy::Options po;
  po.basic_only = true;
  po.username = "bob";
  po.password = "pw";
  TokenProxy proxy(registry_->host(), po);
  ImageService& s = Service();
  try {
    s.Pull(proxy.host() + "/test/basic:v1", {});
    ADD_FAILURE() << "anonymous pull should be refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kPermissionDenied) << e.what();
  }
  AuthConfig other_server;
  other_server.username = "bob";
  other_server.password = "pw";
  other_server.server_address = "https://registry.elsewhere.test";
  EXPECT_THROW(s.Pull(proxy.host() + "/test/basic:v1", other_server), Error);  // credentials not sent
  AuthConfig auth;
  auth.username = "bob";
  auth.password = "pw";
  auth.server_address = proxy.host();
  EXPECT_EQ(s.Pull(proxy.host() + "/test/basic:v1", auth).id, img.config_digest);
}

}  // namespace
