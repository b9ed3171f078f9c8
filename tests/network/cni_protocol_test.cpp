// The CNI protocol against real plugin processes: small Python plugins written by the test that
// log what they receive (environment and configuration) and answer as the test tells them.
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "common/error.h"
#include "common/exec.h"
#include "network/cni.h"
#include "support/support.h"

namespace berth::network {
namespace {

using berth::testing::TempDir;
using berth::testing::WriteFile;

const char* kPlugin = R"(#!/usr/bin/env python3
import json, os, sys, time
conf = json.load(sys.stdin)
cmd = os.environ.get("CNI_COMMAND", "")
env = {k: v for k, v in os.environ.items() if k.startswith("CNI_")}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "calls.log"), "a") as f:
    f.write(json.dumps({"type": conf.get("type"), "cmd": cmd, "env": env, "conf": conf}) + "\n")
mode = conf.get("mode", "ok")
if cmd == "VERSION":
    print(json.dumps({"cniVersion": "1.1.0", "supportedVersions": ["1.0.0", "1.1.0"]})); sys.exit(0)
if mode == "fail" and cmd in ("ADD", "STATUS"):
    print(json.dumps({"cniVersion": "1.0.0", "code": 11, "msg": "no luck", "details": "really"})); sys.exit(1)
if mode == "stderr" and cmd == "ADD":
    sys.stderr.write("boom\n"); sys.exit(2)
if mode == "hang" and cmd == "ADD":
    time.sleep(60)
if mode == "hangcheck" and cmd == "CHECK":
    time.sleep(60)
if cmd == "ADD":
    prev = conf.get("prevResult")
    if prev is None:
        prev = {"cniVersion": conf["cniVersion"], "interfaces": [{"name": os.environ["CNI_IFNAME"], "sandbox": os.environ["CNI_NETNS"]}],
                "ips": [{"address": a, "interface": 0} for a in conf.get("addresses", [])]}
    print(json.dumps(prev))
)";

class CniProtocol : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!exec::LookPath("python3")) GTEST_SKIP() << "python3 is not installed";
    for (const char* t : {"loopback", "alpha", "beta"}) {
      WriteFile(d_ / (std::string("bin/") + t), kPlugin);
      ::chmod((d_ / (std::string("bin/") + t)).c_str(), 0755);
    }
    opts_.bin_dirs = {d_ / "nothing-here", d_ / "bin"};
    opts_.conf_dir = d_ / "conf";
    opts_.max_conf_num = 2;
    opts_.watch = false;
  }
  std::vector<nlohmann::json> Calls() {
    std::vector<nlohmann::json> out;
    std::ifstream in(d_ / "calls.log");
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
    return out;
  }
  PodNetworkRequest Req() {
    PodNetworkRequest r;
    r.id = "sb1";
    r.netns = "/run/netns/none";
    r.name = "web";
    r.ns = "default";
    r.uid = "u1";
    r.ports = {{8080, 80, "tcp", ""}};
    return r;
  }
  TempDir d_;
  CniOptions opts_;
};

