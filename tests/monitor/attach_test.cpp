// berth-monitor's attach socket against real runc (monitor/attach.h): stdin kept open between
// clients, stdin_once, two clients at once, a terminal and its size, the socket's permissions
// through a path longer than a unix socket address, and the monitor's RSS with no client
// attached. Needs root and runc; skips otherwise.
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "monitor/attach.h"
#include "monitor/attach_client.h"
#include "monitor/client.h"
#include "support/support.h"

namespace bt = berth::testing;
namespace mon = berth::monitor;
using berth::fs::ReadFile;

namespace {

std::atomic<int> counter{0};

// Reads `fd` until its text holds `want` (or end of file, or 20 s); what it read.
std::string ReadUntil(int fd, const std::string& want) {
  std::string got;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (want.empty() || got.find(want) == std::string::npos) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    deadline - std::chrono::steady_clock::now())
                                    .count());
    if (left <= 0) break;
    struct pollfd p = {fd, POLLIN, 0};
    if (::poll(&p, 1, left) <= 0) break;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

long RssKb(int pid) {
  std::string status = ReadFile("/proc/" + std::to_string(pid) + "/status");
  size_t p = status.find("VmRSS:");
  return p == std::string::npos ? -1 : std::atol(status.c_str() + p + 6);
}

class MonitorAttachTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why = bt::ContainerSkipReason("runc");
    if (!why.empty()) GTEST_SKIP() << why;
    dir_ = std::make_unique<bt::TempDir>("berth-attach");
    runc_ = *berth::exec::LookPath("runc");
    root_ = *dir_ / "runc-root";
    id_ = "berth-attach-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    // Longer than a unix socket address can be: the socket is reached through /proc/self/fd.
    bundle_ = *dir_ / ("bundle-" + std::string(100, 'b'));
    berth::fs::MkdirAll(bundle_ + "/rootfs");
    bt::MakeBusyboxRootfs(bundle_ + "/rootfs");
  }
  void TearDown() override {
    if (!id_.empty() && dir_) berth::exec::Run({runc_, "--root", root_, "delete", "--force", id_});
  }

  mon::Spawned Spawn(const std::string& script, bool tty, bool keep_stdin, bool once) {
    auto r = berth::exec::Run({runc_, "spec", "--bundle", bundle_});
    EXPECT_TRUE(r.ok());
    auto spec = nlohmann::json::parse(ReadFile(bundle_ + "/config.json"));
    spec["process"]["terminal"] = tty;
    spec["process"]["args"] = {"/bin/sh", "-c", script};
    spec["root"]["readonly"] = false;
    spec["linux"]["cgroupsPath"] = "/berth-test/" + id_;
    bt::WriteFile(bundle_ + "/config.json", spec.dump());
    mon::SpawnOptions o;
    o.monitor_path = BERTH_MONITOR_PATH;
    o.id = id_;
    o.bundle = bundle_;
    o.runtime_log = bundle_ + "/runtime.log";
    o.runtime_argv = {runc_, "--root", root_, "--log", o.runtime_log, "--log-format", "json"};
    o.log_path = *dir_ / "container.log";
    o.start = true;
    o.tty = tty;
    if (tty) o.console_socket = *dir_ / "console.sock";
    o.attach_socket = socket_ = mon::AttachSocketPath(bundle_);
    o.keep_stdin = keep_stdin;
    o.stdin_once = once;
    return mon::Spawn(o);
  }

  std::string Log() { return ReadFile(*dir_ / "container.log"); }

  std::unique_ptr<bt::TempDir> dir_;
  std::string runc_, root_, id_, bundle_, socket_;
};

