// berth-monitor against real runc: CRI log lines, exit codes, OOM kills, log reopen, and a
// monitor that outlives the process that started it. Needs root and runc; skips otherwise.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "monitor/client.h"
#include "monitor/crilog.h"
#include "runtime/cli.h"
#include "support/support.h"

namespace bt = berth::testing;
namespace mon = berth::monitor;
using berth::fs::ReadFile;

namespace {

std::atomic<int> counter{0};

class MonitorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why = bt::ContainerSkipReason("runc");
    if (!why.empty()) GTEST_SKIP() << why;
    if (!berth::fs::IsDir("/sys/fs/cgroup/memory") && !berth::fs::Exists("/sys/fs/cgroup/cgroup.controllers"))
      GTEST_SKIP() << "no memory cgroup controller";
    dir_ = std::make_unique<bt::TempDir>("berth-monitor");
    runc_ = *berth::exec::LookPath("runc");
    root_ = *dir_ / "runc-root";
    id_ = "berth-mon-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    bundle_ = *dir_ / "bundle";
    berth::fs::MkdirAll(bundle_ + "/rootfs");
    bt::MakeBusyboxRootfs(bundle_ + "/rootfs");
  }
  void TearDown() override {
    if (!id_.empty() && dir_) berth::exec::Run({runc_, "--root", root_, "delete", "--force", id_});
  }

  // A config.json from `runc spec`, running `sh -c script`.
  void WriteSpec(const std::string& script, long memory_limit = 0) {
    auto r = berth::exec::Run({runc_, "spec", "--bundle", bundle_});
    ASSERT_TRUE(r.ok()) << berth::exec::Describe({"runc", "spec"}, r);
    auto spec = nlohmann::json::parse(ReadFile(bundle_ + "/config.json"));
    spec["process"]["terminal"] = false;
    spec["process"]["args"] = {"/bin/sh", "-c", script};
    spec["root"]["readonly"] = false;
    spec["linux"]["cgroupsPath"] = "/berth-test/" + id_;
    if (memory_limit > 0) {
      spec["linux"]["resources"]["memory"]["limit"] = memory_limit;
      if (berth::fs::Exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"))
        spec["linux"]["resources"]["memory"]["swap"] = memory_limit;
    }
    bt::WriteFile(bundle_ + "/config.json", spec.dump());
  }

  mon::SpawnOptions Options(long max_line = 64) {
    mon::SpawnOptions o;
    o.monitor_path = BERTH_MONITOR_PATH;
    o.id = id_;
    o.bundle = bundle_;
    o.runtime_log = bundle_ + "/runtime.log";
    o.runtime_argv = {runc_, "--root", root_, "--log", o.runtime_log, "--log-format", "json"};
    o.log_path = *dir_ / "container.log";
    o.max_line = max_line;
    return o;
  }

  void Start() {
    auto r = berth::exec::Run({runc_, "--root", root_, "start", id_});
    ASSERT_TRUE(r.ok()) << berth::exec::Describe({"runc", "start", id_}, r);
  }

  mon::ExitInfo WaitExit(const mon::Spawned& s) {
    EXPECT_TRUE(mon::WaitMonitor(s.monitor_pid, id_, std::chrono::minutes(2)));
    auto info = mon::ReadExitFile(bundle_ + "/exit");
    EXPECT_TRUE(info.has_value());
    return info.value_or(mon::ExitInfo{});
  }

  std::vector<mon::LogEntry> Entries(const std::string& text, mon::Stream stream) {
    std::vector<mon::LogEntry> out;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      EXPECT_NE(nl, std::string::npos) << "log ends without newline";
      if (nl == std::string::npos) break;
      mon::LogEntry e;
      std::string_view line(text.data() + pos, nl - pos);
      EXPECT_EQ(mon::ParseLogLine(line, &e), "") << line;
      if (e.stream == stream) out.push_back(e);
      pos = nl + 1;
    }
    return out;
  }

  static std::string Rss(int pid) {
    std::string status = ReadFile("/proc/" + std::to_string(pid) + "/status");
    size_t p = status.find("VmRSS:");
    if (p == std::string::npos) return "?";
    return status.substr(p + 6, status.find('\n', p) - p - 6);
  }

  // Polls (no time limit of its own: ctest's timeout bounds the test) until pred() holds.
  template <typename F>
  static void Until(F pred) {
    while (!pred()) ::usleep(20000);
  }

  std::unique_ptr<bt::TempDir> dir_;
  std::string runc_, root_, id_, bundle_;
};

