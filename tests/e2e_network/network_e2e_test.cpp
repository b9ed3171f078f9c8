// End-to-end pod networking: the real berthd (runc, berth-monitor, berth-pause) with Debian's CNI
// plugins (bridge, host-local, portmap, loopback), started inside a network namespace this test
// makes. The bridge, the pods' veths, portmap's iptables rules and the host-local leases (its
// dataDir is under the test's directory) all live there and go with it: nothing leaves the
// machine and parallel runs cannot collide. Needs root, runc, busybox-static and the plugins.
//
// BERTH_E2E_NET_CYCLES / BERTH_E2E_NET_PARALLEL make the leak test longer (defaults 10 and 10;
// the full check is 200 and 50).
#include "runtime/v1/api.grpc.pb.h"  // first: its enum Signal names collide with <signal.h> macros

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "berth/images/v1/images.grpc.pb.h"
#include "berthd_proc.h"
#include "common/exec.h"
#include "image_support.h"
#include "network/netns.h"
#include "support/support.h"

namespace {

namespace v1 = runtime::v1;
using berth::testing::BerthdProc;
using berth::testing::TempDir;
using berth::testing::WriteFile;

const char* kPlugins = "/usr/lib/cni";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 60) {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return c;
}

bool WaitFor(const std::function<bool()>& f, int seconds = 10) {
  for (int i = 0; i < seconds * 20; ++i) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return f();
}

// berthd in the test's network namespace.
// A berthd inside the test's network namespace `netns`, with CNI plugins from Debian's package
// and the test's bin dir, configs from the test's net.d. cni_extra: lines added to the cni table;
// extra: tables appended to the config.
std::unique_ptr<BerthdProc> NewBerthd(const std::string& dir, const std::string& netns,
                                      const std::string& cni_extra, const std::string& extra) {
  berth::testing::BerthdOptions o;
  o.netns = netns;
  o.env = {{"BERTH_RRO_PROBE", BERTH_RRO_PROBE_PATH}};  // user namespaces proven
  o.extra = "[plugins.\"io.containerd.cri.v1.runtime\".cni]\nbin_dirs = [\"" +
            std::string(kPlugins) + "\", \"" + dir + "/bin\"]\nconf_dir = \"" + dir + "/net.d\"\n" +
            cni_extra + extra;
  return std::make_unique<BerthdProc>(dir, BERTHD_PATH, BERTH_MONITOR_PATH, BERTH_PAUSE_PATH, o);
}

