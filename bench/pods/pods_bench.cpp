// Pods and containers: per-pod overhead of berth's RuntimeService (pod sandbox + one container,
// through berth-monitor and runc) against the same container through a bare `runc run`, measured
// in the same run; process RSS idle and with running containers; berth-monitor RSS; List latency
// with many containers. Needs root and runc.
//
//   pods_bench [--pods N] [--running N] [--list N]
#include "runtime/v1/api.pb.h"  // first: its enum Signal names collide with <signal.h> macros

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <numeric>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/exec.h"
#include "common/fs.h"
#include "lifecycle/service.h"
#include "snapshot/snapshotter.h"
#include "support/support.h"

namespace v1 = runtime::v1;
using Clock = std::chrono::steady_clock;

namespace {

class BusyboxImages : public berth::lifecycle::ImageProvider {
 public:
  explicit BusyboxImages(const std::string& root) {
    snap_ = berth::snapshot::OverlaySupported(root) ? berth::snapshot::NewOverlay(root)
                                                    : berth::snapshot::NewNative(root);
    snap_->Prepare("x", "");
    berth::testing::MakeBusyboxRootfs(snap_->ApplyDir("x"));
    snap_->Commit("chain", "x");
  }
  std::optional<berth::lifecycle::ImageInfo> Resolve(const std::string&) override {
    berth::lifecycle::ImageInfo i;
    i.id = "sha256:busybox";
    i.ref = "busybox";
    i.chain_id = "chain";
    i.config_json = R"({"config":{"Env":["PATH=/bin"]}})";
    return i;
  }
  berth::snapshot::Snapshotter& snapshotter() override { return *snap_; }