TEST_F(MonitorTest, CopiesOutputInCriFormatAndRecordsExitCode) {
  std::string long_line(150, 'x');
  WriteSpec("echo hello; echo oops >&2; echo " + long_line +
            "; trap '' TERM; sleep 0.2; printf no-newline; exit 3");
  auto s = mon::Spawn(Options(64));
  EXPECT_GT(s.container_pid, 0);
  ASSERT_TRUE(mon::IsMonitorAlive(s.monitor_pid, id_));
  EXPECT_FALSE(mon::IsMonitorAlive(s.monitor_pid, id_ + "-other"));
  std::printf("berth-monitor pid %d VmRSS:%s\n", s.monitor_pid, Rss(s.monitor_pid).c_str());
  Start();
  auto info = WaitExit(s);
  EXPECT_EQ(info.exit_code, 3);
  EXPECT_EQ(info.signal, 0);
  EXPECT_FALSE(info.oom_killed);
  EXPECT_GT(info.exited_at_ns, 0);
  EXPECT_EQ(info.error, "");

  std::string log = ReadFile(Options().log_path);
  auto out = Entries(log, mon::Stream::kStdout);
  ASSERT_EQ(out.size(), 5u) << log;
  EXPECT_EQ(out[0].text, "hello");
  EXPECT_FALSE(out[0].partial);
  EXPECT_EQ(out[1].text, std::string(64, 'x'));
  EXPECT_TRUE(out[1].partial);
  EXPECT_EQ(out[2].text, std::string(64, 'x'));
  EXPECT_TRUE(out[2].partial);
  EXPECT_EQ(out[3].text, std::string(22, 'x'));
  EXPECT_FALSE(out[3].partial);
  EXPECT_EQ(out[4].text, "no-newline");
  EXPECT_TRUE(out[4].partial);  // the stream closed without a newline: P, as containerd
  auto err = Entries(log, mon::Stream::kStderr);
  ASSERT_EQ(err.size(), 1u) << log;
  EXPECT_EQ(err[0].text, "oops");
}

TEST_F(MonitorTest, RecordsTheExitSignal) {
  WriteSpec("sleep 1000");
  auto s = mon::Spawn(Options());
  Start();
  auto r = berth::exec::Run({runc_, "--root", root_, "kill", id_, "KILL"});
  ASSERT_TRUE(r.ok()) << berth::exec::Describe({"runc", "kill"}, r);
  auto info = WaitExit(s);
  EXPECT_EQ(info.exit_code, 137);
  EXPECT_EQ(info.signal, 9);
  EXPECT_FALSE(info.oom_killed);
}

TEST_F(MonitorTest, RecordsOomKill) {
  WriteSpec("head -c 200m /dev/zero | tail", 32L << 20);
  auto s = mon::Spawn(Options());
  Start();
  auto info = WaitExit(s);
  EXPECT_EQ(info.exit_code, 137);
  EXPECT_TRUE(info.oom_killed);
}

TEST_F(MonitorTest, ReopensTheLogOnRequest) {
  WriteSpec("echo one; while [ ! -e /go ]; do sleep 0.05; done; echo two");
  auto o = Options();
  auto s = mon::Spawn(o);
  Start();
  Until([&] { return ReadFile(o.log_path).find(" one\n") != std::string::npos; });
  ASSERT_EQ(::rename(o.log_path.c_str(), (o.log_path + ".1").c_str()), 0);
  mon::ReopenLog(s.monitor_pid, id_);
  Until([&] { return berth::fs::Exists(o.log_path); });
  bt::WriteFile(bundle_ + "/rootfs/go", "");
  auto info = WaitExit(s);
  EXPECT_EQ(info.exit_code, 0);
  std::string old_log = ReadFile(o.log_path + ".1"), new_log = ReadFile(o.log_path);
  EXPECT_NE(old_log.find("stdout F one\n"), std::string::npos) << old_log;
  EXPECT_EQ(old_log.find("two"), std::string::npos) << old_log;
  EXPECT_NE(new_log.find("stdout F two\n"), std::string::npos) << new_log;
  EXPECT_EQ(new_log.find("one"), std::string::npos) << new_log;
  EXPECT_THROW(mon::ReopenLog(s.monitor_pid, id_), berth::Error);
}

