// End-to-end: starts the real berthd on a temporary socket, root and state with a test config,
// and talks CRI to it through a real gRPC client (and berthctl when it is built).
// The generated CRI header comes first: its Signal enum values (SIGABRT...) collide with
// <signal.h> macros when that header is included before it.
#include "runtime/v1/api.grpc.pb.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "berth/images/v1/images.grpc.pb.h"
#include "berthd_proc.h"
#include "common/exec.h"
#include "image_support.h"
#include "support/support.h"

namespace {

namespace v1 = runtime::v1;
using berth::testing::BerthdProc;
using berth::testing::TempDir;

constexpr int64_t kMaxRecv = 1 << 20;  // the test config's [grpc] max_recv_message_size

// A berthd whose gRPC messages may be large (kMaxRecv) and which pulls two layers at a time.
BerthdProc* NewBerthd(const std::string& dir) {
  berth::testing::BerthdOptions o;
  o.grpc_extra = "max_recv_message_size = " + std::to_string(kMaxRecv) + "\n";
  o.extra = "[plugins.\"io.containerd.cri.v1.images\"]\nmax_concurrent_downloads = 2\n";
  return new BerthdProc(dir, BERTHD_PATH, BERTH_MONITOR_PATH, BERTH_PAUSE_PATH, o);
}

class CriE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!berth::testing::IsRoot()) {
      skip_ = "berthd's CRI plugins need root";
      return;
    }
    dir_ = new TempDir("berth-e2e-cri");
    daemon_ = NewBerthd(dir_->path());
    start_error_ = daemon_->Start();
  }
  static void TearDownTestSuite() {
    delete daemon_;
    daemon_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    ASSERT_EQ(start_error_, "");
  }
  void TearDown() override {
    if (daemon_ && skip_.empty()) {
      EXPECT_TRUE(daemon_->Alive()) << daemon_->Log();
    }
  }

  static std::unique_ptr<grpc::ClientContext> Ctx() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    return ctx;
  }

  static berth::exec::Result Berthctl(std::vector<std::string> args) {
#ifdef BERTHCTL_PATH
    std::vector<std::string> argv = {BERTHCTL_PATH, "--runtime-endpoint",
                                     "unix://" + daemon_->socket()};
    argv.insert(argv.end(), args.begin(), args.end());
    berth::exec::Options o;
    o.timeout = std::chrono::seconds(120);
    return berth::exec::Run(argv, o);
#else
    (void)args;
    return {};
#endif
  }

  static inline std::string skip_;
  static inline std::string start_error_;
  static inline TempDir* dir_ = nullptr;
  static inline BerthdProc* daemon_ = nullptr;
};

TEST_F(CriE2E, Version) {
  v1::VersionRequest req;
  v1::VersionResponse resp;
  auto st = daemon_->rt().Version(Ctx().get(), req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.version(), "0.1.0");
  EXPECT_EQ(resp.runtime_name(), "berth");
  EXPECT_FALSE(resp.runtime_version().empty());
  EXPECT_EQ(resp.runtime_api_version(), "v1");
}