class NetworkE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string reason = berth::testing::ContainerSkipReason("runc");
    if (!reason.empty()) GTEST_SKIP() << reason;
    if (berth::testing::BusyboxPath().empty()) GTEST_SKIP() << "busybox-static is not installed";
    for (const char* p : {"bridge", "host-local", "portmap", "loopback"}) {
      if (access((std::string(kPlugins) + "/" + p).c_str(), X_OK) != 0) {
        GTEST_SKIP() << "the CNI plugin " << p << " is not installed in " << kPlugins
                     << " (containernetworking-plugins)";
      }
    }
    if (!berth::exec::LookPath("iptables")) GTEST_SKIP() << "iptables is not installed";
    dir_ = std::make_unique<TempDir>("berth-e2e-net");
    // Traversable, as /run and /var/lib are: the root of a user-namespaced pod reaches its bundle.
    ASSERT_EQ(::chmod(dir_->path().c_str(), 0711), 0);
    netns_ = *dir_ / "hostns";
    berth::network::CreateNetns(netns_);
    int x = 20 + getpid() % 200;
    subnet_ = "10.231." + std::to_string(x) + ".0/24";
    gateway_ = "10.231." + std::to_string(x) + ".1";
    subnet6_ = "fd31:b3:" + std::to_string(x) + "::/64";
    char br[16];
    std::snprintf(br, sizeof br, "bn%x", static_cast<unsigned>(getpid()));
    bridge_ = br;
    std::filesystem::create_directories(*dir_ / "net.d");
    std::filesystem::create_directories(*dir_ / "bin");
    if (WriteDefaultNetwork()) WriteConflist(Conflist());
    d_ = NewBerthd(dir_->path(), netns_, CniExtra(), Extra());
    ASSERT_EQ(d_->Start(), "");
    berth::testing::TestImageOptions opts;
    opts.user = "";
    opts.entrypoint = {};
    opts.cmd = {"sh"};
    auto img = berth::testing::BuildTestImage(*dir_ / "oci", opts);
    berth::testing::WriteOciArchive(img, *dir_ / "busybox.tar", "docker.io/test/busybox:net");
    berth::images::v1::ImportRequest req;
    req.set_path(*dir_ / "busybox.tar");
    berth::images::v1::ImportResponse resp;
    auto st = d_->admin().Import(Ctx().get(), req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  virtual bool WriteDefaultNetwork() { return true; }
  virtual std::string Extra() { return ""; }
  virtual std::string CniExtra() { return "plugin_timeout = \"60s\"\n"; }

  void TearDown() override {
    if (d_) {
      RemoveAllPods();
      d_.reset();
    }
    if (!netns_.empty()) berth::network::RemoveNetns(netns_);
  }

  void RemoveAllPods() {
    v1::ListPodSandboxResponse pods;
    if (!d_->rt().ListPodSandbox(Ctx().get(), {}, &pods).ok()) return;
    for (const auto& p : pods.items()) {
      v1::RemovePodSandboxRequest r;
      r.set_pod_sandbox_id(p.id());
      v1::RemovePodSandboxResponse rr;
      d_->rt().RemovePodSandbox(Ctx().get(), r, &rr);
    }
  }

  // The bridge + host-local (+ an IPv6 range) + portmap network; `extra` plugins chained after.
  std::string Conflist(bool dual = false, const std::string& extra = "") {
    nlohmann::json ranges = nlohmann::json::array({nlohmann::json::array({{{"subnet", subnet_}}})});
    nlohmann::json routes = nlohmann::json::array({{{"dst", "0.0.0.0/0"}}});
    if (dual) {
      ranges.push_back(nlohmann::json::array({{{"subnet", subnet6_}}}));
      routes.push_back({{"dst", "::/0"}});
    }
    nlohmann::json plugins =
        nlohmann::json::array({{{"type", "bridge"},
                                {"bridge", bridge_},
                                {"isGateway", true},
                                {"ipMasq", true},
                                {"hairpinMode", true},
                                {"ipam",
                                 {{"type", "host-local"},
                                  {"dataDir", *dir_ / "ipam"},
                                  {"ranges", ranges},
                                  {"routes", routes}}}},
                               {{"type", "portmap"}, {"capabilities", {{"portMappings", true}}}}});
    if (!extra.empty()) plugins.push_back({{"type", extra}});
    return nlohmann::json{{"cniVersion", "1.0.0"}, {"name", "berth-e2e"}, {"plugins", plugins}}
        .dump(2);
  }
  void WriteConflist(const std::string& data, const std::string& name = "10-berth.conflist") {
    std::string tmp = *dir_ / ("net.d/." + name + ".tmp");
    WriteFile(tmp, data);
    std::filesystem::rename(tmp, *dir_ / ("net.d/" + name));
  }
  void WritePlugin(const std::string& name, const std::string& script) {
    WriteFile(*dir_ / ("bin/" + name), "#!/bin/sh\n" + script);
    chmod((*dir_ / ("bin/" + name)).c_str(), 0755);
  }

  v1::RuntimeCondition NetworkReady() {
    v1::StatusRequest req;
    v1::StatusResponse resp;
    EXPECT_TRUE(d_->rt().Status(Ctx().get(), req, &resp).ok());
    for (const auto& c : resp.status().conditions()) {
      if (c.type() == "NetworkReady") return c;
    }
    return {};
  }
  bool WaitReady(bool ready) {
    return WaitFor([&] { return NetworkReady().status() == ready; });
  }

  v1::PodSandboxConfig Pod(const std::string& name, int host_port = 0) {
    v1::PodSandboxConfig c;
    c.mutable_metadata()->set_name(name);
    c.mutable_metadata()->set_namespace_("e2e");
    c.mutable_metadata()->set_uid("uid-" + name);
    c.set_hostname(name);
    c.set_log_directory(*dir_ / ("logs/" + name));
    if (host_port) {
      auto* pm = c.add_port_mappings();
      pm->set_container_port(80);
      pm->set_host_port(host_port);
      pm->set_protocol(v1::TCP);
    }
    return c;
  }
  grpc::Status RunPod(const v1::PodSandboxConfig& c, std::string* id) {
    v1::RunPodSandboxRequest req;
    *req.mutable_config() = c;
    v1::RunPodSandboxResponse resp;
    auto st = d_->rt().RunPodSandbox(Ctx(120).get(), req, &resp);
    if (id) *id = resp.pod_sandbox_id();
    return st;
  }
  std::string MustRunPod(const v1::PodSandboxConfig& c) {
    std::string id;
    auto st = RunPod(c, &id);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return id;
  }
  void RemovePod(const std::string& id) {
    v1::StopPodSandboxRequest s;
    s.set_pod_sandbox_id(id);
    v1::StopPodSandboxResponse sr;
    auto st = d_->rt().StopPodSandbox(Ctx().get(), s, &sr);
    EXPECT_TRUE(st.ok()) << st.error_message();
    EXPECT_TRUE(d_->rt().StopPodSandbox(Ctx().get(), s, &sr).ok()) << "stop is idempotent";
    v1::RemovePodSandboxRequest r;
    r.set_pod_sandbox_id(id);
    v1::RemovePodSandboxResponse rr;
    st = d_->rt().RemovePodSandbox(Ctx().get(), r, &rr);
    EXPECT_TRUE(st.ok()) << st.error_message();
  }
  v1::PodSandboxStatus PodStatus(const std::string& id, std::string* info = nullptr) {
    v1::PodSandboxStatusRequest r;
    r.set_pod_sandbox_id(id);
    r.set_verbose(info != nullptr);
    v1::PodSandboxStatusResponse resp;
    EXPECT_TRUE(d_->rt().PodSandboxStatus(Ctx().get(), r, &resp).ok());
    if (info) *info = resp.info().count("info") ? resp.info().at("info") : "";
    return resp.status();
  }
  std::string StartContainer(const std::string& pod, const v1::PodSandboxConfig& pc,
                             const std::string& name, const std::string& script) {
    v1::CreateContainerRequest req;
    req.set_pod_sandbox_id(pod);
    *req.mutable_sandbox_config() = pc;
    auto* c = req.mutable_config();
    c->mutable_metadata()->set_name(name);
    c->mutable_image()->set_image("docker.io/test/busybox:net");
    c->add_command("/bin/busybox");
    c->add_command("sh");
    c->add_command("-c");
    c->add_command(script);
    v1::CreateContainerResponse resp;
    auto st = d_->rt().CreateContainer(Ctx().get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    v1::StartContainerRequest s;
    s.set_container_id(resp.container_id());
    v1::StartContainerResponse sr;
    st = d_->rt().StartContainer(Ctx().get(), s, &sr);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.container_id();
  }
  // Runs `cmd` in a container; its stdout (with the exit code when it failed).
  std::string Exec(const std::string& id, const std::string& cmd) {
    v1::ExecSyncRequest r;
    r.set_container_id(id);
    for (const char* a : {"/bin/busybox", "sh", "-c"}) r.add_cmd(a);
    r.add_cmd(cmd);
    r.set_timeout(20);
    v1::ExecSyncResponse out;
    auto st = d_->rt().ExecSync(Ctx().get(), r, &out);
    if (!st.ok()) return "error: " + st.error_message();
    return out.exit_code() == 0 ? out.stdout()
                                : "exit " + std::to_string(out.exit_code()) + ": " + out.stderr();
  }
  // Runs `cmd` with busybox sh in the test's network namespace (the pods' "host").
  std::string Host(const std::string& cmd) {
    auto r = berth::exec::Run(
        {"/usr/bin/nsenter", "--net=" + netns_, berth::testing::BusyboxPath(), "sh", "-c", cmd});
    return r.exit_code == 0 ? r.out : "exit " + std::to_string(r.exit_code) + ": " + r.err;
  }
  // What a pod may leave behind: host-local leases, links, iptables rules, mounts of this test.
  std::string HostState() {
    std::string s = "leases:";
    std::error_code ec;
    std::set<std::string> leases;
    for (const auto& e : std::filesystem::recursive_directory_iterator(*dir_ / "ipam", ec)) {
      std::string f = e.path().filename().string();
      if (f != "lock" && f.rfind("last_reserved_ip", 0) != 0) leases.insert(f);
    }
    for (const auto& l : leases) s += " " + l;
    s += "\nlinks:\n" + Host("ip -o link show | sed 's/^[0-9]*: //; s/[:@].*//' | sort");
    auto ipt = berth::exec::Run({"/usr/bin/nsenter", "--net=" + netns_, "iptables-save"});
    std::istringstream in(ipt.out);
    s += "iptables:\n";
    for (std::string line; std::getline(in, line);) {
      if (line.empty() || line[0] == '#') continue;
      if (line[0] == ':') line = line.substr(0, line.find(' '));  // counters
      s += line + "\n";
    }
    std::istringstream mounts(ReadAll("/proc/mounts"));
    s += "mounts:\n";
    for (std::string line; std::getline(mounts, line);) {
      if (line.find(dir_->path()) != std::string::npos && line.find(netns_) == std::string::npos)
        s += line + "\n";
    }
    std::error_code ec2;
    s += "netns files:";
    for (const auto& e : std::filesystem::directory_iterator(
             *dir_ / "state/io.containerd.grpc.v1.cri/netns", ec2)) {
      s += " " + e.path().filename().string();
    }
    return s + "\n";
  }
  std::string LeaseCount() {
    size_t n = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::recursive_directory_iterator(*dir_ / "ipam", ec)) {
      std::string f = e.path().filename().string();
      if (e.is_regular_file() && f != "lock" && f.rfind("last_reserved_ip", 0) != 0) ++n;
    }
    return std::to_string(n);
  }

  std::unique_ptr<TempDir> dir_;
  std::string netns_, subnet_, subnet6_, gateway_, bridge_;
  std::unique_ptr<BerthdProc> d_;
};