TEST_F(CniProtocol, AddChainsPluginsAndDelUndoesInReverse) {
  WriteFile(d_ / "conf/10-net.conflist", R"({"cniVersion":"1.0.0","name":"net","plugins":[
    {"type":"alpha","addresses":["10.99.0.7/24","fd99::7/64"]},{"type":"beta","capabilities":{"portMappings":true,"bandwidth":true}}]})");
  opts_.setup_serially =
      true;  // the call log in a fixed order (networks otherwise run in parallel)
  Cni cni(opts_);
  ASSERT_TRUE(cni.Status().ready) << cni.Status().message;
  nlohmann::json rec;
  int saves = 0;
  cni.SetUp(Req(), &rec, [&](const nlohmann::json& r) {
    if (saves++ == 0) {
      EXPECT_TRUE(Calls().empty()) << "the record is saved before any plugin runs";
      EXPECT_EQ(r["attachments"].size(), 2u);
    }
  });
  EXPECT_EQ(saves, 2);
  auto calls = Calls();
  ASSERT_EQ(calls.size(), 3u);  // loopback, alpha, beta
  EXPECT_EQ(calls[0]["env"]["CNI_IFNAME"], "lo");
  const auto& a = calls[1];
  EXPECT_EQ(a["cmd"], "ADD");
  EXPECT_EQ(a["env"]["CNI_IFNAME"], "eth0");
  EXPECT_EQ(a["env"]["CNI_CONTAINERID"], "sb1");
  EXPECT_EQ(a["env"]["CNI_NETNS"], "/run/netns/none");
  EXPECT_EQ(a["env"]["CNI_PATH"], d_ / "nothing-here" + ":" + d_ / "bin");
  EXPECT_EQ(a["env"]["CNI_ARGS"],
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID="
            "sb1;K8S_POD_UID=u1");
  EXPECT_EQ(a["conf"]["name"], "net");
  EXPECT_EQ(a["conf"]["cniVersion"], "1.0.0");
  EXPECT_FALSE(a["conf"].contains("runtimeConfig")) << "alpha declares no capability";
  EXPECT_FALSE(a["conf"].contains("prevResult"));
  const auto& b = calls[2];
  EXPECT_EQ(b["conf"]["runtimeConfig"],
            (nlohmann::json{{"portMappings",
                             {{{"hostPort", 8080}, {"containerPort", 80}, {"protocol", "tcp"}}}}}));
  EXPECT_EQ(b["conf"]["prevResult"]["ips"][0]["address"], "10.99.0.7/24");
  auto ips = RecordIPs(rec, "");
  EXPECT_EQ(ips.ip, "10.99.0.7");
  EXPECT_EQ(ips.additional, std::vector<std::string>{"fd99::7"});

  cni.Check(rec, "/run/netns/none");
  cni.TearDown(rec, "/run/netns/gone");
  calls = Calls();
  ASSERT_EQ(calls.size(), 9u);
  EXPECT_EQ(calls[3]["cmd"], "CHECK");
  EXPECT_EQ(calls[6]["cmd"], "DEL");
  EXPECT_EQ(calls[6]["type"], "beta") << "DEL runs the list backwards";
  EXPECT_EQ(calls[7]["type"], "alpha");
  EXPECT_EQ(calls[8]["type"], "loopback") << "and the networks too";
  EXPECT_EQ(calls[6]["env"]["CNI_NETNS"], "") << "a namespace that is gone is not passed";
  EXPECT_EQ(calls[7]["conf"]["prevResult"], rec["attachments"][1]["result"]);
  EXPECT_EQ(calls[6]["conf"]["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
}

TEST_F(CniProtocol, PluginErrorsNameThePlugin) {
  WriteFile(
      d_ / "conf/10-net.conflist",
      R"({"cniVersion":"1.0.0","name":"net","plugins":[{"type":"alpha"},{"type":"beta","mode":"fail"}]})");
  opts_.use_internal_loopback = true;
  Cni cni(opts_);
  nlohmann::json rec;
  try {
    cni.SetUp(Req(), &rec, [](const nlohmann::json&) {});
    FAIL() << "ADD succeeded";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "failed to set up the pod network: CNI plugin \"beta\" of network \"net\" failed "
                 "to ADD: code 11: no luck (really)");
  }
  ASSERT_EQ(rec["attachments"].size(), 1u) << "the record still says what DEL must undo";
  WriteFile(d_ / "conf/10-net.conflist",
            R"({"cniVersion":"1.0.0","name":"net","plugins":[{"type":"alpha","mode":"stderr"}]})");
  cni.Reload();
  try {
    cni.SetUp(Req(), &rec, [](const nlohmann::json&) {});
    FAIL() << "ADD succeeded";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "failed to set up the pod network: CNI plugin \"alpha\" of network \"net\" failed "
                 "to ADD: exit status 2: boom");
  }
}

TEST_F(CniProtocol, AHangingPluginIsKilledAtTheTimeout) {
  WriteFile(d_ / "conf/10-net.conflist",
            R"({"cniVersion":"1.0.0","name":"net","plugins":[{"type":"alpha","mode":"hang"}]})");
  opts_.use_internal_loopback = true;
  opts_.timeout = std::chrono::milliseconds(500);
  Cni cni(opts_);
  nlohmann::json rec;
  auto t0 = std::chrono::steady_clock::now();
  try {
    cni.SetUp(Req(), &rec, [](const nlohmann::json&) {});
    FAIL() << "ADD succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "CNI plugin \"alpha\" of network \"net\" ADD timed out after 0.5s (killed)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
}

TEST_F(CniProtocol, StatusAndGcOnVersion11) {
  WriteFile(d_ / "conf/10-net.conflist",
            R"({"cniVersions":["1.0.0","1.1.0"],"name":"net","plugins":[{"type":"alpha"}]})");
  opts_.use_internal_loopback = true;
  Cni cni(opts_);
  ASSERT_TRUE(cni.Status().ready);
  nlohmann::json live = {{"containerID", "keep"},
                         {"attachments", {{{"network", "net"}, {"ifname", "eth0"}}}}};
  EXPECT_TRUE(cni.GC({live}).empty());
  auto calls = Calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0]["cmd"], "STATUS");
  EXPECT_EQ(calls[1]["cmd"], "GC");
  EXPECT_EQ(calls[1]["conf"]["cni.dev/valid-attachments"],
            (nlohmann::json{{{"containerID", "keep"}, {"ifname", "eth0"}}}));
  EXPECT_FALSE(calls[1]["env"].contains("CNI_CONTAINERID"));
  WriteFile(d_ / "conf/10-net.conflist",
            R"({"cniVersion":"1.1.0","name":"net","plugins":[{"type":"alpha","mode":"fail"}]})");
  cni.Reload();
  auto st = cni.Status();
  EXPECT_FALSE(st.ready);
  EXPECT_NE(st.message.find("failed to STATUS: code 11: no luck"), std::string::npos) << st.message;
}

