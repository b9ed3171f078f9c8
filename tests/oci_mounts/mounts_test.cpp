#include "oci/mounts.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "support/support.h"

namespace berth::oci {
namespace {

using Opts = std::vector<std::string>;

const HandlerRRO kNone{};
const HandlerRRO kNative{true, false, true, false};         // treat_ro_mounts_as_rro on, runtime rro
const HandlerRRO kNativeKEPOnly{false, false, true, false};  // Disabled, but KEP possible
const HandlerRRO kFallback{true, true, true, true};          // only via berth's stager

class MountsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::WriteFile(tmp_ / "dir/file", "x");
    testing::WriteFile(tmp_ / "file", "x");
    ASSERT_EQ(::symlink((tmp_ / "dir").c_str(), (tmp_ / "link").c_str()), 0);
  }
  VolumeMount Vol(bool ro, Propagation p = Propagation::kPrivate, bool rro = false,
                  const std::string& host = "dir") {
    VolumeMount v;
    v.container_path = "/data";
    v.host_path = tmp_ / host;
    v.readonly = ro;
    v.propagation = p;
    v.recursive_read_only = rro;
    return v;
  }
  testing::TempDir tmp_;
};

TEST_F(MountsTest, ReadWriteAndPropagation) {
  auto p = PlanVolumeMount(Vol(false), kNative);
  EXPECT_EQ(p.mount.options, (Opts{"rbind", "rprivate", "rw"}));
  EXPECT_EQ(p.mount.type, "bind");
  EXPECT_EQ(p.mount.destination, "/data");
  EXPECT_EQ(p.mount.source, tmp_ / "dir");
  EXPECT_FALSE(p.needs_shared_rootfs);
  EXPECT_FALSE(p.needs_slave_rootfs);
  EXPECT_FALSE(p.stage_read_only);
  p = PlanVolumeMount(Vol(false, Propagation::kHostToContainer), kNone);
  EXPECT_EQ(p.mount.options, (Opts{"rbind", "rslave", "rw"}));
  EXPECT_TRUE(p.needs_slave_rootfs);
  EXPECT_FALSE(p.needs_shared_rootfs);
  p = PlanVolumeMount(Vol(false, Propagation::kBidirectional), kNone);
  EXPECT_EQ(p.mount.options, (Opts{"rbind", "rshared", "rw"}));
  EXPECT_TRUE(p.needs_shared_rootfs);
}

TEST_F(MountsTest, ReadOnlyFollowsTheHandler) {
  EXPECT_EQ(PlanVolumeMount(Vol(true), kNone).mount.options, (Opts{"rbind", "rprivate", "ro"}));
  EXPECT_EQ(PlanVolumeMount(Vol(true), kNative).mount.options, (Opts{"rbind", "rprivate", "rro"}));
  EXPECT_EQ(PlanVolumeMount(Vol(true), kNativeKEPOnly).mount.options, (Opts{"rbind", "rprivate", "ro"}));
  // Files are never rro.
  EXPECT_EQ(PlanVolumeMount(Vol(true, Propagation::kPrivate, false, "file"), kNative).mount.options,
            (Opts{"rbind", "rprivate", "ro"}));
  // treat_ro_mounts_as_rro applies whatever the propagation.
  EXPECT_EQ(PlanVolumeMount(Vol(true, Propagation::kHostToContainer), kNative).mount.options,
            (Opts{"rbind", "rslave", "rro"}));
  auto p = PlanVolumeMount(Vol(true), kFallback);
  EXPECT_EQ(p.mount.options, (Opts{"rbind", "rprivate", "ro"}));
  EXPECT_TRUE(p.stage_read_only);
}

TEST_F(MountsTest, RecursiveReadOnlyRequests) {
  auto p = PlanVolumeMount(Vol(true, Propagation::kPrivate, true), kNativeKEPOnly);
  EXPECT_EQ(p.mount.options, (Opts{"rbind", "rprivate", "rro"}));
  EXPECT_FALSE(p.stage_read_only);
  p = PlanVolumeMount(Vol(true, Propagation::kPrivate, true), kFallback);
  EXPECT_EQ(p.mount.options, (Opts{"rbind", "rprivate", "ro"}));
  EXPECT_TRUE(p.stage_read_only);
}

void ExpectError(const std::function<void()>& fn, Code code, const std::string& fragment) {
  try {
    fn();
    FAIL() << "no error, expected " << fragment;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("mount \"/data\""), std::string::npos) << e.what();
  }
}

TEST_F(MountsTest, ErrorMessages) {
  ExpectError([&] { PlanVolumeMount(Vol(false, Propagation::kPrivate, true), kNative); },
              Code::kInvalidArgument, "recursive read-only mount conflicts with RW mount");
  ExpectError([&] { PlanVolumeMount(Vol(true, Propagation::kHostToContainer, true), kNative); },
              Code::kInvalidArgument,
              "recursive read-only mount needs private propagation, got PROPAGATION_HOST_TO_CONTAINER");
  ExpectError([&] { PlanVolumeMount(Vol(true, Propagation::kBidirectional, true), kNative); },
              Code::kInvalidArgument, "recursive read-only mount needs private propagation");
  ExpectError([&] { PlanVolumeMount(Vol(true, Propagation::kPrivate, true), kNone); },
              Code::kFailedPrecondition, "RROUnsupported");
  auto rel = Vol(true);
  rel.host_path = "relative/dir";
  ExpectError([&] { PlanVolumeMount(rel, kNone); }, Code::kInvalidArgument,
              "host path \"relative/dir\" must be absolute");
  auto missing = Vol(true, Propagation::kPrivate, false, "missing");
  ExpectError([&] { PlanVolumeMount(missing, kNone); }, Code::kInvalidArgument,
              "host path \"" + (tmp_ / "missing") + "\": No such file or directory");
  auto empty = Vol(true);
  empty.host_path = "";
  ExpectError([&] { PlanVolumeMount(empty, kNone); }, Code::kInvalidArgument, "host path is empty");
  auto relc = Vol(true);
  relc.container_path = "data";
  EXPECT_THROW(PlanVolumeMount(relc, kNone), Error);
}

TEST_F(MountsTest, SymlinkedHostPathIsResolved) {
  auto p = PlanVolumeMount(Vol(true, Propagation::kPrivate, false, "link"), kNative);
  EXPECT_EQ(p.mount.source, tmp_ / "dir");
  EXPECT_EQ(p.resolved_host_path, tmp_ / "dir");
  EXPECT_EQ(p.mount.options.back(), "rro");
}

TEST_F(MountsTest, Json) {
  auto j = MountToJson(PlanVolumeMount(Vol(true), kNative).mount);
  EXPECT_EQ(j["destination"], "/data");
  EXPECT_EQ(j["type"], "bind");
  EXPECT_EQ(j["options"], nlohmann::json({"rbind", "rprivate", "rro"}));
}

}  // namespace
}  // namespace berth::oci