bool InSubnet(const std::string& ip, const std::string& subnet) {
  return ip.rfind(subnet.substr(0, subnet.rfind('.') + 1), 0) == 0;
}

TEST_F(NetworkE2E, PodsTalkOverTheBridgeAndHostPortsWork) {
  ASSERT_TRUE(WaitReady(true)) << NetworkReady().message();
  auto pa = Pod("web", 18080);
  std::string a = MustRunPod(pa);
  auto pb = Pod("client");
  std::string b = MustRunPod(pb);
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  std::string info;
  auto sa = PodStatus(a, &info), sb = PodStatus(b);
  std::string ipa = sa.network().ip(), ipb = sb.network().ip();
  EXPECT_TRUE(InSubnet(ipa, subnet_)) << ipa;
  EXPECT_TRUE(InSubnet(ipb, subnet_)) << ipb;
  EXPECT_NE(ipa, ipb);
  EXPECT_EQ(sa.network().additional_ips_size(), 0);
  auto j = nlohmann::json::parse(info);
  EXPECT_EQ(j["cni"]["attachments"][1]["network"], "berth-e2e");
  EXPECT_EQ(j["cni"]["attachments"][1]["ifname"], "eth0");

  std::string web = StartContainer(a, pa, "httpd",
                                   "mkdir -p /www && echo hello-from-web > /www/index.html && "
                                   "exec /bin/busybox httpd -f -p 80 -h /www");
  std::string side = StartContainer(a, pa, "side", "exec /bin/busybox sleep 3600");
  std::string cli = StartContainer(b, pb, "cli", "exec /bin/busybox sleep 3600");
  // busybox's static wget crashes on this host's glibc; nc speaks HTTP/1.0 well enough.
  auto http = [](const std::string& host, int port) {
    return "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 3 " + host + " " +
           std::to_string(port);
  };
  auto in_pod = [&](const std::string& id, const std::string& host, int port) {
    std::string out;
    WaitFor([&] {
      return (out = Exec(id, http(host, port))).find("hello-from-web") != std::string::npos;
    });
    return out;
  };
  auto on_host = [&](const std::string& host, int port) {
    std::string out;
    WaitFor(
        [&] { return (out = Host(http(host, port))).find("hello-from-web") != std::string::npos; });
    return out;
  };
  const auto npos = std::string::npos;
  EXPECT_NE(in_pod(side, "127.0.0.1", 80).find("hello-from-web"), npos)
      << "two containers of a pod share its network";
  EXPECT_EQ(Exec(side, "/bin/busybox ip -o -4 addr show eth0"),
            Exec(web, "/bin/busybox ip -o -4 addr show eth0"));
  EXPECT_NE(in_pod(cli, ipa, 80).find("hello-from-web"), npos) << "pod to pod over TCP";
  EXPECT_NE(on_host(ipa, 80).find("hello-from-web"), npos) << "the container port on the pod IP";
  EXPECT_NE(on_host("127.0.0.1", 18080).find("hello-from-web"), npos) << "hostPort on 127.0.0.1";
  EXPECT_NE(on_host(gateway_, 18080).find("hello-from-web"), npos)
      << "hostPort on the bridge gateway";

  RemovePod(a);
  RemovePod(b);
  EXPECT_EQ(LeaseCount(), "0") << "every address is released";
  EXPECT_EQ(Host("ip -o link show | grep -c veth || true"), "0\n");
  EXPECT_EQ(Host("iptables-save -t nat | grep -c 18080 || true"), "0\n");
}

