// Networked pods: what berth adds to a pod's lifecycle on a bridge + host-local + portmap network
// (Debian's CNI plugins), against the same plugins driven by a bare CNI ADD/DEL of the same
// configuration, in the same run. Everything runs inside a network namespace the bench makes (the
// bridge, the leases and portmap's rules go with it). Needs root, runc, busybox-static and the
// plugins in /usr/lib/cni.
//
//   pods_network_bench [--pods N] [--parallel N] [--plugins DIR]
//
// Per pod (RunPodSandbox + StopPodSandbox + RemovePodSandbox, one hostPort mapping):
//   bare CNI   the plugins alone: ADD of loopback, bridge -> portmap, then DEL, in a fresh netns
//   no network the same pods on a berthd without CNI (conf_dir = "")
//   networked  the same pods on a berthd with the network
// berth's own cost of the network = networked - no network - bare CNI. As that difference of
// three separate samples drowns in the plugins' own swings on a busy machine, berth's cost of ADD
// is also taken within each networked RunPodSandbox: its time less the wall time of the plugins'
// ADD calls that berth records with the pod (`addMs`), against a RunPodSandbox without network.
// Then --parallel pods are started at once on the networked berthd, against one pod's
// RunPodSandbox.
#include "runtime/v1/api.grpc.pb.h"  // first: its enum Signal names collide with <signal.h> macros

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "berthd_proc.h"
#include "common/exec.h"
#include "network/netns.h"
#include "support/support.h"

namespace v1 = runtime::v1;
using Clock = std::chrono::steady_clock;