TEST_F(MonitorTest, SurvivesTheDeathOfItsParent) {
  WriteSpec("while [ ! -e /go ]; do sleep 0.05; done; echo done; exit 5");
  auto o = Options();
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Stands in for berthd: spawns the monitor, hands the pids over and dies.
    mon::Spawned s{};
    try {
      s = mon::Spawn(o);
    } catch (...) {
    }
    (void)!::write(pipefd[1], &s, sizeof s);
    ::_exit(0);
  }
  ::close(pipefd[1]);
  mon::Spawned s{};
  ASSERT_EQ(::read(pipefd[0], &s, sizeof s), static_cast<ssize_t>(sizeof s));
  ::close(pipefd[0]);
  int st;
  ASSERT_EQ(::waitpid(child, &st, 0), child);
  ASSERT_GT(s.monitor_pid, 0);
  EXPECT_TRUE(mon::IsMonitorAlive(s.monitor_pid, id_));
  Start();
  bt::WriteFile(bundle_ + "/rootfs/go", "");
  auto info = WaitExit(s);
  EXPECT_EQ(info.exit_code, 5);
  EXPECT_NE(ReadFile(o.log_path).find("stdout F done\n"), std::string::npos);
}

TEST_F(MonitorTest, ReportsTheRuntimeErrorWhenCreateFails) {
  WriteSpec("true");
  auto spec = nlohmann::json::parse(ReadFile(bundle_ + "/config.json"));
  spec["process"]["args"] = {"/does/not/exist"};
  bt::WriteFile(bundle_ + "/config.json", spec.dump());
  try {
    mon::Spawn(Options());
    FAIL() << "create succeeded";
  } catch (const berth::Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("container " + id_), std::string::npos) << msg;
    EXPECT_NE(msg.find("create` exited with status"), std::string::npos) << msg;
    EXPECT_NE(msg.find("/does/not/exist"), std::string::npos) << msg;
  }
}

TEST_F(MonitorTest, RefusesBadArguments) {
  auto o = Options();
  o.runtime_argv = {"/nonexistent/runtime"};
  WriteSpec("true");
  try {
    mon::Spawn(o);
    FAIL() << "create succeeded";
  } catch (const berth::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/runtime"), std::string::npos) << e.what();
  }
}

TEST_F(MonitorTest, TerminalOutputAndStdin) {
  WriteSpec("echo hello from tty; read line; echo got $line; exit 6");
  auto spec = nlohmann::json::parse(ReadFile(bundle_ + "/config.json"));
  spec["process"]["terminal"] = true;
  bt::WriteFile(bundle_ + "/config.json", spec.dump());
  auto o = Options(1024);
  o.tty = true;
  o.stdin_fifo = bundle_ + "/stdin";
  auto s = mon::Spawn(o);
  Start();
  Until([&] { return ReadFile(o.log_path).find("hello from tty") != std::string::npos; });
  {
    int fd = ::open(o.stdin_fifo.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "ping\n", 5), 5);
    ::close(fd);
  }
  auto info = WaitExit(s);
  EXPECT_EQ(info.exit_code, 6);
  std::string log = ReadFile(o.log_path);
  EXPECT_NE(log.find(" stdout F hello from tty\r\n"), std::string::npos) << log;
  EXPECT_NE(log.find("got ping"), std::string::npos) << log;
  EXPECT_EQ(log.find(" stderr "), std::string::npos) << log;
}

// crun (through runtime::Cli::Argv, i.e. the hybrid-cgroup wrapper on hybrid hosts).
TEST_F(MonitorTest, WorksWithCrun) {
  std::string why = bt::ContainerSkipReason("crun");
  if (!why.empty()) GTEST_SKIP() << why;
  WriteSpec("echo via crun; exit 2");
  berth::runtime::CliOptions co;
  co.binary = "crun";
  co.root = *dir_ / "crun-root";
  berth::runtime::Cli crun(co);
  auto o = Options();
  o.runtime_argv = crun.Argv({}, o.runtime_log);
  auto s = mon::Spawn(o);
  crun.Start(id_);
  auto info = WaitExit(s);
  crun.Delete(id_, true);
  EXPECT_EQ(info.exit_code, 2);
  EXPECT_NE(ReadFile(o.log_path).find(" stdout F via crun\n"), std::string::npos);
}

TEST(PauseTest, ExitsZeroOnSigterm) {
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::execl(BERTH_PAUSE_PATH, BERTH_PAUSE_PATH, static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Wait until it sleeps in sigsuspend (state S), then stop it.
  for (;;) {
    std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
    size_t rp = stat.rfind(')');
    if (rp != std::string::npos && stat.size() > rp + 2 && stat[rp + 2] == 'S') {
      std::string wchan = ReadFile("/proc/" + std::to_string(pid) + "/wchan");
      if (wchan.find("sigsuspend") != std::string::npos || wchan.find("pause") != std::string::npos ||
          wchan == "0" || !wchan.empty())
        break;
    }
    ::usleep(10000);
  }
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  int st = 0;
  ASSERT_EQ(::waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0);
}

}  // namespace
