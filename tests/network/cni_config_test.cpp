// CNI configuration loading, results, capability arguments and conf_template: pure logic and
// files in a temporary directory.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "common/error.h"
#include "network/cni.h"
#include "network/cni_result.h"
#include "support/support.h"

namespace berth::network {
namespace {

using berth::testing::TempDir;
using berth::testing::WriteFile;

std::string ErrorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void Exe(const std::string& path) {
  WriteFile(path, "#!/bin/sh\nexit 0\n");
  ::chmod(path.c_str(), 0755);
}

TEST(CniConfig, ParsesAListAndWrapsASingleConf) {
  auto l = ParseNetworkConfig(
      R"({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"},{"type":"portmap"}]})", "a");
  EXPECT_EQ(l.name, "n");
  EXPECT_EQ(l.cni_version, "1.0.0");
  EXPECT_EQ(l.types(), (std::vector<std::string>{"bridge", "portmap"}));
  auto c = ParseNetworkConfig(R"({"cniVersion":"0.4.0","name":"one","type":"ptp","ipam":{}})", "b");
  ASSERT_EQ(c.conf["plugins"].size(), 1u);
  EXPECT_EQ(c.conf["plugins"][0]["type"], "ptp");
  EXPECT_EQ(c.conf["plugins"][0]["ipam"], nlohmann::json::object());
  EXPECT_EQ(c.cni_version, "0.4.0");
}

TEST(CniConfig, ChoosesTheNewestOfCniVersions) {
  auto l = ParseNetworkConfig(
      R"({"cniVersion":"1.0.0","cniVersions":["1.0.0","1.1.0","9.0.0"],"name":"n","plugins":[{"type":"x"}]})",
      "f");
  EXPECT_EQ(l.cni_version, "1.1.0");
}

TEST(CniConfig, ErrorsNameTheFileAndPosition) {
  EXPECT_EQ(ErrorOf([] {
              ParseNetworkConfig("{\n  \"name\": \"n\",\n  \"plugins\": [,]\n}", "/d/10.conflist");
            }).find("invalid CNI network configuration /d/10.conflist: parse error at line 3"),
            0u);
  EXPECT_NE(ErrorOf([] {
              ParseNetworkConfig(R"({"cniVersion":"1.0.0","name":"n","plugins":[]})", "f");
            }).find("\"plugins\" is empty"),
            std::string::npos);
  EXPECT_NE(ErrorOf([] {
              ParseNetworkConfig(R"({"cniVersion":"1.0.0","name":"n","plugins":[{}]})", "f");
            }).find("plugins[0] has no \"type\""),
            std::string::npos);
  EXPECT_NE(ErrorOf([] {
              ParseNetworkConfig(R"({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../x"}]})",
                                 "f");
            }).find("not a plugin name"),
            std::string::npos);
  EXPECT_NE(ErrorOf([] {
              ParseNetworkConfig(R"({"cniVersion":"7.0.0","name":"n","type":"x"})", "f");
            }).find("cniVersion \"7.0.0\""),
            std::string::npos);
  EXPECT_NE(ErrorOf([] {
              ParseNetworkConfig(R"({"cniVersion":"1.0.0","type":"x"})", "f");
            }).find("\"name\""),
            std::string::npos);
}

TEST(CniConfig, LoadsInLexicalOrderUpToMax) {
  TempDir d;
  Exe(d / "bin/loopback");
  Exe(d / "bin/a");
  Exe(d / "bin/b");
  WriteFile(d / "conf/20-b.conflist",
            R"({"cniVersion":"1.0.0","name":"b","plugins":[{"type":"b"}]})");
  WriteFile(d / "conf/10-a.conf", R"({"cniVersion":"1.0.0","name":"a","type":"a"})");
  WriteFile(d / "conf/05-ignored.txt", "not json");
  auto r = LoadNetworks(d / "conf", 1, {d / "bin"}, true);
  ASSERT_EQ(r.error, "");
  ASSERT_EQ(r.networks.size(), 1u);
  EXPECT_EQ(r.networks[0].name, "a");
  r = LoadNetworks(d / "conf", 0, {d / "bin"}, true);
  ASSERT_EQ(r.networks.size(), 2u);
  EXPECT_EQ(r.networks[1].name, "b");
}