 private:
  std::unique_ptr<berth::snapshot::Snapshotter> snap_;
};

long RssKb(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int pods = 10, running = 100, list = 1000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--pods")) pods = std::atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--running")) running = std::atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--list")) list = std::atoi(argv[i + 1]);
  }
  std::string skip = berth::testing::ContainerSkipReason("runc");
  if (!skip.empty()) {
    std::printf("skipped: %s\n", skip.c_str());
    return 0;
  }
  berth::testing::TempDir dir("berth-pods-bench");
  auto images = std::make_shared<BusyboxImages>(dir / "snapshots");
  berth::lifecycle::Options o;
  o.root_dir = dir / "root";
  o.state_dir = dir / "state";
  o.monitor_path = BERTH_MONITOR_PATH;
  o.pause_path = BERTH_PAUSE_PATH;
  o.restrict_oom_score_adj = true;
  o.images = images;
  long rss_start = RssKb(getpid());
  berth::lifecycle::RuntimeService svc(o);
  long rss_idle = RssKb(getpid());

  int seq = 0;
  auto run_pod = [&](const std::vector<std::string>& cmd, bool wait_exit, std::string* cid) {
    v1::RunPodSandboxRequest rp;
    auto* pc = rp.mutable_config();
    pc->mutable_metadata()->set_name("bench-" + std::to_string(seq++));
    pc->mutable_metadata()->set_namespace_("bench");
    pc->mutable_metadata()->set_uid(std::to_string(seq));
    v1::RunPodSandboxResponse rpr;
    svc.RunPodSandbox(rp, &rpr);
    v1::CreateContainerRequest cc;
    cc.set_pod_sandbox_id(rpr.pod_sandbox_id());
    cc.mutable_config()->mutable_metadata()->set_name("c");
    cc.mutable_config()->mutable_image()->set_image("busybox");
    for (const auto& a : cmd) cc.mutable_config()->add_command(a);
    *cc.mutable_sandbox_config() = *pc;
    v1::CreateContainerResponse ccr;
    svc.CreateContainer(cc, &ccr);
    v1::StartContainerRequest sc;
    sc.set_container_id(ccr.container_id());
    svc.StartContainer(sc);
    if (wait_exit) {
      v1::ContainerStatusRequest sr;
      sr.set_container_id(ccr.container_id());
      for (;;) {
        v1::ContainerStatusResponse s;
        svc.ContainerStatus(sr, &s);
        if (s.status().state() == v1::CONTAINER_EXITED) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
    if (cid) *cid = ccr.container_id();
    return rpr.pod_sandbox_id();
  };
  auto remove_pod = [&](const std::string& id) {
    v1::RemovePodSandboxRequest r;
    r.set_pod_sandbox_id(id);
    svc.RemovePodSandbox(r);
  };

  // 1. `true`: pod + container to exit, against bare runc run.
  std::vector<double> berth_true, runc_true;
  std::string bundle = dir / "bare";
  berth::testing::MakeBusyboxRootfs(bundle + "/rootfs");
  auto spec = berth::exec::Run({"runc", "spec", "--bundle", bundle});
  if (!spec.ok()) {
    std::printf("runc spec failed: %s\n", spec.err.c_str());
    return 1;
  }
  {
    auto j = nlohmann::json::parse(berth::fs::ReadFile(bundle + "/config.json"));
    j["process"]["terminal"] = false;
    j["process"]["args"] = {"/bin/true"};
    j["process"]["oomScoreAdj"] = std::stoi(berth::fs::ReadFile("/proc/self/oom_score_adj"));
    berth::fs::WriteFileAtomic(bundle + "/config.json", j.dump());
  }
  for (int i = 0; i < pods; ++i) {
    auto t0 = Clock::now();
    std::string id = run_pod({"true"}, true, nullptr);
    berth_true.push_back(Ms(Clock::now() - t0));
    remove_pod(id);
    t0 = Clock::now();
    auto r = berth::exec::Run({"runc", "--root", dir / "bare-root", "run", "--bundle", bundle, "bare-" + std::to_string(i)});
    runc_true.push_back(Ms(Clock::now() - t0));
    if (!r.ok()) std::printf("bare runc run failed: %s\n", r.err.c_str());
  }
  // 2. Long-running: time to running.
  std::vector<double> berth_long;
  std::vector<std::string> long_pods;
  std::vector<std::string> long_ctrs;
  for (int i = 0; i < running; ++i) {
    auto t0 = Clock::now();
    std::string cid;
    long_pods.push_back(run_pod({"sleep", "100000"}, false, &cid));
    long_ctrs.push_back(cid);
    berth_long.push_back(Ms(Clock::now() - t0));
  }
  long rss_running = RssKb(getpid());
  std::vector<long> monitor_rss;
  for (const auto& cid : long_ctrs) {
    v1::ContainerStatusRequest sr;
    sr.set_container_id(cid);
    sr.set_verbose(true);
    v1::ContainerStatusResponse s;
    svc.ContainerStatus(sr, &s);
    int mpid = nlohmann::json::parse(s.info().at("info"))["monitorPid"].get<int>();
    if (long r = RssKb(mpid); r > 0) monitor_rss.push_back(r);
  }
  // 3. List latency with `list` containers (created, in pods of 50).
  int total = static_cast<int>(long_ctrs.size());
  std::vector<std::string> list_pods;
  while (total < list) {
    v1::RunPodSandboxRequest rp;
    auto* pc = rp.mutable_config();
    pc->mutable_metadata()->set_name("list-" + std::to_string(seq++));
    pc->mutable_metadata()->set_namespace_("bench");
    v1::RunPodSandboxResponse rpr;
    svc.RunPodSandbox(rp, &rpr);
    list_pods.push_back(rpr.pod_sandbox_id());
    for (int k = 0; k < 50 && total < list; ++k, ++total) {
      v1::CreateContainerRequest cc;
      cc.set_pod_sandbox_id(rpr.pod_sandbox_id());
      cc.mutable_config()->mutable_metadata()->set_name("c" + std::to_string(k));
      cc.mutable_config()->mutable_image()->set_image("busybox");
      cc.mutable_config()->add_command("true");
      v1::CreateContainerResponse ccr;
      svc.CreateContainer(cc, &ccr);
    }
  }
  std::vector<double> list_ctr, list_pod;
  for (int i = 0; i < 20; ++i) {
    auto t0 = Clock::now();
    v1::ListContainersResponse lr;
    svc.ListContainers({}, &lr);
    list_ctr.push_back(Ms(Clock::now() - t0));
    t0 = Clock::now();
    v1::ListPodSandboxResponse pr;
    svc.ListPodSandbox({}, &pr);
    list_pod.push_back(Ms(Clock::now() - t0));
  }
  v1::ListContainersResponse lr;
  svc.ListContainers({}, &lr);

  double bt = Median(berth_true), rt = Median(runc_true);
  std::printf("pods bench (medians; %d pods of `true`, %d long-running, %d containers listed)\n", pods, running,
              lr.containers_size());
  std::printf("  pod+container `true` to exited via berth : %8.1f ms\n", bt);
  std::printf("  bare `runc run` of `true`                : %8.1f ms\n", rt);
  std::printf("  per-pod overhead                         : %8.1f ms  (ratio %.2fx)\n", bt - rt, rt > 0 ? bt / rt : 0);
  std::printf("  pod+long-running container to running    : %8.1f ms\n", Median(berth_long));
  std::printf("  service RSS: before %ld kB, idle %ld kB, with %d running containers %ld kB\n", rss_start, rss_idle,
              running, rss_running);
  if (!monitor_rss.empty()) {
    std::printf("  berth-monitor RSS: median %ld kB (max %ld kB)\n",
                monitor_rss[monitor_rss.size() / 2], *std::max_element(monitor_rss.begin(), monitor_rss.end()));
  }
  std::printf("  ListContainers (%d): %.3f ms   ListPodSandbox (%zu): %.3f ms\n", lr.containers_size(), Median(list_ctr),
              long_pods.size() + list_pods.size(), Median(list_pod));
  for (const auto& id : long_pods) remove_pod(id);
  for (const auto& id : list_pods) remove_pod(id);
  return 0;
}