// CNI CHECK runs when a person inspects a pod (verbose PodSandboxStatus: `berthctl inspectp`,
// `crictl inspectp`), never for kubelet's status calls: "ok" while the attachments are as ADD left
// them, the plugin's error once the pod's veth is gone; the pod is still removed cleanly. (A
// bridge network without portmap: Debian's portmap 1.1.1 fails CHECK of an IPv4-only pod with
// "could not check ipv6 dnat", see docs/networking.md.)
TEST_F(NetworkE2E, InspectRunsCniCheck) {
  auto list = nlohmann::json::parse(Conflist());
  list["plugins"].erase(1);  // portmap
  WriteConflist(list.dump(2));
  ASSERT_TRUE(WaitReady(true)) << NetworkReady().message();
  RemovePod(MustRunPod(Pod("warm")));  // the bridge and its rules stay from the first pod on
  std::string before = HostState();
  std::string id = MustRunPod(Pod("checked"));
  ASSERT_FALSE(id.empty());
  std::string info;
  PodStatus(id, &info);
  auto j = nlohmann::json::parse(info);
  EXPECT_EQ(j["cniCheck"], "ok") << info;
  EXPECT_EQ(j["cni"]["attachments"][1]["conf"]["plugins"].size(), 1u);
  std::string veth;
  for (const auto& i : j["cni"]["attachments"][1]["result"]["interfaces"])
    if (!i.contains("sandbox") && i.value("name", "") != bridge_) veth = i.value("name", "");
  ASSERT_FALSE(veth.empty()) << j["cni"].dump();
  EXPECT_EQ(Host("ip link del " + veth + " && echo gone"), "gone\n");
  PodStatus(id, &info);
  std::string check = nlohmann::json::parse(info).value("cniCheck", "");
  EXPECT_NE(check.find("CNI plugin \"bridge\""), std::string::npos) << check;
  RemovePod(id);
  // The address, links, mounts and netns are released. Not the iptables rules: Debian's bridge
  // 1.1.1 takes the addresses to un-masquerade from the pod's eth0 at DEL, and that went with
  // the veth (docs/networking.md).
  auto without_iptables = [](const std::string& st) {
    return st.substr(0, st.find("iptables:")) + st.substr(st.find("mounts:"));
  };
  EXPECT_EQ(without_iptables(HostState()), without_iptables(before));
}