TEST_F(CriE2E, StatusReportsHandlersAndConfig) {
  v1::StatusRequest req;
  req.set_verbose(true);
  v1::StatusResponse resp;
  auto st = daemon_->rt().Status(Ctx().get(), req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  bool runtime_ready = false, network_seen = false;
  for (const auto& c : resp.status().conditions()) {
    if (c.type() == "RuntimeReady") runtime_ready = c.status();
    if (c.type() == "NetworkReady") {
      network_seen = true;
      EXPECT_FALSE(c.status());
      EXPECT_EQ(c.reason(), "NetworkPluginNotReady");
    }
  }
  EXPECT_TRUE(runtime_ready);
  EXPECT_TRUE(network_seen);
  bool has_default = false, has_runc = false;
  for (const auto& h : resp.runtime_handlers()) {
    if (h.name().empty()) has_default = true;
    if (h.name() == "runc") has_runc = true;
  }
  EXPECT_TRUE(has_default);
  EXPECT_TRUE(has_runc);
  ASSERT_TRUE(resp.info().contains("config"));
  auto cfg = nlohmann::json::parse(resp.info().at("config"));
  EXPECT_EQ(cfg["restrictOOMScoreAdj"], true);
  EXPECT_EQ(cfg["containerd"]["defaultRuntimeName"], "runc");
  EXPECT_EQ(cfg["maxConcurrentDownloads"], 2);
}

TEST_F(CriE2E, UpdateRuntimeConfig) {
  v1::UpdateRuntimeConfigRequest req;
  req.mutable_runtime_config()->mutable_network_config()->set_pod_cidr("10.88.0.0/16");
  v1::UpdateRuntimeConfigResponse resp;
  auto st = daemon_->rt().UpdateRuntimeConfig(Ctx().get(), req, &resp);
  EXPECT_TRUE(st.ok()) << st.error_message();
}

TEST_F(CriE2E, MalformedRequestsGetErrorsAndTheDaemonCarriesOn) {
  {
    v1::PullImageRequest req;
    v1::PullImageResponse resp;
    auto st = daemon_->img().PullImage(Ctx().get(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(st.error_message(), "image.image is required");
  }
  {
    v1::PullImageRequest req;
    req.mutable_image()->set_image("NOT A/valid:ref");
    v1::PullImageResponse resp;
    auto st = daemon_->img().PullImage(Ctx().get(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(st.error_message().find("image.image"), std::string::npos) << st.error_message();
  }
  {
    v1::PullImageRequest req;
    req.mutable_image()->set_image("library/Busybox:1");
    v1::PullImageResponse resp;
    auto st = daemon_->img().PullImage(Ctx().get(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(st.error_message().find("image.image: invalid image reference"), std::string::npos)
        << st.error_message();
  }
  {
    v1::PullImageRequest req;
    req.mutable_image()->set_image("busybox");
    req.mutable_auth()->set_auth("not base64!");
    v1::PullImageResponse resp;
    auto st = daemon_->img().PullImage(Ctx().get(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(st.error_message(), "auth.auth is not valid base64");
  }
  {
    v1::UpdateRuntimeConfigRequest req;
    req.mutable_runtime_config()->mutable_network_config()->set_pod_cidr("10.88.0.0/99");
    v1::UpdateRuntimeConfigResponse resp;
    auto st = daemon_->rt().UpdateRuntimeConfig(Ctx().get(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(st.error_message().find("runtime_config.network_config.pod_cidr"), std::string::npos)
        << st.error_message();
  }
  {
    v1::ImageStatusRequest req;
    v1::ImageStatusResponse resp;
    auto st = daemon_->img().ImageStatus(Ctx().get(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(st.error_message(), "image.image is required");
  }
  {
    v1::RemoveImageRequest req;
    v1::RemoveImageResponse resp;
    auto st = daemon_->img().RemoveImage(Ctx().get(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(st.error_message(), "image.image is required");
  }
  {
    // Larger than [grpc] max_recv_message_size.
    v1::PullImageRequest req;
    req.mutable_image()->set_image(std::string(kMaxRecv + 1024, 'a'));
    v1::PullImageResponse resp;
    auto st = daemon_->img().PullImage(Ctx().get(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
    // The daemon still answers after the oversized message.
    v1::VersionRequest vreq;
    v1::VersionResponse vresp;
    auto vst = daemon_->rt().Version(Ctx().get(), vreq, &vresp);
    EXPECT_TRUE(vst.ok()) << vst.error_message();
  }
  {
    // Within the message limit but over the reference bound.
    v1::PullImageRequest req;
    req.mutable_image()->set_image(std::string(8192, 'a'));
    v1::PullImageResponse resp;
    auto st = daemon_->img().PullImage(Ctx().get(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(st.error_message().find("image.image is too long"), std::string::npos)
        << st.error_message();
  }
  {
    berth::images::v1::ImportRequest req;
    req.set_path("relative/path.tar");
    berth::images::v1::ImportResponse resp;
    auto st = daemon_->admin().Import(Ctx().get(), req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(st.error_message().find("must be absolute"), std::string::npos) << st.error_message();
  }
  {
    // Absent images: RemoveImage succeeds, ImageStatus answers without an image.
    v1::RemoveImageRequest rm;
    rm.mutable_image()->set_image("docker.io/library/never-pulled:1");
    v1::RemoveImageResponse rmresp;
    auto st = daemon_->img().RemoveImage(Ctx().get(), rm, &rmresp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    v1::ImageStatusRequest is;
    is.mutable_image()->set_image("docker.io/library/never-pulled:1");
    v1::ImageStatusResponse isresp;
    st = daemon_->img().ImageStatus(Ctx().get(), is, &isresp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    EXPECT_FALSE(isresp.has_image());
  }
  v1::VersionRequest req;
  v1::VersionResponse resp;
  auto st = daemon_->rt().Version(Ctx().get(), req, &resp);
  EXPECT_TRUE(st.ok()) << st.error_message();
}

TEST_F(CriE2E, ImagesPullListInspectRemoveImport) {
  std::string why = berth::testing::RegistrySkipReason();
  if (!why.empty()) GTEST_SKIP() << why;
  berth::testing::LocalRegistry reg;
  TempDir work("berth-e2e-cri-img");
  berth::testing::TestImageOptions opts;
  opts.user = "1000:1000";
  auto img = berth::testing::BuildTestImage(work / "oci", opts);
  berth::testing::PushImage(img, reg.host(), "test/busybox:v1");
  const std::string ref = reg.host() + "/test/busybox:v1";
  const std::string digest_ref = reg.host() + "/test/busybox@" + img.manifest_digest;

  // Pull by tag.
  v1::PullImageRequest pull;
  pull.mutable_image()->set_image(ref);
  v1::PullImageResponse pulled;
  auto st = daemon_->img().PullImage(Ctx().get(), pull, &pulled);
  ASSERT_TRUE(st.ok()) << st.error_message() << "\n" << daemon_->Log();
  EXPECT_EQ(pulled.image_ref(), img.config_digest);

  // Pull by digest: the same image.
  v1::PullImageRequest pull_digest;
  pull_digest.mutable_image()->set_image(digest_ref);
  v1::PullImageResponse pulled_digest;
  st = daemon_->img().PullImage(Ctx().get(), pull_digest, &pulled_digest);
  ASSERT_TRUE(st.ok()) << st.error_message() << "\n" << daemon_->Log();
  EXPECT_EQ(pulled_digest.image_ref(), img.config_digest);

  v1::ListImagesRequest list;
  v1::ListImagesResponse listed;
  st = daemon_->img().ListImages(Ctx().get(), list, &listed);
  ASSERT_TRUE(st.ok()) << st.error_message();
  int found = 0;
  for (const auto& i : listed.images()) {
    if (i.id() != img.config_digest) continue;
    ++found;
    ASSERT_EQ(i.repo_tags_size(), 1);
    EXPECT_EQ(i.repo_tags(0), ref);
    ASSERT_EQ(i.repo_digests_size(), 1);
    EXPECT_EQ(i.repo_digests(0), digest_ref);
    EXPECT_GT(i.size(), 0u);
    ASSERT_TRUE(i.has_uid());
    EXPECT_EQ(i.uid().value(), 1000);
  }
  EXPECT_EQ(found, 1);
  // Filtered by reference.
  v1::ListImagesRequest filtered;
  filtered.mutable_filter()->mutable_image()->set_image(ref);
  v1::ListImagesResponse filtered_resp;
  st = daemon_->img().ListImages(Ctx().get(), filtered, &filtered_resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(filtered_resp.images_size(), 1);
  EXPECT_EQ(filtered_resp.images(0).id(), img.config_digest);

  // ImageStatus by tag, by digest and by id.
  for (const std::string& r : {ref, digest_ref, img.config_digest}) {
    v1::ImageStatusRequest status;
    status.mutable_image()->set_image(r);
    status.set_verbose(true);
    v1::ImageStatusResponse sresp;
    st = daemon_->img().ImageStatus(Ctx().get(), status, &sresp);
    ASSERT_TRUE(st.ok()) << r << ": " << st.error_message();
    ASSERT_TRUE(sresp.has_image()) << r;
    EXPECT_EQ(sresp.image().id(), img.config_digest) << r;
    ASSERT_TRUE(sresp.image().has_uid()) << r;
    EXPECT_EQ(sresp.image().uid().value(), 1000) << r;
    EXPECT_EQ(sresp.image().username(), "") << r;
    ASSERT_EQ(sresp.image().repo_tags_size(), 1) << r;
    EXPECT_EQ(sresp.image().repo_tags(0), ref);
    ASSERT_EQ(sresp.image().repo_digests_size(), 1) << r;
    EXPECT_EQ(sresp.image().repo_digests(0), digest_ref);
    EXPECT_GT(sresp.image().size(), 0u) << r;
    ASSERT_TRUE(sresp.info().contains("info")) << r;
    auto info = nlohmann::json::parse(sresp.info().at("info"));
    EXPECT_EQ(info["imageSpec"]["config"]["User"], "1000:1000");
    EXPECT_EQ(info["manifestDigest"], img.manifest_digest);
    EXPECT_FALSE(info["chainID"].get<std::string>().empty());
  }

  v1::ImageFsInfoRequest fsreq;
  v1::ImageFsInfoResponse fsresp;
  st = daemon_->img().ImageFsInfo(Ctx().get(), fsreq, &fsresp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(fsresp.image_filesystems_size(), 1);
  EXPECT_GT(fsresp.image_filesystems(0).timestamp(), 0);
  EXPECT_EQ(fsresp.image_filesystems(0).fs_id().mountpoint().rfind(
                (daemon_->root_dir() + "/io.containerd.cri.v1.images"), 0),
            0u)
      << fsresp.image_filesystems(0).fs_id().mountpoint();
  EXPECT_GT(fsresp.image_filesystems(0).used_bytes().value(), 0u);
  EXPECT_GT(fsresp.image_filesystems(0).inodes_used().value(), 0u);

  // Remove: the image and all its names are gone; removing it again is not an error.
  v1::RemoveImageRequest rm;
  rm.mutable_image()->set_image(ref);
  v1::RemoveImageResponse rmresp;
  st = daemon_->img().RemoveImage(Ctx().get(), rm, &rmresp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  for (const std::string& r : {ref, digest_ref, img.config_digest}) {
    v1::ImageStatusRequest status;
    status.mutable_image()->set_image(r);
    v1::ImageStatusResponse gone;
    st = daemon_->img().ImageStatus(Ctx().get(), status, &gone);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_FALSE(gone.has_image()) << r;
  }
  st = daemon_->img().RemoveImage(Ctx().get(), rm, &rmresp);
  EXPECT_TRUE(st.ok()) << st.error_message();

  // Re-pull after removal.
  v1::PullImageResponse again;
  st = daemon_->img().PullImage(Ctx().get(), pull, &again);
  ASSERT_TRUE(st.ok()) << st.error_message() << "\n" << daemon_->Log();
  EXPECT_EQ(again.image_ref(), img.config_digest);

  // Import an archive of another image.
  berth::testing::TestImageOptions opts2;
  opts2.id = "imported";
  opts2.user = "nobody";
  auto img2 = berth::testing::BuildTestImage(work / "oci2", opts2);
  berth::testing::WriteOciArchive(img2, work / "img2.tar", "docker.io/test/imported:v2");
  berth::images::v1::ImportRequest imp;
  imp.set_path(work / "img2.tar");
  berth::images::v1::ImportResponse impresp;
  st = daemon_->admin().Import(Ctx().get(), imp, &impresp);
  ASSERT_TRUE(st.ok()) << st.error_message() << "\n" << daemon_->Log();
  ASSERT_EQ(impresp.images_size(), 1);
  EXPECT_EQ(impresp.images(0).id(), img2.config_digest);
  v1::ImageStatusRequest s2;
  s2.mutable_image()->set_image(img2.config_digest);
  v1::ImageStatusResponse s2resp;
  st = daemon_->img().ImageStatus(Ctx().get(), s2, &s2resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_TRUE(s2resp.has_image());
  EXPECT_FALSE(s2resp.image().has_uid());
  EXPECT_EQ(s2resp.image().username(), "nobody");

  // Missing archive: NOT_FOUND, daemon alive.
  imp.set_path(work / "missing.tar");
  berth::images::v1::ImportResponse missing;
  st = daemon_->admin().Import(Ctx().get(), imp, &missing);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND) << st.error_message();

  // Clean up for the berthctl test.
  for (const std::string& r : {img.config_digest, img2.config_digest}) {
    v1::RemoveImageRequest req;
    req.mutable_image()->set_image(r);
    v1::RemoveImageResponse resp;
    st = daemon_->img().RemoveImage(Ctx().get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
  }
}

#ifdef BERTHCTL_PATH
TEST_F(CriE2E, BerthctlVersionAndInfo) {
  auto r = Berthctl({"version"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("RuntimeName:  berth"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("RuntimeApiVersion:  v1"), std::string::npos) << r.out;
  r = Berthctl({"info"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j.contains("status"));
  ASSERT_TRUE(j.contains("config"));
  EXPECT_EQ(j["config"]["restrictOOMScoreAdj"], true);
  r = Berthctl({"rmi"});
  EXPECT_NE(r.exit_code, 0);
  r = Berthctl({"inspecti", "docker.io/library/never-pulled:1"});
  EXPECT_NE(r.exit_code, 0);
  r = Berthctl({"pull", ""});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("image.image is required"), std::string::npos) << r.err;
}

TEST_F(CriE2E, BerthctlImages) {
  std::string why = berth::testing::RegistrySkipReason();
  if (!why.empty()) GTEST_SKIP() << why;
  berth::testing::LocalRegistry reg;
  TempDir work("berth-e2e-cri-ctl");
  berth::testing::TestImageOptions opts;
  opts.id = "berthctl";
  opts.user = "1000";
  auto img = berth::testing::BuildTestImage(work / "oci", opts);
  berth::testing::PushImage(img, reg.host(), "test/ctl:v1");
  const std::string ref = reg.host() + "/test/ctl:v1";
  const std::string digest_ref = reg.host() + "/test/ctl@" + img.manifest_digest;

  auto r = Berthctl({"pull", ref});
  ASSERT_EQ(r.exit_code, 0) << r.err << "\n" << daemon_->Log();
  EXPECT_EQ(r.out, "Image is up to date for " + img.config_digest + "\n");
  r = Berthctl({"pull", digest_ref});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(img.config_digest), std::string::npos) << r.out;

  r = Berthctl({"images", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(img.config_digest), std::string::npos) << r.out;
  r = Berthctl({"images"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("IMAGE ID"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(reg.host() + "/test/ctl"), std::string::npos) << r.out;
  r = Berthctl({"images", "-o", "json", ref});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  {
    auto j = nlohmann::json::parse(r.out);
    ASSERT_EQ(j["images"].size(), 1u) << r.out;
    EXPECT_EQ(j["images"][0]["id"], img.config_digest);
    EXPECT_EQ(j["images"][0]["repoTags"][0], ref);
    EXPECT_EQ(j["images"][0]["repoDigests"][0], digest_ref);
  }

  r = Berthctl({"inspecti", "-o", "json", ref});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  {
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["status"]["id"], img.config_digest);
    EXPECT_EQ(j["status"]["uid"]["value"], "1000") << r.out;
    EXPECT_EQ(j["info"]["imageSpec"]["config"]["User"], "1000");
    EXPECT_EQ(j["info"]["manifestDigest"], img.manifest_digest);
  }

  r = Berthctl({"imagefsinfo", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  {
    auto j = nlohmann::json::parse(r.out);
    ASSERT_EQ(j["imageFilesystems"].size(), 1u) << r.out;
    EXPECT_EQ(j["imageFilesystems"][0]["fsId"]["mountpoint"].get<std::string>().rfind(
                  (daemon_->root_dir() + "/io.containerd.cri.v1.images"), 0),
              0u)
        << r.out;
  }

  r = Berthctl({"rmi", ref});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Deleted: " + ref + "\n");
  r = Berthctl({"images", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find(img.config_digest), std::string::npos) << r.out;
  r = Berthctl({"inspecti", ref});
  EXPECT_NE(r.exit_code, 0);
  r = Berthctl({"rmi", ref});  // absent: not an error
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = Berthctl({"pull", ref});  // re-pull
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(img.config_digest), std::string::npos) << r.out;

  // images import of an OCI archive.
  berth::testing::TestImageOptions opts2;
  opts2.id = "berthctl-imported";
  auto img2 = berth::testing::BuildTestImage(work / "oci2", opts2);
  berth::testing::WriteOciArchive(img2, work / "img2.tar", "docker.io/test/ctl-imported:v2");
  r = Berthctl({"images", "import", work / "img2.tar"});
  ASSERT_EQ(r.exit_code, 0) << r.err << "\n" << daemon_->Log();
  EXPECT_NE(r.out.find("Imported " + img2.config_digest), std::string::npos) << r.out;
  r = Berthctl({"inspecti", "-o", "json", img2.config_digest});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["status"]["id"], img2.config_digest);
  r = Berthctl({"images", "import", work / "missing.tar"});
  EXPECT_NE(r.exit_code, 0);

  r = Berthctl({"rmi", ref, img2.config_digest});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}
#endif

}  // namespace
