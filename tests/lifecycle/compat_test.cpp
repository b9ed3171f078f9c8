// Pure logic of lifecycle/compat.h: ID prefixes as containerd's truncindex, the host-network
// hostname rule, and the stop wait's cancellation.
#include "runtime/v1/api.pb.h"  // first: its enum Signal names collide with <signal.h> macros

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <memory>

#include <gtest/gtest.h>

#include "lifecycle/compat.h"
#include "monitor/client.h"

namespace {

using berth::Code;
using berth::Error;
using berth::lifecycle::LookupIdPrefix;

std::map<std::string, std::shared_ptr<int>> Ids() {
  return {{"abc123", std::make_shared<int>(1)},
          {"abd456", std::make_shared<int>(2)},
          {"abd789", std::make_shared<int>(3)},
          {"ff", std::make_shared<int>(4)},
          {"ffee", std::make_shared<int>(5)}};
}

TEST(LookupIdPrefix, ExactUniqueMissingAndAmbiguous) {
  auto m = Ids();
  EXPECT_EQ(*LookupIdPrefix(m, "abc123", "containers"), 1);
  EXPECT_EQ(*LookupIdPrefix(m, "abc", "containers"), 1);
  EXPECT_EQ(*LookupIdPrefix(m, "abd4", "containers"), 2);
  EXPECT_EQ(*LookupIdPrefix(m, "ff", "containers"), 4);  // an exact ID wins over longer ones
  EXPECT_EQ(LookupIdPrefix(m, "abe", "containers"), nullptr);
  EXPECT_EQ(LookupIdPrefix(m, "", "containers"), nullptr);
  EXPECT_EQ(LookupIdPrefix(m, "abc1234", "containers"), nullptr);
  try {
    LookupIdPrefix(m, "ab", "pod sandboxes");
    ADD_FAILURE() << "ambiguous prefix accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    EXPECT_STREQ(e.what(), "ID prefix \"ab\" is ambiguous: it matches 3 pod sandboxes");
  }
}

TEST(CheckHostNetworkHostname, OnlyHostNetworkWithAHostnameIsRefused) {
  runtime::v1::PodSandboxConfig c;
  c.set_hostname("custom");
  EXPECT_NO_THROW(berth::lifecycle::CheckHostNetworkHostname(c));
  c.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_network(
      runtime::v1::NODE);
  try {
    berth::lifecycle::CheckHostNetworkHostname(c);
    ADD_FAILURE() << "hostname on a host-network pod accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find(
                  "hostname \"custom\": unable to set hostname without a private UTS namespace"),
              std::string::npos)
        << e.what();
  }
  c.clear_hostname();
  EXPECT_NO_THROW(berth::lifecycle::CheckHostNetworkHostname(c));
}

// A stand-in monitor: a shell whose argv reads "berth-monitor -c 'sleep 30' --id <id>".
pid_t FakeMonitor(const std::string& id) {
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "berth-monitor", "-c", "sleep 30", "--id", id.c_str(), nullptr);
    _exit(127);
  }
  for (int i = 0; i < 200 && !berth::monitor::IsMonitorAlive(pid, id); ++i) usleep(10000);
  return pid;
}

TEST(WaitForStop, ExitedTimedOutCancelled) {
  using berth::lifecycle::StopWait;
  using berth::lifecycle::WaitForStop;
  EXPECT_EQ(WaitForStop(0, "x", std::chrono::seconds(5), nullptr),
            StopWait::kExited);  // no monitor
  pid_t pid = FakeMonitor("stop-test");
  ASSERT_TRUE(berth::monitor::IsMonitorAlive(pid, "stop-test"));
  EXPECT_EQ(WaitForStop(pid, "stop-test", std::chrono::milliseconds(120), nullptr),
            StopWait::kTimedOut);
  int calls = 0;
  auto cancel_on_third = [&calls] { return ++calls >= 3; };
  EXPECT_EQ(WaitForStop(pid, "stop-test", std::chrono::seconds(60), cancel_on_third),
            StopWait::kCancelled);
  EXPECT_EQ(calls, 3);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

}  // namespace