TEST_F(NetworkE2E, DualStackGivesAdditionalIPs) {
  WriteConflist(Conflist(/*dual=*/true));
  ASSERT_TRUE(WaitFor([&] {
    v1::StatusRequest req;
    req.set_verbose(true);
    v1::StatusResponse resp;
    d_->rt().Status(Ctx().get(), req, &resp);
    return resp.info().count("cniNetworks") &&
           resp.info().at("cniNetworks").find("berth-e2e") != std::string::npos &&
           ReadAll(*dir_ / "net.d/10-berth.conflist").find(subnet6_) != std::string::npos;
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the watch has reloaded
  std::string id = MustRunPod(Pod("dual"));
  auto st = PodStatus(id);
  EXPECT_TRUE(InSubnet(st.network().ip(), subnet_)) << st.network().ip();
  ASSERT_EQ(st.network().additional_ips_size(), 1);
  EXPECT_EQ(
      st.network().additional_ips(0).ip().rfind(subnet6_.substr(0, subnet6_.find("::") + 1), 0), 0u)
      << st.network().additional_ips(0).ip();
  RemovePod(id);
  EXPECT_EQ(LeaseCount(), "0");
}

class NetworkReadyE2E : public NetworkE2E {
  bool WriteDefaultNetwork() override { return false; }
  std::string CniExtra() override {
    return "conf_template = \"" + *dir_ / "template.json" + "\"\n";
  }
};

// containerd's documented template, with this test's bridge and lease directory.
const char* kTemplate = R"({
  "name": "templated",
  "cniVersion": "1.0.0",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "BRIDGE",
      "isGateway": true,
      "ipMasq": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "DATADIR",
        "ranges": [
          {{- range $i, $range := .PodCIDRRanges}}{{if $i}},
          {{end}}[{"subnet": "{{$range}}"}]
          {{- end}}
        ],
        "routes": [
          {{- range $i, $route := .Routes}}{{if $i}},
          {{end}}{"dst": "{{$route}}"}
          {{- end}}
        ]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
})";

TEST_F(NetworkReadyE2E, UpdateRuntimeConfigRendersTheTemplate) {
  std::string t = kTemplate;
  t.replace(t.find("BRIDGE"), 6, bridge_);
  t.replace(t.find("DATADIR"), 7, *dir_ / "ipam");
  WriteFile(*dir_ / "template.json", "{{template \"nope\"}}");
  v1::UpdateRuntimeConfigRequest req;
  req.mutable_runtime_config()->mutable_network_config()->set_pod_cidr(subnet_);
  v1::UpdateRuntimeConfigResponse resp;
  auto st = d_->rt().UpdateRuntimeConfig(Ctx().get(), req, &resp);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.error_message().find("unknown template action \"{{template \"nope\"}}\""),
            std::string::npos)
      << st.error_message();
  EXPECT_FALSE(std::filesystem::exists(*dir_ / "net.d/10-containerd-net.conflist"));
  WriteFile(*dir_ / "template.json", t);
  st = d_->rt().UpdateRuntimeConfig(Ctx().get(), req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  auto conf = nlohmann::json::parse(ReadAll(*dir_ / "net.d/10-containerd-net.conflist"));
  EXPECT_EQ(conf["plugins"][0]["ipam"]["ranges"][0][0]["subnet"], subnet_);
  EXPECT_EQ(conf["plugins"][0]["ipam"]["routes"],
            nlohmann::json::parse(R"([{"dst":"0.0.0.0/0"}])"));
  ASSERT_TRUE(WaitReady(true)) << NetworkReady().message();
  std::string id = MustRunPod(Pod("templated"));
  EXPECT_TRUE(InSubnet(PodStatus(id).network().ip(), subnet_));
  RemovePod(id);
}

TEST_F(NetworkReadyE2E, NetworkReadyFollowsTheConfDir) {
  auto c = NetworkReady();
  EXPECT_FALSE(c.status());
  EXPECT_EQ(c.reason(), "NetworkPluginNotReady");
  EXPECT_NE(c.message().find("no network config found in " + *dir_ / "net.d"), std::string::npos)
      << c.message();
  // Without any configuration a pod gets only its loopback interface.
  std::string id;
  auto st = RunPod(Pod("early"), &id);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(PodStatus(id).network().ip(), "");
  RemovePod(id);

  WriteConflist(Conflist());
  EXPECT_TRUE(WaitReady(true)) << NetworkReady().message();
  WriteConflist("{\n  \"cniVersion\": \"1.0.0\",\n  \"name\": oops\n}", "05-broken.conflist");
  EXPECT_TRUE(WaitReady(false));
  c = NetworkReady();
  EXPECT_EQ(c.reason(), "NetworkConfigInvalid");
  EXPECT_NE(c.message().find(*dir_ / "net.d/05-broken.conflist" + ": parse error at line 3"),
            std::string::npos)
      << c.message();
  std::filesystem::remove(*dir_ / "net.d/05-broken.conflist");
  EXPECT_TRUE(WaitReady(true));
  WriteConflist(R"({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"no-such-plugin"}]})",
                "05-missing.conflist");
  EXPECT_TRUE(WaitReady(false));
  c = NetworkReady();
  EXPECT_EQ(c.reason(), "NetworkPluginNotFound");
  EXPECT_NE(c.message().find("CNI plugin \"no-such-plugin\" of network \"n\""), std::string::npos)
      << c.message();
  EXPECT_NE(c.message().find(std::string(kPlugins) + ", " + *dir_ / "bin"), std::string::npos)
      << c.message();
  st = RunPod(Pod("missing"), &id);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("the pod network is not ready: CNI plugin \"no-such-plugin\""),
            std::string::npos)
      << st.error_message();
  EXPECT_EQ(LeaseCount(), "0");
  std::filesystem::remove(*dir_ / "net.d/05-missing.conflist");
  std::filesystem::remove(*dir_ / "net.d/10-berth.conflist");
  EXPECT_TRUE(WaitReady(false));
  EXPECT_NE(NetworkReady().message().find("no network config found"), std::string::npos);
}

