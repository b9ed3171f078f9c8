// Unit tests of the CRI server: error mapping, image user parsing, request validation and the
// RuntimeService/ImageService answers that need no daemon.
// The generated CRI header comes first: its Signal enum values (SIGABRT...) collide with
// <signal.h> macros when that header is included before it.
#include "runtime/v1/api.pb.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "berth/images/v1/images.pb.h"
#include "common/error.h"
#include "cri/cri.h"
#include "cri/errors.h"
#include "cri/image_service.h"
#include "cri/runtime_service.h"
#include "cri/server.h"
#include "cri/user.h"
#include "cri/validate.h"
#include "criplugins/criplugins.h"
#include "image/service.h"

namespace berth::cri {
namespace {

namespace v1 = runtime::v1;

// ---- error mapping ----

TEST(ErrorMapping, CodesMapOneToOne) {
  EXPECT_EQ(ToGrpcCode(Code::kInvalidArgument), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ToGrpcCode(Code::kNotFound), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(ToGrpcCode(Code::kAlreadyExists), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(ToGrpcCode(Code::kFailedPrecondition), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(ToGrpcCode(Code::kUnimplemented), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(ToGrpcCode(Code::kUnavailable), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ToGrpcCode(Code::kInternal), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(ToGrpcCode(Code::kDeadlineExceeded), grpc::StatusCode::DEADLINE_EXCEEDED);
  for (int i = 1; i <= 14; ++i) EXPECT_EQ(static_cast<int>(ToGrpcCode(static_cast<Code>(i))), i);
  EXPECT_EQ(ToGrpcCode(Code::kOk), grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(ToGrpcCode(static_cast<Code>(99)), grpc::StatusCode::UNKNOWN);
}

TEST(ErrorMapping, GuardConvertsExceptions) {
  auto st = Guard("X", [] { throw Error(Code::kNotFound, "image \"foo\" not found"); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(st.error_message(), "image \"foo\" not found");
  st = Guard("X", [] { throw std::runtime_error("boom"); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(st.error_message(), "X: boom");
  st = Guard("X", [] { throw std::bad_alloc(); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  st = Guard("X", [] { throw 42; });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_TRUE(Guard("X", [] {}).ok());
  st = Unimplemented("RunPodSandbox");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(st.error_message(), "RunPodSandbox is not implemented yet");
}

// ---- image user ----

TEST(ImageUser, Parses) {
  auto u = ParseImageUser("");
  EXPECT_FALSE(u.uid);
  EXPECT_EQ(u.username, "");
  u = ParseImageUser("1000");
  ASSERT_TRUE(u.uid);
  EXPECT_EQ(*u.uid, 1000);
  EXPECT_EQ(u.username, "");
  u = ParseImageUser("0");
  ASSERT_TRUE(u.uid);
  EXPECT_EQ(*u.uid, 0);
  u = ParseImageUser("1000:1000");
  ASSERT_TRUE(u.uid);
  EXPECT_EQ(*u.uid, 1000);
  u = ParseImageUser("nobody");
  EXPECT_FALSE(u.uid);
  EXPECT_EQ(u.username, "nobody");
  u = ParseImageUser("nobody:nogroup");
  EXPECT_FALSE(u.uid);
  EXPECT_EQ(u.username, "nobody");
  u = ParseImageUser("www-data:33");
  EXPECT_EQ(u.username, "www-data");
  u = ParseImageUser(":1000");
  EXPECT_FALSE(u.uid);
  EXPECT_EQ(u.username, "");
  u = ParseImageUser("99999999999999999999999");  // does not fit: a name, as Go's ParseInt fails
  EXPECT_FALSE(u.uid);
  EXPECT_EQ(u.username, "99999999999999999999999");
  u = ParseImageUser("12abc");
  EXPECT_FALSE(u.uid);
  EXPECT_EQ(u.username, "12abc");
  u = ParseImageUser("+5");
  ASSERT_TRUE(u.uid);
  EXPECT_EQ(*u.uid, 5);
}

// ---- validation ----

template <typename Fn>
std::string InvalidMessage(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

TEST(Validate, PullImage) {
  v1::PullImageRequest req;
  EXPECT_EQ(InvalidMessage([&] { ValidatePullImage(req); }), "image.image is required");
  req.mutable_image()->set_image("busybox");
  EXPECT_EQ(ValidatePullImage(req), "busybox");
  req.mutable_image()->set_image("Busy Box");
  EXPECT_NE(InvalidMessage([&] { ValidatePullImage(req); }).find("image.image"), std::string::npos);
  req.mutable_image()->set_image("a//b");
  EXPECT_NE(InvalidMessage([&] { ValidatePullImage(req); }).find("invalid image reference"), std::string::npos);
  req.mutable_image()->set_image(std::string(5000, 'a'));
  EXPECT_NE(InvalidMessage([&] { ValidatePullImage(req); }).find("too long"), std::string::npos);
  req.mutable_image()->set_image(std::string("a\0b", 3));
  EXPECT_NE(InvalidMessage([&] { ValidatePullImage(req); }).find("\\x00"), std::string::npos);
  req.mutable_image()->set_image("busybox");
  req.mutable_auth()->set_auth("!!notbase64");
  EXPECT_EQ(InvalidMessage([&] { ValidatePullImage(req); }), "auth.auth is not valid base64");
  req.mutable_auth()->set_auth("dXNlcjpwYXNz");  // user:pass
  EXPECT_EQ(ValidatePullImage(req), "busybox");
}

TEST(Validate, StatusRemoveList) {
  v1::ImageStatusRequest st;
  EXPECT_EQ(InvalidMessage([&] { ValidateImageStatus(st); }), "image.image is required");
  st.mutable_image()->set_image("sha256:abc");
  EXPECT_EQ(ValidateImageStatus(st), "sha256:abc");
  v1::RemoveImageRequest rm;
  EXPECT_EQ(InvalidMessage([&] { ValidateRemoveImage(rm); }), "image.image is required");
  v1::ListImagesRequest ls;
  EXPECT_EQ(ValidateListImages(ls), "");
  ls.mutable_filter()->mutable_image()->set_image("busybox");
  EXPECT_EQ(ValidateListImages(ls), "busybox");
  ls.mutable_filter()->mutable_image()->set_image("a b");
  EXPECT_NE(InvalidMessage([&] { ValidateListImages(ls); }).find("filter.image.image"), std::string::npos);
}

TEST(Validate, PodCIDR) {
  v1::UpdateRuntimeConfigRequest req;
  EXPECT_TRUE(ValidateUpdateRuntimeConfig(req).empty());
  req.mutable_runtime_config()->mutable_network_config()->set_pod_cidr("10.88.0.0/16");
  EXPECT_EQ(ValidateUpdateRuntimeConfig(req), std::vector<std::string>{"10.88.0.0/16"});
  req.mutable_runtime_config()->mutable_network_config()->set_pod_cidr("10.88.0.0/16,fd00::/64");
  EXPECT_EQ(ValidateUpdateRuntimeConfig(req).size(), 2u);
  for (const char* bad : {"10.88.0.0", "10.88.0.0/33", "fd00::/129", "x/8", "10.0.0.0/16,", "/8", "1.2.3.4/-1"}) {
    req.mutable_runtime_config()->mutable_network_config()->set_pod_cidr(bad);
    EXPECT_NE(InvalidMessage([&] { ValidateUpdateRuntimeConfig(req); }).find("pod_cidr"), std::string::npos)
        << bad;
  }
}

TEST(Validate, Import) {
  berth::images::v1::ImportRequest req;
  EXPECT_EQ(InvalidMessage([&] { ValidateImport(req); }), "path is required");
  req.set_path("relative.tar");
  EXPECT_NE(InvalidMessage([&] { ValidateImport(req); }).find("must be absolute"), std::string::npos);
  req.set_path(std::string("/a\0b", 4));
  EXPECT_NE(InvalidMessage([&] { ValidateImport(req); }).find("NUL"), std::string::npos);
  req.set_path("/tmp/x.tar");
  EXPECT_EQ(ValidateImport(req), "/tmp/x.tar");
}

// ---- services without a daemon ----

std::shared_ptr<criplugins::CRIRuntimePlugin> FakeRuntime() {
  auto rt = std::make_shared<criplugins::CRIRuntimePlugin>();
  rt->config = config::DefaultRuntimeConfig();
  rt->config.containerd.default_runtime_name = "runc";
  rt->root_dir = "/var/lib/berth/io.containerd.grpc.v1.cri";
  rt->state_dir = "/run/berth/io.containerd.grpc.v1.cri";
  criplugins::HandlerInfo runc;
  runc.name = "runc";
  runc.features = {{"recursive_read_only_mounts", true}, {"user_namespaces", false}};
  rt->handlers["runc"] = runc;
  criplugins::HandlerInfo crun;
  crun.name = "crun";
  rt->handlers["crun"] = crun;
  return rt;
}

TEST(Handlers, DefaultHandlerListedAsEmptyName) {
  auto rt = FakeRuntime();
  auto hs = ResolveHandlerFeatures(*rt, false);
  ASSERT_EQ(hs.size(), 3u);
  EXPECT_EQ(hs[0].name, "");
  EXPECT_TRUE(hs[0].recursive_read_only_mounts);
  EXPECT_EQ(hs[1].name, "crun");
  EXPECT_FALSE(hs[1].recursive_read_only_mounts);
  EXPECT_EQ(hs[2].name, "runc");
  EXPECT_TRUE(hs[2].recursive_read_only_mounts);
}

TEST(RuntimeService, VersionStatusAndUnimplemented) {
  ServerDeps deps;
  deps.runtime = FakeRuntime();
  CRIServer server(std::move(deps));
  auto& rs = server.runtime_service();

  v1::VersionRequest vreq;
  v1::VersionResponse vresp;
  ASSERT_TRUE(rs.Version(nullptr, &vreq, &vresp).ok());
  EXPECT_EQ(vresp.version(), "0.1.0");
  EXPECT_EQ(vresp.runtime_name(), "berth");
  EXPECT_EQ(vresp.runtime_version(), BerthVersion());
  EXPECT_EQ(vresp.runtime_api_version(), "v1");

  v1::StatusRequest sreq;
  sreq.set_verbose(true);
  v1::StatusResponse sresp;
  ASSERT_TRUE(rs.Status(nullptr, &sreq, &sresp).ok());
  ASSERT_EQ(sresp.status().conditions_size(), 2);
  EXPECT_EQ(sresp.status().conditions(0).type(), "RuntimeReady");
  EXPECT_TRUE(sresp.status().conditions(0).status());
  EXPECT_EQ(sresp.status().conditions(1).type(), "NetworkReady");
  EXPECT_FALSE(sresp.status().conditions(1).status());
  EXPECT_EQ(sresp.status().conditions(1).reason(), "NetworkPluginNotReady");
  EXPECT_FALSE(sresp.status().conditions(1).message().empty());
  ASSERT_EQ(sresp.runtime_handlers_size(), 3);
  EXPECT_EQ(sresp.runtime_handlers(0).name(), "");
  EXPECT_TRUE(sresp.runtime_handlers(0).features().recursive_read_only_mounts());
  ASSERT_TRUE(sresp.info().contains("config"));
  auto cfg = nlohmann::json::parse(sresp.info().at("config"));
  EXPECT_EQ(cfg["containerd"]["defaultRuntimeName"], "runc");
  EXPECT_EQ(cfg["containerd"]["snapshotter"], "overlayfs");
  EXPECT_EQ(cfg["rootDir"], "/var/lib/berth/io.containerd.grpc.v1.cri");
  EXPECT_EQ(cfg["containerdRootDir"], "/var/lib/berth");

  v1::StatusRequest quiet;
  v1::StatusResponse qresp;
  ASSERT_TRUE(rs.Status(nullptr, &quiet, &qresp).ok());
  EXPECT_TRUE(qresp.info().empty());

  v1::UpdateRuntimeConfigRequest ureq;
  ureq.mutable_runtime_config()->mutable_network_config()->set_pod_cidr("10.88.0.0/16");
  v1::UpdateRuntimeConfigResponse uresp;
  ASSERT_TRUE(rs.UpdateRuntimeConfig(nullptr, &ureq, &uresp).ok());
  EXPECT_EQ(server.PodCIDRs(), std::vector<std::string>{"10.88.0.0/16"});
  ureq.mutable_runtime_config()->mutable_network_config()->set_pod_cidr("garbage");
  EXPECT_EQ(rs.UpdateRuntimeConfig(nullptr, &ureq, &uresp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  v1::RuntimeConfigRequest rcreq;
  v1::RuntimeConfigResponse rcresp;
  ASSERT_TRUE(rs.RuntimeConfig(nullptr, &rcreq, &rcresp).ok());
  EXPECT_EQ(rcresp.linux().cgroup_driver(), v1::CGROUPFS);

  v1::RunPodSandboxRequest rreq;
  v1::RunPodSandboxResponse rresp;
  // Without a pods backend: an error status (UNIMPLEMENTED until implemented, UNAVAILABLE after).
  auto st = rs.RunPodSandbox(nullptr, &rreq, &rresp);
  EXPECT_FALSE(st.ok());
}

TEST(ImageService, WithoutBackendAnswersUnavailableAfterValidation) {
  ServerDeps deps;
  deps.image_service_error = "test";
  CRIServer server(std::move(deps));
  auto& is = server.image_service();
  v1::PullImageRequest preq;
  v1::PullImageResponse presp;
  auto st = is.PullImage(nullptr, &preq, &presp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "image.image is required");
  preq.mutable_image()->set_image("busybox");
  st = is.PullImage(nullptr, &preq, &presp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(st.error_message().find("test"), std::string::npos);
}

TEST(ImageConvert, UserAndFields) {
  image::Image img;
  img.id = "sha256:1111";
  img.repo_tags = {"docker.io/library/busybox:latest"};
  img.repo_digests = {"docker.io/library/busybox@sha256:2222"};
  img.size = 1234;
  img.user = "1000:1000";
  img.pinned = true;
  img.config_json = R"({"config":{"User":"1000:1000"}})";
  v1::Image out;
  ToCRIImage(img, &out);
  EXPECT_EQ(out.id(), "sha256:1111");
  EXPECT_EQ(out.repo_tags(0), "docker.io/library/busybox:latest");
  EXPECT_EQ(out.repo_digests(0), "docker.io/library/busybox@sha256:2222");
  EXPECT_EQ(out.size(), 1234u);
  ASSERT_TRUE(out.has_uid());
  EXPECT_EQ(out.uid().value(), 1000);
  EXPECT_EQ(out.username(), "");
  EXPECT_TRUE(out.pinned());
  img.user = "nobody";
  v1::Image out2;
  ToCRIImage(img, &out2);
  EXPECT_FALSE(out2.has_uid());
  EXPECT_EQ(out2.username(), "nobody");
  auto info = nlohmann::json::parse(ImageInfoJSON(img));
  EXPECT_EQ(info["imageSpec"]["config"]["User"], "1000:1000");
  img.config_json = "not json";
  info = nlohmann::json::parse(ImageInfoJSON(img));
  EXPECT_EQ(info["imageSpec"], "not json");
}

}  // namespace
}  // namespace berth::cri