namespace {

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::unique_ptr<grpc::ClientContext> Ctx() {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  return c;
}

void Check(const grpc::Status& st, const std::string& what) {
  if (!st.ok()) throw std::runtime_error(what + ": " + st.error_message());
}

using Berthd = berth::testing::BerthdProc;

// A berthd inside the bench's network namespace with `cni` as its cni table, logging warnings only.
std::unique_ptr<Berthd> StartBerthd(const std::string& dir, const std::string& netns,
                                    const std::string& cni) {
  berth::testing::BerthdOptions o;
  o.netns = netns;
  o.log_level = "warn";
  o.extra = "[plugins.\"io.containerd.cri.v1.runtime\".cni]\n" + cni;
  auto d = std::make_unique<Berthd>(dir, BERTHD_PATH, BERTH_MONITOR_PATH, BERTH_PAUSE_PATH, o);
  if (auto err = d->Start(); !err.empty()) throw std::runtime_error(err);
  return d;
}

v1::PodSandboxConfig Pod(const std::string& dir, int i) {
  v1::PodSandboxConfig c;
  c.mutable_metadata()->set_name("bench-" + std::to_string(i));
  c.mutable_metadata()->set_namespace_("bench");
  c.mutable_metadata()->set_uid("uid-" + std::to_string(i));
  c.set_log_directory(dir + "/logs");
  auto* pm = c.add_port_mappings();
  pm->set_container_port(80);
  pm->set_host_port(20000 + i % 20000);
  return c;
}

std::string RunPod(Berthd& d, const v1::PodSandboxConfig& c) {
  v1::RunPodSandboxRequest req;
  *req.mutable_config() = c;
  v1::RunPodSandboxResponse resp;
  Check(d.rt().RunPodSandbox(Ctx().get(), req, &resp), "RunPodSandbox");
  return resp.pod_sandbox_id();
}

void RemovePod(Berthd& d, const std::string& id) {
  v1::StopPodSandboxRequest s;
  s.set_pod_sandbox_id(id);
  v1::StopPodSandboxResponse sr;
  Check(d.rt().StopPodSandbox(Ctx().get(), s, &sr), "StopPodSandbox");
  v1::RemovePodSandboxRequest r;
  r.set_pod_sandbox_id(id);
  v1::RemovePodSandboxResponse rr;
  Check(d.rt().RemovePodSandbox(Ctx().get(), r, &rr), "RemovePodSandbox");
}

// One plugin call as a bare CNI runtime makes it.
std::string Plugin(const std::string& dir, const std::string& cmd, const nlohmann::json& conf,
                   const std::string& id, const std::string& netns, const std::string& ifname) {
  berth::exec::Options o;
  for (char** e = environ; *e; ++e) o.env.emplace_back(*e);
  o.env.push_back("CNI_COMMAND=" + cmd);
  o.env.push_back("CNI_CONTAINERID=" + id);
  o.env.push_back("CNI_NETNS=" + netns);
  o.env.push_back("CNI_IFNAME=" + ifname);
  o.env.push_back("CNI_PATH=" + dir);
  o.stdin_data = conf.dump();
  auto r = berth::exec::Run({dir + "/" + conf["type"].get<std::string>()}, o);
  if (!r.ok())
    throw std::runtime_error(conf["type"].get<std::string>() + " " + cmd + ": " + r.out + r.err);
  return r.out;
}

// ADD of loopback and the list, then DEL, as libcni does; returns the time of the plugin calls.
double BareCni(const std::string& plugins, const nlohmann::json& list, const std::string& netns,
               int i) {
  std::string id = "bare" + std::to_string(i);
  nlohmann::json lo = {{"cniVersion", "1.0.0"}, {"name", "cni-loopback"}, {"type", "loopback"}};
  nlohmann::json caps = {
      {"portMappings",
       {{{"hostPort", 20000 + i % 20000}, {"containerPort", 80}, {"protocol", "tcp"}}}}};
  auto conf_of = [&](const nlohmann::json& p, const nlohmann::json& prev) {
    nlohmann::json c = p;
    c["name"] = list["name"];
    c["cniVersion"] = list["cniVersion"];
    if (p.contains("capabilities")) c["runtimeConfig"] = caps;
    if (!prev.is_null()) c["prevResult"] = prev;
    return c;
  };
  auto t0 = Clock::now();
  Plugin(plugins, "ADD", lo, id, netns, "lo");
  nlohmann::json prev;
  for (const auto& p : list["plugins"])
    prev = nlohmann::json::parse(Plugin(plugins, "ADD", conf_of(p, prev), id, netns, "eth0"));
  for (auto it = list["plugins"].rbegin(); it != list["plugins"].rend(); ++it)
    Plugin(plugins, "DEL", conf_of(*it, prev), id, netns, "eth0");
  Plugin(plugins, "DEL", lo, id, netns, "lo");
  return Ms(Clock::now() - t0);
}

struct Times {
  double total = 0, run = 0, add = 0;  // lifecycle, RunPodSandbox, its plugin ADDs (berth's clock)
};

// The wall time of the plugins' ADD calls berth recorded for pod `id` (0 without a network).
double AddMs(Berthd& d, const std::string& id) {
  v1::PodSandboxStatusRequest r;
  r.set_pod_sandbox_id(id);
  r.set_verbose(true);
  v1::PodSandboxStatusResponse s;
  Check(d.rt().PodSandboxStatus(Ctx().get(), r, &s), "PodSandboxStatus");
  auto info = nlohmann::json::parse(s.info().at("info"));
  return info["cni"].is_object() ? info["cni"].value("addMs", 0.0) : 0.0;
}

// Per-pod lifecycle times on `d` (the status read for the ADD time is not timed).
std::vector<Times> Lifecycles(Berthd& d, const std::string& dir, int n, int base) {
  std::vector<Times> out;
  for (int i = 0; i < n; ++i) {
    Times t;
    auto t0 = Clock::now();
    std::string id = RunPod(d, Pod(dir, base + i));
    auto t1 = Clock::now();
    t.add = AddMs(d, id);
    auto t2 = Clock::now();
    RemovePod(d, id);
    t.run = Ms(t1 - t0);
    t.total = Ms(Clock::now() - t2) + t.run;
    out.push_back(t);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int pods = 20, parallel = 10;
  std::string plugins = "/usr/lib/cni";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--pods")
      pods = std::atoi(argv[i + 1]);
    else if (a == "--parallel")
      parallel = std::atoi(argv[i + 1]);
    else if (a == "--plugins")
      plugins = argv[i + 1];
  }
  std::string skip = berth::testing::ContainerSkipReason("runc");
  if (!skip.empty() || access((plugins + "/bridge").c_str(), X_OK) != 0) {
    std::cerr << "skipped: " << (skip.empty() ? "no CNI plugins in " + plugins : skip) << "\n";
    return 0;
  }
  try {
    berth::testing::TempDir tmp("berth-bench-net");
    const std::string dir = tmp.path();
    std::string netns = dir + "/hostns";
    berth::network::CreateNetns(netns);
    char br[16];
    std::snprintf(br, sizeof br, "bb%x", static_cast<unsigned>(getpid()));
    nlohmann::json list = {{"cniVersion", "1.0.0"},
                           {"name", "bench"},
                           {"plugins",
                            {{{"type", "bridge"},
                              {"bridge", br},
                              {"isGateway", true},
                              {"ipMasq", true},
                              {"ipam",
                               {{"type", "host-local"},
                                {"dataDir", dir + "/ipam"},
                                {"ranges", {{{{"subnet", "10.232.0.0/16"}}}}}}}},
                             {{"type", "portmap"}, {"capabilities", {{"portMappings", true}}}}}}};
    berth::testing::WriteFile(dir + "/net.d/10-bench.conflist", list.dump(2));
    std::filesystem::create_directories(dir + "/plain/net.d");

    // Bare CNI, from a thread in the bench's namespace, each pod in a fresh one; `n` at once.
    auto bare_run = [&](int first, int n) {
      std::vector<double> times(n);
      std::string error;
      std::mutex mu;
      std::vector<std::thread> ts;
      auto t0 = Clock::now();
      for (int k = 0; k < n; ++k) {
        ts.emplace_back([&, k] {
          int fd = open(netns.c_str(), O_RDONLY | O_CLOEXEC);
          try {
            if (fd < 0 || setns(fd, CLONE_NEWNET) != 0)
              throw std::runtime_error("setns into " + netns + ": " + strerror(errno));
            std::string ns = dir + "/pod" + std::to_string(first + k);
            berth::network::CreateNetns(ns);
            times[k] = BareCni(plugins, list, ns, first + k);
            berth::network::RemoveNetns(ns);
          } catch (const std::exception& e) {
            std::lock_guard<std::mutex> lock(mu);
            error = e.what();
          }
          if (fd >= 0) close(fd);
        });
      }
      for (auto& t : ts) t.join();
      if (!error.empty()) throw std::runtime_error("bare CNI: " + error);
      return std::make_pair(times, Ms(Clock::now() - t0));
    };
    bare_run(0, 2);

    std::filesystem::create_directories(dir + "/plain");
    std::filesystem::create_directories(dir + "/net");
    auto plain_d = StartBerthd(dir + "/plain", netns, "conf_dir = \"\"\n");
    auto net_d =
        StartBerthd(dir + "/net", netns,
                    "bin_dirs = [\"" + plugins + "\"]\nconf_dir = \"" + dir + "/net.d\"\n");
    Berthd& plain = *plain_d;
    Berthd& net = *net_d;
    Lifecycles(plain, dir, 2, 0);
    Lifecycles(net, dir, 2, 0);
    std::vector<double> t0, t1, run0, run1, add, own;
    std::vector<double> bare;
    for (int i = 0; i < pods; ++i) {  // interleaved, so that all three see the same machine load
      bare.push_back(bare_run(1000 + i, 1).first[0]);
      Times p = Lifecycles(plain, dir, 1, 100 + i)[0], n = Lifecycles(net, dir, 1, 100 + i)[0];
      t0.push_back(p.total);
      t1.push_back(n.total);
      run0.push_back(p.run);
      run1.push_back(n.run);
      add.push_back(n.add);
      own.push_back(n.run - n.add);  // the networked RunPodSandbox without its plugins' time
    }
    std::vector<double> single;
    for (int i = 0; i < 5; ++i) {
      auto s = Clock::now();
      std::string id = RunPod(net, Pod(dir, 500 + i));
      single.push_back(Ms(Clock::now() - s));
      RemovePod(net, id);
    }
    auto s = Clock::now();
    std::vector<std::future<std::string>> runs;
    for (int i = 0; i < parallel; ++i)
      runs.push_back(
          std::async(std::launch::async, [&, i] { return RunPod(net, Pod(dir, 600 + i)); }));
    std::vector<std::string> ids;
    for (auto& r : runs) ids.push_back(r.get());
    double par = Ms(Clock::now() - s);
    for (const auto& id : ids) RemovePod(net, id);

    double bare_par = bare_run(2000, parallel).second;
    std::vector<double> bare_one;
    for (int i = 0; i < 5; ++i) bare_one.push_back(bare_run(3000 + i, 1).second);
    double b = Median(bare), m0 = Median(t0), m1 = Median(t1), one = Median(single);
    std::printf("pods: %d (medians, ms; shared machine)\n", pods);
    std::printf("  bare CNI ADD+DEL (loopback, bridge, portmap)   %8.1f\n", b);
    std::printf("  pod lifecycle, no network                       %8.1f\n", m0);
    std::printf("  pod lifecycle, networked                        %8.1f  (%.2fx no network)\n", m1,
                m0 > 0 ? m1 / m0 : 0);
    std::printf(
        "  berth's own cost of the network per pod         %8.1f  (networked - no network - bare "
        "CNI)\n",
        m1 - m0 - b);
    std::printf(
        "  RunPodSandbox: no network %.1f, networked %.1f, of it the plugins' ADD %.1f (berth's "
        "clock)\n",
        Median(run0), Median(run1), Median(add));
    std::printf(
        "  berth's own cost of ADD per pod                 %8.1f  (median of networked "
        "RunPodSandbox - its ADD, %.1f, - no network)\n",
        Median(own) - Median(run0), Median(own));
    std::printf("  RunPodSandbox networked, one pod                %8.1f\n", one);
    std::printf("  %d RunPodSandbox in parallel, wall             %8.1f  (%.2fx one pod)\n",
                parallel, par, one > 0 ? par / one : 0);
    double b1 = Median(bare_one);
    std::printf("  %d bare CNI ADD+DEL in parallel, wall           %8.1f  (%.2fx one)\n", parallel,
                bare_par, b1 > 0 ? bare_par / b1 : 0);
    berth::network::RemoveNetns(netns);
  } catch (const std::exception& e) {
    std::cerr << "pods_network_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