class ShortTimeoutE2E : public NetworkE2E {
  std::string CniExtra() override { return "plugin_timeout = \"3s\"\n"; }
};

TEST_F(ShortTimeoutE2E, FailingAndHangingPluginsLeaveNothingBehind) {
  ASSERT_TRUE(WaitReady(true));
  std::string before = HostState();
  // Warm up: the bridge and portmap's top-level chains are made once and stay, as with any runtime.
  RemovePod(MustRunPod(Pod("warm", 18081)));
  before = HostState();

  WritePlugin("failer",
              "cat >/dev/null\n[ \"$CNI_COMMAND\" = ADD ] || exit 0\n"
              "echo '{\"cniVersion\":\"1.0.0\",\"code\":101,\"msg\":\"failer says "
              "no\",\"details\":\"by design\"}'\nexit 1\n");
  WriteConflist(Conflist(false, "failer"));
  ASSERT_TRUE(WaitFor([&] { return NetworkReady().status() && HostState() == before; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::string id;
  auto st = RunPod(Pod("fails", 18082), &id);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.error_message().find("CNI plugin \"failer\" of network \"berth-e2e\" failed to ADD: "
                                    "code 101: failer says no (by design)"),
            std::string::npos)
      << st.error_message();
  v1::ListPodSandboxResponse pods;
  ASSERT_TRUE(d_->rt().ListPodSandbox(Ctx().get(), {}, &pods).ok());
  EXPECT_EQ(pods.items_size(), 0);
  EXPECT_EQ(HostState(), before);

  WritePlugin("hanger", "cat >/dev/null\n[ \"$CNI_COMMAND\" = ADD ] || exit 0\nexec sleep 60\n");
  WriteConflist(Conflist(false, "hanger"));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_TRUE(WaitReady(true));
  auto t0 = std::chrono::steady_clock::now();
  st = RunPod(Pod("hangs", 18083), &id);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.error_message().find(
                "CNI plugin \"hanger\" of network \"berth-e2e\" ADD timed out after 3s (killed)"),
            std::string::npos)
      << st.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
  EXPECT_EQ(HostState(), before);
}

TEST_F(NetworkE2E, KillDuringAddThenRestartReleasesEverything) {
  ASSERT_TRUE(WaitReady(true));
  RemovePod(MustRunPod(Pod("warm", 18084)));
  std::string before = HostState();
  std::string marker = *dir_ / "stuck.pid";
  WritePlugin("stuck", "cat >/dev/null\n[ \"$CNI_COMMAND\" = ADD ] || exit 0\necho $$ > " + marker +
                           "\nexec sleep 60\n");
  WriteConflist(Conflist(false, "stuck"));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_TRUE(WaitReady(true));
  auto pending = std::async(std::launch::async, [&] {
    std::string id;
    return RunPod(Pod("killed", 18085), &id);
  });
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(marker); }, 30)) << d_->Log();
  // bridge and portmap have done their part: an address is leased, a veth and rules exist.
  EXPECT_EQ(LeaseCount(), "1");
  d_->Kill(SIGKILL);
  pending.wait();
  pid_t stuck = std::stoi(ReadAll(marker));
  kill(stuck, SIGKILL);
  WriteConflist(Conflist());
  ASSERT_EQ(d_->Start(), "");
  EXPECT_EQ(HostState(), before) << d_->Log();
  v1::ListPodSandboxResponse pods;
  ASSERT_TRUE(d_->rt().ListPodSandbox(Ctx().get(), {}, &pods).ok());
  EXPECT_EQ(pods.items_size(), 0);
}

