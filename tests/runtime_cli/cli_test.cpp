// runtime::Cli against real runc (root; skips otherwise), plus the pure error-message parser.
#include "runtime/cli.h"

#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "support/support.h"

namespace bt = berth::testing;
using berth::runtime::Cli;
using berth::runtime::CliOptions;

TEST(RuntimeErrorMessage, TakesMsgOfJsonErrorLines) {
  std::string log =
      "{\"level\":\"info\",\"msg\":\"starting\",\"time\":\"x\"}\n"
      "{\"level\":\"error\",\"msg\":\"container does not exist\",\"time\":\"x\"}\n"
      "container does not exist\n";
  EXPECT_EQ(berth::runtime::RuntimeErrorMessage(log), "container does not exist");
  EXPECT_TRUE(berth::runtime::IsNotExistMessage("container does not exist"));
  EXPECT_FALSE(berth::runtime::IsNotExistMessage("permission denied"));
}

TEST(RuntimeErrorMessage, FallsBackToPlainText) {
  EXPECT_EQ(berth::runtime::RuntimeErrorMessage("crun: something broke\n"), "something broke");
  EXPECT_EQ(berth::runtime::RuntimeErrorMessage("a\nb\nc\nd\n"), "b; c; d");
  EXPECT_EQ(berth::runtime::RuntimeErrorMessage(""), "");
  EXPECT_EQ(berth::runtime::RuntimeErrorMessage("{not json\n"), "{not json");
}

TEST(RuntimeCli, ArgvCarriesGlobalOptions) {
  CliOptions o;
  o.binary = "/bin/true";
  o.root = "/run/x";
  o.systemd_cgroup = true;
  Cli cli(o);
  EXPECT_EQ(cli.name(), "true");
  EXPECT_EQ(cli.Argv({"state", "c1"}, "/l.json"),
            (std::vector<std::string>{"/bin/true", "--root", "/run/x", "--systemd-cgroup", "--log",
                                      "/l.json", "--log-format", "json", "state", "c1"}));
  o.binary = "no-such-runtime-binary";
  EXPECT_THROW(Cli{o}, berth::Error);
}

namespace {
std::atomic<int> n{0};

class RuntimeCliTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string why = bt::ContainerSkipReason(GetParam());
    if (!why.empty()) GTEST_SKIP() << why;
    dir_ = std::make_unique<bt::TempDir>("berth-cli");
    CliOptions o;
    o.binary = GetParam();
    o.root = *dir_ / "root";
    o.timeout = std::chrono::seconds(60);
    cli_ = std::make_unique<Cli>(o);
    id_ = "berth-cli-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
    bundle_ = *dir_ / "bundle";
    bt::MakeBusyboxRootfs(bundle_ + "/rootfs");
    auto r = berth::exec::Run({"runc", "spec", "--bundle", bundle_});
    ASSERT_TRUE(r.ok());
    auto spec = nlohmann::json::parse(berth::fs::ReadFile(bundle_ + "/config.json"));
    spec["process"]["terminal"] = false;
    spec["process"]["args"] = {"/bin/sleep", "1000"};
    spec["linux"]["cgroupsPath"] = "/berth-test/" + id_;
    bt::WriteFile(bundle_ + "/config.json", spec.dump());
  }
  void TearDown() override {
    if (cli_) cli_->Delete(id_, true);
  }
  std::unique_ptr<bt::TempDir> dir_;
  std::unique_ptr<Cli> cli_;
  std::string id_, bundle_;
};
}  // namespace

TEST_P(RuntimeCliTest, Lifecycle) {
  try {
    cli_->GetState(id_);
    FAIL() << "state of a missing container";
  } catch (const berth::Error& e) {
    EXPECT_EQ(e.code(), berth::Code::kNotFound) << e.what();
    EXPECT_NE(std::string(e.what()).find(GetParam() + " state " + id_), std::string::npos) << e.what();
  }
  cli_->Create(id_, bundle_, *dir_ / "pid");
  auto st = cli_->GetState(id_);
  EXPECT_EQ(st.status, "created");
  EXPECT_GT(st.pid, 0);
  EXPECT_EQ(st.bundle, bundle_);
  cli_->Start(id_);
  EXPECT_EQ(cli_->GetState(id_).status, "running");
  auto pids = cli_->Ps(id_);
  ASSERT_EQ(pids.size(), 1u);
  EXPECT_EQ(pids[0], st.pid);

  berth::runtime::ExecOptions eo;
  eo.process_json = R"({"args":["/bin/sh","-c","echo out; echo err >&2; exit 7"],"cwd":"/",
                        "env":["PATH=/bin"],"user":{"uid":0,"gid":0}})";
  auto r = cli_->Exec(id_, eo);
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");

  eo.process_json = R"({"args":["/bin/cat"],"cwd":"/","env":["PATH=/bin"],"user":{"uid":0,"gid":0}})";
  eo.stdin_data = "piped";
  r = cli_->Exec(id_, eo);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "piped");

  eo.stdin_data.clear();
  eo.process_json = R"({"args":["/bin/sleep","1000"],"cwd":"/","env":["PATH=/bin"],"user":{"uid":0,"gid":0}})";
  eo.timeout = std::chrono::milliseconds(300);
  r = cli_->Exec(id_, eo);
  EXPECT_TRUE(r.timed_out);
  // The timed-out process was killed: only init is left.
  for (;;) {
    if (cli_->Ps(id_).size() == 1u) break;
    ::usleep(20000);
  }

  eo.timeout = std::chrono::seconds(30);
  eo.process_json = R"({"args":["/no/such/binary"],"cwd":"/","env":["PATH=/bin"],"user":{"uid":0,"gid":0}})";
  EXPECT_THROW(cli_->Exec(id_, eo), berth::Error);

  cli_->Update(id_, R"({"memory":{"limit":67108864}})");
  EXPECT_THROW(cli_->Update(id_, "[]"), berth::Error);

  cli_->Kill(id_, SIGKILL);
  for (;;) {
    if (cli_->GetState(id_).status == "stopped") break;
    ::usleep(20000);
  }
  EXPECT_THROW(cli_->Kill(id_, 0), berth::Error);
  cli_->Delete(id_);
  EXPECT_THROW(cli_->GetState(id_), berth::Error);
  cli_->Delete(id_);  // missing: fine
}

TEST_P(RuntimeCliTest, ErrorsNameTheCommandAndTheRuntimeMessage) {
  try {
    cli_->Start(id_);
    FAIL();
  } catch (const berth::Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(GetParam() + " start " + id_ + ": "), std::string::npos) << m;
    EXPECT_EQ(e.code(), berth::Code::kNotFound) << m;
  }
  try {
    cli_->Create(id_, *dir_ / "no-bundle", "");
    FAIL();
  } catch (const berth::Error& e) {
    EXPECT_NE(std::string(e.what()).find(GetParam() + " create " + id_ + ": "), std::string::npos) << e.what();
  }
}

// crun runs through the hybrid-cgroup workaround on hybrid hosts (see runtime/hostcompat.h).
INSTANTIATE_TEST_SUITE_P(Runtimes, RuntimeCliTest, ::testing::Values("runc", "crun"));