TEST_F(MonitorAttachTest, StdinStaysOpenBetweenClients) {
  auto s = Spawn("cat", false, true, false);
  struct stat st;
  ASSERT_EQ(::stat(socket_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((bundle_ + "/attach").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  long idle = RssKb(s.monitor_pid);
  RecordProperty("monitor_rss_kb_idle", std::to_string(idle));
  std::cout << "berth-monitor VmRSS with no client attached: " << idle << " kB\n";
  EXPECT_LT(idle, 1024);
  for (const char* word : {"first\n", "second\n"}) {
    auto c = mon::AttachConnection::Open(socket_, true, true, true);
    EXPECT_FALSE(c->tty());
    int in = c->TakeStdin(), out = c->TakeStdout(), err = c->TakeStderr();
    ASSERT_GE(in, 0);
    ASSERT_EQ(::write(in, word, std::strlen(word)), static_cast<ssize_t>(std::strlen(word)));
    EXPECT_EQ(ReadUntil(out, word), word);
    ::close(in);  // without stdin_once: the client is let go, the container keeps its stdin
    c->Wait();
    EXPECT_EQ(ReadUntil(out, ""), "");
    ::close(out);
    ::close(err);
  }
  std::cout << "berth-monitor VmRSS after two clients came and went: " << RssKb(s.monitor_pid)
            << " kB\n";
  EXPECT_NE(Log().find(" stdout F second\n"), std::string::npos) << Log();
  // Two clients at once see the same output; the container's end ends both.
  auto a = mon::AttachConnection::Open(socket_, false, true, false);
  auto b = mon::AttachConnection::Open(socket_, true, true, false);
  int a_out = a->TakeStdout(), b_out = b->TakeStdout(), b_in = b->TakeStdin();
  ASSERT_EQ(::write(b_in, "both\n", 5), 5);
  EXPECT_EQ(ReadUntil(a_out, "both\n"), "both\n");
  EXPECT_EQ(ReadUntil(b_out, "both\n"), "both\n");
  berth::exec::Run({runc_, "--root", root_, "kill", id_, "KILL"});
  a->Wait();
  b->Wait();
  EXPECT_TRUE(mon::WaitMonitor(s.monitor_pid, id_, std::chrono::seconds(30)));
  EXPECT_NE(::access(socket_.c_str(), F_OK), 0) << "the socket outlived its monitor";
  for (int fd : {a_out, b_out, b_in}) ::close(fd);
}

TEST_F(MonitorAttachTest, StdinOnceClosesTheContainersStdin) {
  auto s = Spawn("cat; echo done", false, true, true);
  auto c = mon::AttachConnection::Open(socket_, true, true, false);
  int in = c->TakeStdin(), out = c->TakeStdout();
  ASSERT_EQ(::write(in, "x\n", 2), 2);
  ::close(in);
  EXPECT_EQ(ReadUntil(out, ""), "x\ndone\n");
  c->Wait();
  ::close(out);
  EXPECT_TRUE(mon::WaitMonitor(s.monitor_pid, id_, std::chrono::seconds(30)));
  auto info = mon::ReadExitFile(bundle_ + "/exit");
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->exit_code, 0);
}

TEST_F(MonitorAttachTest, TerminalSizeAndInput) {
  auto s = Spawn("while read l; do stty size; done", true, true, false);
  auto c = mon::AttachConnection::Open(socket_, true, true, false);
  EXPECT_TRUE(c->tty());
  int in = c->TakeStdin(), out = c->TakeStdout();
  c->Resize(77, 33);
  ASSERT_EQ(::write(in, "\n", 1), 1);
  EXPECT_NE(ReadUntil(out, "33 77").find("33 77\r\n"), std::string::npos);
  ::close(in);
  c->Wait();
  ::close(out);
  EXPECT_NE(Log().find("33 77"), std::string::npos) << Log();
  EXPECT_EQ(::kill(s.container_pid, 0), 0) << "the container ended with the client";
  berth::exec::Run({runc_, "--root", root_, "kill", id_, "KILL"});
  EXPECT_TRUE(mon::WaitMonitor(s.monitor_pid, id_, std::chrono::seconds(30)));
}

// stdin_once: a client that goes away with its stdin open closes the container's stdin too.
TEST_F(MonitorAttachTest, StdinOnceClientGoingAwayClosesStdin) {
  auto s = Spawn("cat; echo done", false, true, true);
  auto watcher = mon::AttachConnection::Open(socket_, false, true, false);
  int watched = watcher->TakeStdout();
  {
    auto c = mon::AttachConnection::Open(socket_, true, false, false);
    int in = c->TakeStdin();
    ASSERT_EQ(::write(in, "gone\n", 5), 5);
    EXPECT_EQ(ReadUntil(watched, "gone\n"), "gone\n");
    c->Cancel();  // the connection closes; the stdin pipe stays open here
    c.reset();
    EXPECT_EQ(ReadUntil(watched, ""), "done\n");
    ::close(in);
  }
  watcher->Wait();
  ::close(watched);
  EXPECT_TRUE(mon::WaitMonitor(s.monitor_pid, id_, std::chrono::seconds(30)));
}

// stdin_once on a terminal: the end of the client's stdin is the end-of-file character.
TEST_F(MonitorAttachTest, StdinOnceOnATerminal) {
  auto s = Spawn("cat; echo done", true, true, true);
  auto c = mon::AttachConnection::Open(socket_, true, true, false);
  int in = c->TakeStdin(), out = c->TakeStdout();
  ASSERT_EQ(::write(in, "x\n", 2), 2);
  EXPECT_NE(ReadUntil(out, "x\r\nx\r\n").find("x\r\nx\r\n"), std::string::npos);  // echo, cat
  ::close(in);
  EXPECT_NE(ReadUntil(out, "done").find("done"), std::string::npos);
  c->Wait();
  ::close(out);
  EXPECT_TRUE(mon::WaitMonitor(s.monitor_pid, id_, std::chrono::seconds(30)));
}

// A client that does not read is let go; the container and its log go on without waiting.
TEST_F(MonitorAttachTest, ASlowClientIsLetGo) {
  auto s = Spawn("while true; do echo 0123456789abcdef0123456789abcdef0123456789abcdef; done",
                 false, false, false);
  auto c = mon::AttachConnection::Open(socket_, false, true, false);
  int out = c->TakeStdout();
  try {
    c->Wait();
    ADD_FAILURE() << "a client that never reads stayed attached";
  } catch (const berth::Error& e) {
    EXPECT_NE(std::string(e.what()).find("behind"), std::string::npos) << e.what();
  }
  ::close(out);
  size_t before = ReadFile(*dir_ / "container.log").size();
  ::usleep(300000);
  EXPECT_GT(ReadFile(*dir_ / "container.log").size(), before) << "the log stopped";
  berth::exec::Run({runc_, "--root", root_, "kill", id_, "KILL"});
  EXPECT_TRUE(mon::WaitMonitor(s.monitor_pid, id_, std::chrono::seconds(30)));
}

TEST(AttachMessage, Parses) {
  auto m = mon::ParseAttachMessage("attach 1 0 1");
  EXPECT_EQ(m.kind, "attach");
  EXPECT_TRUE(m.in && !m.out && m.err);
  m = mon::ParseAttachMessage("resize 120 40");
  EXPECT_EQ(m.kind, "resize");
  EXPECT_EQ(m.width, 120u);
  EXPECT_EQ(m.height, 40u);
  for (const char* bad : {"", "attach", "attach 1 1", "attach 2 1 1", "resize 65536 1",
                          "resize -1 2", "resize 1 2 3", "hello"})
    EXPECT_EQ(mon::ParseAttachMessage(bad).kind, "") << bad;
}

TEST_F(MonitorAttachTest, NoMonitorIsFailedPrecondition) {
  try {
    mon::AttachConnection::Open(*dir_ / "nosuch/sock", false, true, false);
    FAIL() << "attached to nothing";
  } catch (const berth::Error& e) {
    EXPECT_EQ(e.code(), berth::Code::kFailedPrecondition) << e.what();
  }
}

}  // namespace