TEST_F(NetworkE2E, StopAfterRestartUsesTheCachedResult) {
  ASSERT_TRUE(WaitReady(true));
  std::string id = MustRunPod(Pod("cached", 18086));
  std::string ip = PodStatus(id).network().ip();
  d_->Kill(SIGKILL);
  // The configuration is gone: DEL can only come from what berth cached.
  std::filesystem::remove(*dir_ / "net.d/10-berth.conflist");
  ASSERT_EQ(d_->Start(), "");
  EXPECT_EQ(PodStatus(id).network().ip(), ip);
  EXPECT_EQ(LeaseCount(), "1");
  RemovePod(id);
  EXPECT_EQ(LeaseCount(), "0");
  EXPECT_EQ(Host("iptables-save -t nat | grep -c 18086 || true"), "0\n");
}

TEST_F(NetworkE2E, HostNetworkPodsCallNoPlugin) {
  ASSERT_TRUE(WaitReady(true));
  auto c = Pod("hostnet");
  c.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_network(v1::NODE);
  c.clear_hostname();  // a host-network pod has the node's
  std::string id = MustRunPod(c);
  EXPECT_EQ(PodStatus(id).network().ip(), "");
  EXPECT_EQ(LeaseCount(), "0");
  RemovePod(id);
}

// A pod with its own user namespace (KEP-127) on the CNI network: its network namespace belongs
// to that user namespace and CNI attaches it as any other. It gets an address, serves the host and
// another pod, reaches the host, sees its own interfaces in sysfs, owns /proc/sys/net, and its
// stop and removal release the attachment and the namespace files.
TEST_F(NetworkE2E, UsernsPodOnTheBridge) {
  ASSERT_TRUE(WaitReady(true)) << NetworkReady().message();
  v1::StatusResponse sresp;
  v1::StatusRequest sreq;
  sreq.set_verbose(true);
  ASSERT_TRUE(d_->rt().Status(Ctx().get(), sreq, &sresp).ok());
  for (const auto& h : sresp.runtime_handlers())
    if (h.name() == "runc" && !h.features().user_namespaces())
      GTEST_SKIP() << "runc cannot run pods in a user namespace here: "
                   << sresp.info().at("runtimeHandlers");
  constexpr uint32_t kHost = 3300000000u;
  auto pu = Pod("userns");
  auto* u = pu.mutable_linux()
                ->mutable_security_context()
                ->mutable_namespace_options()
                ->mutable_userns_options();
  u->set_mode(v1::POD);
  for (auto* l : {u->mutable_uids(), u->mutable_gids()}) {
    auto* m = l->Add();
    m->set_host_id(kHost);
    m->set_length(65536);
  }
  std::string a = MustRunPod(pu);
  auto pb = Pod("plain");
  std::string b = MustRunPod(pb);
  ASSERT_FALSE(a.empty());
  std::string ipa = PodStatus(a).network().ip();
  EXPECT_TRUE(InSubnet(ipa, subnet_)) << ipa;

  std::string web = StartContainer(a, pu, "httpd",
                                   "mkdir -p /www && echo hello-from-userns > /www/index.html && "
                                   "exec /bin/busybox httpd -f -p 80 -h /www");
  std::string cli = StartContainer(b, pb, "cli", "exec /bin/busybox sleep 3600");
  EXPECT_EQ(Exec(web, "echo $(cat /proc/self/uid_map)"), "0 " + std::to_string(kHost) + " 65536\n");
  EXPECT_EQ(Exec(web,
                 "/bin/busybox ls /sys/class/net | /bin/busybox sort | "
                 "/bin/busybox tr '\\n' ' '"),
            "eth0 lo ")
      << "sysfs shows the pod's own interfaces";
  EXPECT_EQ(Exec(web, "/bin/busybox stat -c %u /proc/sys/net/ipv4/ip_unprivileged_port_start"),
            "0\n")
      << "/proc/sys/net belongs to the pod's root";
  EXPECT_EQ(Exec(web, "echo $(/bin/busybox ls /proc/sys/net/ipv4/conf)"), "all default eth0 lo\n")
      << "/proc/sys/net is the pod's network namespace";
  auto http = [](const std::string& host) {
    return "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 3 " + host + " 80";
  };
  std::string out;
  WaitFor(
      [&] { return (out = Exec(cli, http(ipa))).find("hello-from-userns") != std::string::npos; });
  EXPECT_NE(out.find("hello-from-userns"), std::string::npos) << "pod to userns pod: " << out;
  WaitFor([&] { return (out = Host(http(ipa))).find("hello-from-userns") != std::string::npos; });
  EXPECT_NE(out.find("hello-from-userns"), std::string::npos) << "host to userns pod: " << out;
  EXPECT_EQ(Exec(web, "/bin/busybox ping -c 1 -W 3 " + gateway_ + " >/dev/null && echo up"), "up\n")
      << "userns pod to the host (the bridge gateway)";

  EXPECT_EQ(PodStatus(a).linux().namespaces().options().userns_options().mode(), v1::POD);
  RemovePod(a);
  RemovePod(b);
  EXPECT_EQ(LeaseCount(), "0") << "the addresses are released";
  EXPECT_EQ(Host("ip -o link show | grep -c veth || true"), "0\n");
  std::error_code ec;
  for (const char* sub : {"netns", "userns"})
    EXPECT_TRUE(std::filesystem::is_empty(
                    *dir_ / ("state/io.containerd.grpc.v1.cri/" + std::string(sub)), ec) ||
                ec)
        << sub;
  std::string hs = HostState();
  size_t m = hs.find("mounts:\n") + 8;
  EXPECT_EQ(hs.substr(m, hs.find("netns files:") - m), "") << "no mount left: " << hs;
}