TEST(CniConfig, NotReadyReasons) {
  TempDir d;
  auto r = LoadNetworks(d / "conf", 1, {d / "bin"}, false);
  EXPECT_EQ(r.reason, "NetworkPluginNotReady");
  EXPECT_NE(r.error.find("no network config found in " + d / "conf"), std::string::npos);
  WriteFile(d / "conf/10.conflist",
            R"({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"}]})");
  r = LoadNetworks(d / "conf", 1, {d / "bin", d / "bin2"}, false);
  EXPECT_EQ(r.reason, "NetworkPluginNotFound");
  EXPECT_EQ(r.error, "CNI plugin \"bridge\" of network \"n\" (" + d / "conf/10.conflist" +
                         ") not found in " + d / "bin" + ", " + d / "bin2");
  Exe(d / "bin2/bridge");
  EXPECT_EQ(LoadNetworks(d / "conf", 1, {d / "bin", d / "bin2"}, false).error, "");
  EXPECT_NE(LoadNetworks(d / "conf", 1, {d / "bin", d / "bin2"}, true).error.find("\"loopback\""),
            std::string::npos);
  WriteFile(d / "conf/05.conflist", "{oops");
  r = LoadNetworks(d / "conf", 1, {d / "bin2"}, false);
  EXPECT_EQ(r.reason, "NetworkConfigInvalid");
  EXPECT_NE(r.error.find(d / "conf/05.conflist" + ": parse error at line 1 column 2"),
            std::string::npos)
      << r.error;
}

TEST(CniResult, ParsesEveryVersion) {
  auto r1 = ParseResult(
      R"({"cniVersion":"1.0.0","interfaces":[{"name":"cni0"},{"name":"eth0","sandbox":"/n"}],
    "ips":[{"address":"10.9.0.2/24","gateway":"10.9.0.1","interface":1},{"address":"fd00::2/64","interface":1}],"dns":{"nameservers":["10.0.0.10"]}})");
  EXPECT_EQ(InterfaceIPs(r1, "eth0"), (std::vector<std::string>{"10.9.0.2", "fd00::2"}));
  EXPECT_TRUE(r1.ips[1].v6);
  EXPECT_EQ(r1.dns_servers, std::vector<std::string>{"10.0.0.10"});
  auto r04 = ParseResult(
      R"({"cniVersion":"0.4.0","interfaces":[{"name":"eth0","sandbox":"/n"}],"ips":[{"version":"4","address":"10.9.0.3/24","interface":0}]})");
  EXPECT_EQ(InterfaceIPs(r04, "eth0"), std::vector<std::string>{"10.9.0.3"});
  auto r03 =
      ParseResult(R"({"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.9.0.4/24"}]})");
  EXPECT_EQ(InterfaceIPs(r03, "eth0"), std::vector<std::string>{"10.9.0.4"});
  auto r02 =
      ParseResult(R"({"cniVersion":"0.2.0","ip4":{"ip":"10.9.0.5/24","gateway":"10.9.0.1"}})");
  EXPECT_EQ(InterfaceIPs(r02, "eth0"), std::vector<std::string>{"10.9.0.5"});
  EXPECT_NE(ErrorOf([] {
              ParseResult(R"({"cniVersion":"1.0.0","ips":[{"address":"10.9.0.2"}]})");
            }).find("ips[0].address"),
            std::string::npos);
  EXPECT_NE(
      ErrorOf([] {
        ParseResult(R"({"cniVersion":"1.0.0","ips":[{"address":"10.9.0.2/24","interface":3}]})");
      }).find("out of range"),
      std::string::npos);
}

TEST(CniResult, PluginErrors) {
  auto e = ParsePluginError(R"({"cniVersion":"1.0.0","code":7,"msg":"bad","details":"more"})");
  EXPECT_TRUE(e.parsed);
  EXPECT_EQ(e.code, 7);
  EXPECT_EQ(e.msg, "bad");
  EXPECT_EQ(e.details, "more");
  EXPECT_FALSE(ParsePluginError("panic: oops").parsed);
}

TEST(CniRecord, IPsOrderedByPreference) {
  nlohmann::json rec = {{"attachments",
                         {{{"ifname", "lo"}, {"result", nullptr}},
                          {{"ifname", "eth0"},
                           {"result",
                            {{"cniVersion", "1.0.0"},
                             {"interfaces", {{{"name", "eth0"}, {"sandbox", "/n"}}}},
                             {"ips",
                              {{{"address", "fd00::5/64"}, {"interface", 0}},
                               {{"address", "10.1.0.5/24"}, {"interface", 0}}}}}}}}}};
  auto v4 = RecordIPs(rec, "");
  EXPECT_EQ(v4.ip, "10.1.0.5");
  EXPECT_EQ(v4.additional, std::vector<std::string>{"fd00::5"});
  EXPECT_EQ(RecordIPs(rec, "ipv6").ip, "fd00::5");
  EXPECT_EQ(RecordIPs(rec, "cni").ip, "fd00::5");
  EXPECT_EQ(RecordIPs(nullptr, "").ip, "");
}