TEST_F(CniProtocol, WithoutAnyConfigurationNothingRuns) {
  Cni cni(opts_);
  auto st = cni.Status();
  EXPECT_FALSE(st.ready);
  EXPECT_TRUE(st.unconfigured);
  nlohmann::json rec;
  cni.SetUp(Req(), &rec, [](const nlohmann::json&) { ADD_FAILURE() << "nothing to record"; });
  EXPECT_TRUE(rec.is_null());
  EXPECT_TRUE(Calls().empty());
  EXPECT_FALSE(std::filesystem::exists(opts_.conf_dir)) << "conf_dir is not created";
}

// CHECK within a budget (berth gives inspect's CHECK 1.5 s): a plugin still running when it is
// spent is killed and named, and the plugins after it are not called.
TEST_F(CniProtocol, CheckKeepsToItsBudget) {
  Cni cni(opts_);
  nlohmann::json conf = nlohmann::json::parse(
      R"({"cniVersion":"1.0.0","name":"net","plugins":[{"type":"alpha","mode":"hangcheck"},{"type":"beta"}]})");
  nlohmann::json rec = {{"containerID", "sb1"},
                        {"args", ""},
                        {"attachments",
                         {{{"network", "net"},
                           {"cniVersion", "1.0.0"},
                           {"ifname", "eth0"},
                           {"conf", conf},
                           {"result", {{"cniVersion", "1.0.0"}}}}}}};
  try {
    cni.Check(rec, "/run/netns/none", std::chrono::milliseconds(500));
    ADD_FAILURE() << "CHECK of a hanging plugin succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"alpha\""), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("killed"), std::string::npos) << e.what();
  }
  for (const auto& c : Calls()) EXPECT_EQ(c["type"], "alpha") << "beta comes after the budget";
}

TEST_F(CniProtocol, TheWatchPicksUpChanges) {
  opts_.watch = true;
  opts_.use_internal_loopback = true;
  Cni cni(opts_);
  auto wait = [&](bool ready) {
    for (int i = 0; i < 300 && cni.Status().ready != ready; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return cni.Status().ready == ready;
  };
  EXPECT_FALSE(cni.Status().ready);
  WriteFile(d_ / "conf/10-net.conflist",
            R"({"cniVersion":"1.0.0","name":"net","plugins":[{"type":"alpha"}]})");
  EXPECT_TRUE(wait(true)) << cni.Status().message;
  WriteFile(d_ / "conf/10-net.conflist",
            R"({"cniVersion":"1.0.0","name":"net","plugins":[{"type":"gamma"}]})");
  EXPECT_TRUE(wait(false));
  EXPECT_NE(cni.Status().message.find("\"gamma\""), std::string::npos);
  ::unlink((d_ / "conf/10-net.conflist").c_str());
  EXPECT_TRUE(wait(false));
  EXPECT_NE(cni.Status().message.find("no network config found"), std::string::npos);
}

// The watch needs no thread: each Status reads what inotify saw since the last one, and a
// conf_dir that is missing at start (or removed and made again) is watched once it exists.
TEST_F(CniProtocol, TheWatchFollowsAMissingDirectoryWithoutAThread) {
  opts_.watch = true;
  opts_.use_internal_loopback = true;
  auto threads = [] {
    return std::distance(std::filesystem::directory_iterator("/proc/self/task"),
                         std::filesystem::directory_iterator());
  };
  auto before = threads();
  Cni cni(opts_);
  EXPECT_EQ(threads(), before) << "the watch started a thread";
  auto st = cni.Status();
  EXPECT_FALSE(st.ready);
  EXPECT_TRUE(st.unconfigured);
  const char* net = R"({"cniVersion":"1.0.0","name":"net","plugins":[{"type":"alpha"}]})";
  for (int round = 0; round < 2; ++round) {
    WriteFile(d_ / "conf/10-net.conflist", net);  // makes conf/ as well
    st = cni.Status();
    EXPECT_TRUE(st.ready) << "round " << round << ": " << st.message;
    std::filesystem::remove_all(d_ / "conf");
    st = cni.Status();
    EXPECT_FALSE(st.ready) << "round " << round;
    EXPECT_NE(st.message.find("no network config found"), std::string::npos) << st.message;
  }
  EXPECT_EQ(threads(), before);
}

}  // namespace
}  // namespace berth::network