// A runtime handler with its own networks (cni_conf_dir): its pods get addresses from those.
class HandlerNetworkE2E : public NetworkE2E {
 protected:
  // Called before berthd starts: the handler's network is there from the beginning.
  std::string Extra() override {
    std::string other = Conflist();
    std::string sub = subnet_.substr(0, subnet_.rfind('.'));  // 10.231.x
    other_sub_ = "10.233" + sub.substr(sub.find('.', 3));     // 10.233.x
    auto replace_all = [&](const std::string& from, const std::string& to) {
      for (size_t p = 0; (p = other.find(from, p)) != std::string::npos; p += to.size())
        other.replace(p, from.size(), to);
    };
    replace_all(sub + ".", other_sub_ + ".");
    replace_all("\"berth-e2e\"", "\"other-net\"");
    replace_all("\"" + bridge_ + "\"", "\"" + bridge_ + "o\"");
    WriteFile(*dir_ / "other.d/10-other.conflist", other);
    return "[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.other]\n"
           "runtime_type = \"io.containerd.runc.v2\"\n"
           "cni_conf_dir = \"" +
           *dir_ / "other.d" + "\"\n";
  }
  std::string other_sub_;
};

TEST_F(HandlerNetworkE2E, AHandlerHasItsOwnNetworks) {
  ASSERT_TRUE(WaitReady(true));
  v1::RunPodSandboxRequest req;
  *req.mutable_config() = Pod("on-other");
  req.set_runtime_handler("other");
  v1::RunPodSandboxResponse resp;
  auto st = d_->rt().RunPodSandbox(Ctx(120).get(), req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  std::string ip = PodStatus(resp.pod_sandbox_id()).network().ip();
  EXPECT_EQ(ip.rfind(other_sub_ + ".", 0), 0u) << ip;
  RemovePod(resp.pod_sandbox_id());
  std::string id = MustRunPod(Pod("on-default"));
  EXPECT_TRUE(InSubnet(PodStatus(id).network().ip(), subnet_));
  RemovePod(id);
  EXPECT_EQ(LeaseCount(), "0");
}

int EnvInt(const char* name, int def) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : def;
}

TEST_F(NetworkE2E, CyclesAndParallelPodsLeakNothing) {
  ASSERT_TRUE(WaitReady(true));
  RemovePod(MustRunPod(Pod("warm", 18090)));
  std::string before = HostState();
  int cycles = EnvInt("BERTH_E2E_NET_CYCLES", 10), parallel = EnvInt("BERTH_E2E_NET_PARALLEL", 10);
  for (int i = 0; i < cycles; ++i) {
    std::string id = MustRunPod(Pod("cycle-" + std::to_string(i), 18091));
    ASSERT_FALSE(id.empty());
    RemovePod(id);
  }
  EXPECT_EQ(HostState(), before) << "after " << cycles << " cycles";
  std::vector<std::future<std::string>> runs;
  for (int i = 0; i < parallel; ++i) {
    runs.push_back(std::async(std::launch::async, [this, i] {
      return MustRunPod(Pod("par-" + std::to_string(i), 18100 + i));
    }));
  }
  std::set<std::string> ids, ips;
  for (auto& r : runs) ids.insert(r.get());
  for (const auto& id : ids) ips.insert(PodStatus(id).network().ip());
  EXPECT_EQ(ips.size(), static_cast<size_t>(parallel)) << "distinct addresses";
  EXPECT_EQ(LeaseCount(), std::to_string(parallel));
  std::vector<std::thread> rm;
  for (const auto& id : ids) rm.emplace_back([this, id] { RemovePod(id); });
  for (auto& t : rm) t.join();
  EXPECT_EQ(HostState(), before) << "after " << parallel << " parallel pods";
}

}  // namespace