TEST(CniCapabilities, FromTheRequest) {
  PodNetworkRequest r;
  r.ports = {{8080, 80, "tcp", "127.0.0.1"}, {0, 9090, "tcp", ""}};
  r.annotations = {{"kubernetes.io/ingress-bandwidth", "10M"},
                   {"kubernetes.io/egress-bandwidth", "1Mi"},
                   {"cni.dev/ips", "10.1.0.9,fd00::9"},
                   {"cni.dev/mac", "02:00:00:00:00:09"}};
  r.dns_servers = {"10.0.0.10"};
  r.cgroup_path = "/berth/berth-x";
  auto c = CapabilityArgs(r);
  ASSERT_EQ(c["portMappings"].size(), 1u);
  EXPECT_EQ(c["portMappings"][0], (nlohmann::json{{"hostPort", 8080},
                                                  {"containerPort", 80},
                                                  {"protocol", "tcp"},
                                                  {"hostIP", "127.0.0.1"}}));
  EXPECT_EQ(c["bandwidth"]["ingressRate"], 10000000u);
  EXPECT_EQ(c["bandwidth"]["egressRate"], 1048576u);
  EXPECT_EQ(c["ips"], (nlohmann::json{"10.1.0.9", "fd00::9"}));
  EXPECT_EQ(c["mac"], "02:00:00:00:00:09");
  EXPECT_EQ(c["dns"]["servers"], nlohmann::json{"10.0.0.10"});
  EXPECT_EQ(c["cgroupPath"], "/berth/berth-x");
  r.annotations = {{"kubernetes.io/ingress-bandwidth", "fast"}};
  EXPECT_NE(ErrorOf([&] {
              CapabilityArgs(r);
            }).find("annotation kubernetes.io/ingress-bandwidth \"fast\""),
            std::string::npos);
}

TEST(CniTemplate, RendersContainerdsTemplate) {
  const std::string t = R"({"plugins": [{"type": "bridge", "ipam": {"type": "host-local",
  "ranges": [
    {{- range $i, $range := .PodCIDRRanges}}{{if $i}},
    {{end}}[{"subnet": "{{$range}}"}]
    {{- end}}
  ],
  "routes": [
    {{- range $i, $route := .Routes}}{{if $i}},
    {{end}}{"dst": "{{$route}}"}
    {{- end}}
  ]}}], "first": "{{.PodCIDR}}"})";
  auto out = RenderTemplate(t, {"10.88.0.0/24", "fd00:88::/64"});
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["first"], "10.88.0.0/24");
  auto ipam = j["plugins"][0]["ipam"];
  EXPECT_EQ(ipam["ranges"],
            nlohmann::json::parse(R"([[{"subnet":"10.88.0.0/24"}],[{"subnet":"fd00:88::/64"}]])"));
  EXPECT_EQ(ipam["routes"], nlohmann::json::parse(R"([{"dst":"0.0.0.0/0"},{"dst":"::/0"}])"));
  auto one = nlohmann::json::parse(RenderTemplate(t, {"10.88.0.0/24"}));
  EXPECT_EQ(one["plugins"][0]["ipam"]["routes"].size(), 1u);
  EXPECT_EQ(RenderTemplate("{{range .Routes}}<{{.}}>{{end}}", {"10.0.0.0/8"}), "<0.0.0.0/0>");
  EXPECT_NE(ErrorOf([] {
              RenderTemplate("{{template \"x\"}}", {"10.0.0.0/8"});
            }).find("unknown template action \"{{template \"x\"}}\""),
            std::string::npos);
  EXPECT_NE(
      ErrorOf([] { RenderTemplate("{{.Nope}}", {"10.0.0.0/8"}); }).find("unknown field \".Nope\""),
      std::string::npos);
  EXPECT_NE(
      ErrorOf([] { RenderTemplate("{{range .Routes}}x", {"10.0.0.0/8"}); }).find("missing {{end}}"),
      std::string::npos);
}

}  // namespace
}  // namespace berth::network
