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
  o.hybrid_cgroup_workaround = false;  // /bin/true runs no probe container: the launcher would wrap it
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

// DeleteExited of a container whose init has exited: runc's own delete done in process (state
// directory and cgroups gone, leftover processes killed, as `runc delete` does); crun, a running
// container and a poststop hook go through the runtime's `delete --force`.
TEST_P(RuntimeCliTest, DeleteExited) {
  auto spec = nlohmann::json::parse(berth::fs::ReadFile(bundle_ + "/config.json"));
  // No PID namespace of its own: the background sleep outlives the init, in its cgroups.
  auto& nss = spec["linux"]["namespaces"];
  for (size_t i = 0; i < nss.size(); ++i) {
    if (nss[i]["type"] == "pid") {
      nss.erase(i);
      break;
    }
  }
  std::string leftover = *dir_ / "leftover.pid";
  nlohmann::json out = {{"destination", "/out"}, {"type", "bind"}, {"source", dir_->path()}};
  out["options"] = {"rbind"};
  spec["mounts"].push_back(out);
  spec["process"]["args"] = {"/bin/sh", "-c", "sleep 1000 & echo $! > /out/leftover.pid; exit 0"};
  bt::WriteFile(bundle_ + "/config.json", spec.dump());
  cli_->Create(id_, bundle_, *dir_ / "pid");
  std::string state_file = *dir_ / ("root/" + id_ + "/state.json");
  std::vector<std::string> cgroups;
  if (GetParam() == "runc") {
    auto st = nlohmann::json::parse(berth::fs::ReadFile(state_file));
    for (const auto& [k, v] : st["cgroup_paths"].items()) cgroups.push_back(v.get<std::string>());
    ASSERT_FALSE(cgroups.empty());
    for (const auto& c : cgroups) EXPECT_TRUE(berth::fs::Exists(c)) << c;
  }
  cli_->Start(id_);
  for (int i = 0; i < 500 && cli_->GetState(id_).status != "stopped"; ++i) ::usleep(10000);
  ASSERT_EQ(cli_->GetState(id_).status, "stopped");
  std::string pid_text;
  for (int i = 0; i < 500 && pid_text.empty(); ++i) {
    if (berth::fs::Exists(leftover)) pid_text = berth::fs::ReadFile(leftover);
    if (pid_text.empty()) ::usleep(10000);
  }
  // The pid as the container saw it is the host's: no PID namespace of its own.
  int sleeper = std::atoi(pid_text.c_str());
  ASSERT_GT(sleeper, 0) << pid_text;
  ASSERT_EQ(::kill(sleeper, 0), 0);

  EXPECT_EQ(cli_->DeleteExited(id_), GetParam() == "runc");
  EXPECT_THROW(cli_->GetState(id_), berth::Error);
  EXPECT_FALSE(berth::fs::Exists(*dir_ / ("root/" + id_)));
  for (const auto& c : cgroups) EXPECT_FALSE(berth::fs::Exists(c)) << c;
  bool gone = false;
  for (int i = 0; i < 500 && !gone; ++i) {
    std::string stat;
    try {
      stat = berth::fs::ReadFile("/proc/" + std::to_string(sleeper) + "/stat");
    } catch (const berth::Error&) {
    }
    gone = stat.empty() || stat.find(") Z") != std::string::npos;
    if (!gone) ::usleep(10000);
  }
  EXPECT_TRUE(gone) << "the leftover process " << sleeper << " still runs";
  // Missing: nothing to do (crun says so, and that counts as deleted).
  EXPECT_EQ(cli_->DeleteExited(id_), GetParam() == "runc");
}

TEST_P(RuntimeCliTest, DeleteExitedFallsBackToTheRuntime) {
  auto spec = nlohmann::json::parse(berth::fs::ReadFile(bundle_ + "/config.json"));
  std::string marker = *dir_ / "poststop-ran";
  spec["hooks"]["poststop"] = {{{"path", "/bin/sh"}, {"args", {"sh", "-c", "touch " + marker}}}};
  bt::WriteFile(bundle_ + "/config.json", spec.dump());
  // Running: deleted with --force by the runtime.
  cli_->Create(id_, bundle_, *dir_ / "pid");
  cli_->Start(id_);
  EXPECT_FALSE(cli_->DeleteExited(id_));
  EXPECT_THROW(cli_->GetState(id_), berth::Error);
  EXPECT_TRUE(berth::fs::Exists(marker)) << "the runtime's delete runs the poststop hook";
  // Stopped with a poststop hook: the runtime runs it.
  ::unlink(marker.c_str());
  cli_->Create(id_, bundle_, *dir_ / "pid");
  cli_->Start(id_);
  cli_->Kill(id_, SIGKILL);
  for (int i = 0; i < 500 && cli_->GetState(id_).status != "stopped"; ++i) ::usleep(10000);
  EXPECT_FALSE(cli_->DeleteExited(id_));
  EXPECT_THROW(cli_->GetState(id_), berth::Error);
  EXPECT_TRUE(berth::fs::Exists(marker));
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
