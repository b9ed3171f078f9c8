// berthctl pull's progress display against a real berthd pulling from a slow registry (each
// blob's body spread over two seconds): on a terminal (a pty made by script(1)) one bar per
// layer, redrawn in place; with stderr not a terminal, plain lines; stdout keeps the result only.
#include "berthd_proc.h"  // first: runtime/v1/api.grpc.pb.h names collide with <signal.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/exec.h"
#include "image_support.h"
#include "support/support.h"

namespace {

using berth::testing::TempDir;

std::string Short(const std::string& digest) { return digest.substr(digest.find(':') + 1, 12); }

std::string Quote(const std::string& s) { return "'" + s + "'"; }

class BerthctlProgress : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!berth::testing::IsRoot()) GTEST_SKIP() << "berthd needs root to start";
    if (std::string why = berth::testing::RegistrySkipReason(); !why.empty()) GTEST_SKIP() << why;
    if (!berth::exec::LookPath("script")) GTEST_SKIP() << "script(1) (util-linux) is not installed";
    dir_ = std::make_unique<TempDir>("berth-ctl-progress");
    reg_ = std::make_unique<berth::testing::LocalRegistry>();
    berth::testing::TokenProxy::Options o;
    o.require_token = false;
    o.blob_body_ms = 2000;
    proxy_ = std::make_unique<berth::testing::TokenProxy>(reg_->host(), o);
    berthd_ = std::make_unique<berth::testing::BerthdProc>(*dir_ / "berthd", BERTHD_PATH,
                                                           BERTH_MONITOR_PATH, BERTH_PAUSE_PATH);
    std::string why = berthd_->Start();
    ASSERT_EQ(why, "");
  }
  void TearDown() override {
    berthd_.reset();
    proxy_.reset();
    reg_.reset();
    dir_.reset();  // mounts below are detached first
  }
  // An image of its own (3 layers) pushed as test/<id>:v1; the reference through the proxy.
  std::string Push(const std::string& id, berth::testing::TestImage* img) {
    berth::testing::TestImageOptions o;
    o.id = id;
    *img = berth::testing::BuildTestImage(*dir_ / id, o);
    berth::testing::PushImage(*img, reg_->host(), "test/" + id + ":v1");
    return proxy_->host() + "/test/" + id + ":v1";
  }
  std::vector<std::string> Argv(const std::string& ref) {
    return {BERTHCTL_PATH, "--runtime-endpoint", "unix://" + berthd_->socket(), "pull", ref};
  }
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<berth::testing::LocalRegistry> reg_;
  std::unique_ptr<berth::testing::TokenProxy> proxy_;
  std::unique_ptr<berth::testing::BerthdProc> berthd_;
};

berth::exec::Options Long() {
  berth::exec::Options o;
  o.timeout = std::chrono::seconds(120);
  return o;
}

TEST_F(BerthctlProgress, BarsPerLayerOnATerminal) {
  berth::testing::TestImage img;
  std::string ref = Push("ctl-tty", &img);
  std::string cmd;
  for (const auto& a : Argv(ref)) cmd += Quote(a) + " ";
  // script runs the command on a new pty (stdout and stderr both) and copies what it writes.
  auto r = berth::exec::Run({"script", "-qefc", cmd, "/dev/null"}, Long());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << berthd_->Log();
  EXPECT_NE(r.out.find("Image is up to date for " + img.config_digest), std::string::npos) << r.out;
  for (const auto& d : img.layer_digests)  // "\e[2K<12 hex> [====    ] 0.1 MiB / 0.1 MiB pulling"
    EXPECT_NE(r.out.find("\033[2K" + Short(d) + " ["), std::string::npos) << d << "\n" << r.out;
  EXPECT_NE(r.out.find("] "), std::string::npos) << r.out;
  // Redrawn in place: the cursor goes back up over the layers' bars.
  EXPECT_NE(r.out.find("\033[" + std::to_string(img.layer_digests.size()) + "A"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find(" pulling"), std::string::npos) << r.out;
}

TEST_F(BerthctlProgress, PlainLinesWhenNotATerminal) {
  berth::testing::TestImage img;
  std::string ref = Push("ctl-plain", &img);
  auto r = berth::exec::Run(Argv(ref), Long());  // stdout and stderr are pipes
  ASSERT_EQ(r.exit_code, 0) << r.err << berthd_->Log();
  EXPECT_EQ(r.out, "Image is up to date for " + img.config_digest + "\n");
  EXPECT_EQ(r.err.find('\033'), std::string::npos) << r.err;
  for (const auto& d : img.layer_digests)  // "<12 hex>: pulling (0.1 MiB)"
    EXPECT_NE(r.err.find(Short(d) + ": pulling ("), std::string::npos) << d << "\n" << r.err;
}

}  // namespace
