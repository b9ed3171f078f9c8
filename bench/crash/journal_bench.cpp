// bench/crash journal_bench: the per-pod cost of the step journal. Part 1 (no root): the journal
// writes of one pod with one container (RunPodSandbox, CreateContainer, StartContainer,
// StopPodSandbox with its container's stop, RemovePodSandbox with its container's removal), run
// through the real step runners (lifecycle/steps.h) on the real record store (SQLite, WAL) with
// records as big as a kubelet pod's, the steps themselves doing nothing. Part 2 (root, runc,
// busybox-static): the same pod lifecycle through a real berthd, in the same run, for the ratio.
//
//   journal_bench [--pods N] [--lifecycles M]     (defaults 500, 20)
#include "berthd_proc.h"  // first: its enum Signal names collide with <signal.h> macros

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "image_support.h"
#include "lifecycle/internal.h"
#include "lifecycle/steps.h"
#include "store/db.h"
#include "support/support.h"

namespace v1 = runtime::v1;
namespace lc = berth::lifecycle;
using berth::testing::Deadline;
using Clock = std::chrono::steady_clock;

namespace {

// The step names of each call, in src/lifecycle's order (a pod with its own network namespace,
// the built-in pause started by berthd, no CNI; one container killed by the pod's stop).
const std::vector<const char*> kRunPod = {"record", "dir",   "files",   "shm",  "netns",
                                          "spec",   "pause", "network", "ready"};
const std::vector<const char*> kCreate = {"record",  "dir",  "snapshot", "rootfs",
                                          "volumes", "spec", "created"};
const std::vector<const char*> kStart = {"monitor", "running"};
const std::vector<const char*> kStopPod = {"stop-containers", "stop-pause", "stop-shm",
                                           "stop-network",    "stop-netns", "stop-notready"};
const std::vector<const char*> kStopCtr = {"stop-kill", "stop-exited"};
const std::vector<const char*> kRemovePod = {"remove-stop", "remove-cgroups", "remove-containers",
                                             "remove-record"};
const std::vector<const char*> kRemoveCtr = {"remove-stop", "remove-runtime", "remove-staging",
                                             "remove-record"};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

v1::PodSandboxConfig PodConfig(int i) {
  v1::PodSandboxConfig c;
  c.mutable_metadata()->set_name("web-" + std::to_string(i) + "-7d9f8c6b5-x2k4q");
  c.mutable_metadata()->set_namespace_("default");
  c.mutable_metadata()->set_uid("5f0c2d3e-8a1b-4c6d-9e7f-0a1b2c3d4e5f");
  c.set_hostname("web-" + std::to_string(i));
  c.set_log_directory("/var/log/pods/default_web_5f0c2d3e-8a1b-4c6d-9e7f-0a1b2c3d4e5f");
  for (int k = 0; k < 5; ++k) {
    (*c.mutable_labels())["app.kubernetes.io/label-" + std::to_string(k)] =
        "value-" + std::to_string(k);
    (*c.mutable_annotations())["kubernetes.io/annotation-" + std::to_string(k)] =
        std::string(60, 'a' + static_cast<char>(k));
  }
  c.mutable_dns_config()->add_servers("10.96.0.10");
  c.mutable_dns_config()->add_searches("default.svc.cluster.local");
  return c;
}

v1::ContainerConfig ContainerConfig() {
  v1::ContainerConfig c;
  c.mutable_metadata()->set_name("web");
  c.mutable_image()->set_image("registry.example.com/team/web:1.2.3");
  for (const char* a : {"/bin/server", "--port=8080", "--config=/etc/web/config.yaml"})
    c.add_command(a);
  for (int k = 0; k < 10; ++k) {
    auto* e = c.add_envs();
    e->set_key("ENV_" + std::to_string(k));
    e->set_value("value-of-environment-variable-" + std::to_string(k));
  }
  for (const char* p : {"/etc/web", "/var/run/secrets/kubernetes.io/serviceaccount"}) {
    auto* m = c.add_mounts();
    m->set_container_path(p);
    m->set_host_path(std::string("/var/lib/kubelet/pods/5f0c2d3e/volumes") + p);
    m->set_readonly(true);
  }
  c.set_log_path("web/0.log");
  (*c.mutable_labels())["io.kubernetes.container.name"] = "web";
  (*c.mutable_annotations())["io.kubernetes.container.hash"] = "8f3c2a1b";
  return c;
}

std::vector<lc::Step> NoOps(const std::vector<const char*>& names) {
  std::vector<lc::Step> steps;
  for (const char* n : names) steps.push_back({n, [] {}});
  return steps;
}

template <class Record>
lc::StepCalls Calls(lc::RecordStore& rs, Record& r, int* writes) {
  lc::StepCalls c;
  c.call = "bench";
  c.id = r.id;
  c.record = [&rs, &r, writes](const std::vector<std::string>& begun) {
    r.steps = begun;
    rs.Save(r);
    ++*writes;
  };
  c.undo = [](const std::string&) {};
  return c;
}

// The journal writes of one pod lifecycle; returns their number.
int JournalOfOnePod(lc::RecordStore& rs, lc::SandboxRecord& sb, lc::ContainerRecord& c) {
  int writes = 0;
  bool undo_failed = false;
  auto sbc = Calls(rs, sb, &writes);
  auto cc = Calls(rs, c, &writes);
  lc::RunSteps(sbc, NoOps(kRunPod), &undo_failed);
  lc::RunSteps(cc, NoOps(kCreate), &undo_failed);
  lc::RunSteps(cc, NoOps(kStart), &undo_failed);
  lc::RunForwardSteps(sbc, NoOps(kStopPod));
  lc::RunForwardSteps(cc, NoOps(kStopCtr));
  lc::RunForwardSteps(sbc, NoOps(kRemovePod));
  lc::RunForwardSteps(cc, NoOps(kRemoveCtr));
  rs.DeleteContainer(c.id);
  rs.DeleteSandbox(sb.id);
  return writes;
}

// Part 2: RunPodSandbox, CreateContainer, StartContainer, StopPodSandbox, RemovePodSandbox
// through a real berthd; per-pod wall times (ms), empty when the host cannot run it.
std::vector<double> Lifecycles(int n, std::string* why) {
  *why = berth::testing::ContainerSkipReason("runc");
  if (why->empty() && berth::testing::BusyboxPath().empty())
    *why = "busybox-static is not installed";
  if (!why->empty()) return {};
  berth::testing::TempDir dir("berth-journal-bench");
  berth::testing::BerthdProc d(dir.path(), BERTHD_PATH, BERTH_MONITOR_PATH, BERTH_PAUSE_PATH);
  if (std::string err = d.Start(); !err.empty()) return *why = err, std::vector<double>{};
  berth::testing::TestImageOptions o;
  o.user = "";
  o.entrypoint = {};
  o.cmd = {"sh"};
  auto img = berth::testing::BuildTestImage(dir / "oci", o);
  berth::testing::WriteOciArchive(img, dir / "busybox.tar", "docker.io/test/busybox:bench");
  berth::images::v1::ImportRequest ireq;
  ireq.set_path(dir / "busybox.tar");
  berth::images::v1::ImportResponse iresp;
  if (!d.admin().Import(Deadline().get(), ireq, &iresp).ok())
    return *why = "import failed", std::vector<double>{};
  std::vector<double> out;
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    v1::RunPodSandboxRequest rr;
    *rr.mutable_config() = PodConfig(i);
    rr.mutable_config()->set_log_directory(dir / ("logs/" + std::to_string(i)));
    v1::RunPodSandboxResponse rp;
    auto st = d.rt().RunPodSandbox(Deadline().get(), rr, &rp);
    v1::CreateContainerRequest cr;
    cr.set_pod_sandbox_id(rp.pod_sandbox_id());
    *cr.mutable_sandbox_config() = rr.config();
    cr.mutable_config()->mutable_metadata()->set_name("c");
    cr.mutable_config()->mutable_image()->set_image("docker.io/test/busybox:bench");
    for (const char* a : {"sleep", "100000"}) cr.mutable_config()->add_command(a);
    cr.mutable_config()->set_log_path("c.log");
    v1::CreateContainerResponse cresp;
    if (st.ok()) st = d.rt().CreateContainer(Deadline().get(), cr, &cresp);
    v1::StartContainerRequest sr;
    sr.set_container_id(cresp.container_id());
    v1::StartContainerResponse sresp;
    if (st.ok()) st = d.rt().StartContainer(Deadline().get(), sr, &sresp);
    v1::StopPodSandboxRequest spr;
    spr.set_pod_sandbox_id(rp.pod_sandbox_id());
    v1::StopPodSandboxResponse sprr;
    if (st.ok()) st = d.rt().StopPodSandbox(Deadline().get(), spr, &sprr);
    v1::RemovePodSandboxRequest rmr;
    rmr.set_pod_sandbox_id(rp.pod_sandbox_id());
    v1::RemovePodSandboxResponse rmrr;
    if (st.ok()) st = d.rt().RemovePodSandbox(Deadline().get(), rmr, &rmrr);
    if (!st.ok()) return *why = st.error_message(), std::vector<double>{};
    out.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int pods = 500, lifecycles = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--pods")) pods = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--lifecycles")) lifecycles = std::atoi(argv[i + 1]);
  }
  berth::testing::TempDir dir("berth-journal-bench");
  lc::RecordStore rs(berth::store::Database::Open(dir / "lifecycle.db"));
  std::vector<double> per_pod;
  int writes = 0;
  for (int i = 0; i < pods; ++i) {
    lc::SandboxRecord sb;
    sb.id = std::string(60, 's') + std::to_string(1000 + i);
    sb.name_key = "web_default_" + std::to_string(i);
    sb.handler = "runc";
    sb.config = PodConfig(i);
    sb.dir = "/run/berth/io.containerd.grpc.v1.cri/sandboxes/" + sb.id;
    sb.netns_path = "/run/berth/io.containerd.grpc.v1.cri/netns/" + sb.id;
    sb.cgroups_path = "/kubepods/besteffort/pod5f0c2d3e/" + sb.id;
    lc::ContainerRecord c;
    c.id = std::string(60, 'c') + std::to_string(1000 + i);
    c.sandbox_id = sb.id;
    c.name_key = "web_" + sb.name_key;
    c.config = ContainerConfig();
    c.dir = "/run/berth/io.containerd.grpc.v1.cri/containers/" + c.id;
    c.log_path = sb.config.log_directory() + "/web/0.log";
    for (const auto& m : c.config.mounts()) c.mounts.push_back(m);
    auto t0 = Clock::now();
    writes = JournalOfOnePod(rs, sb, c);
    per_pod.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  double journal_us = Median(per_pod);
  std::printf(
      "step journal: %d writes per pod (one container), median %.0f us per pod, %.1f us per "
      "write (%d pods)\n",
      writes, journal_us, journal_us / writes, pods);
  std::string why;
  auto life = Lifecycles(lifecycles, &why);
  if (life.empty()) {
    std::printf("pod lifecycle through berthd: skipped: %s\n", why.c_str());
    return 0;
  }
  double life_ms = Median(life);
  std::printf(
      "pod lifecycle through berthd (run, create, start, stop, remove): median %.1f ms "
      "(%d pods); the journal is %.1f%% of it\n",
      life_ms, lifecycles, 100.0 * journal_us / 1000.0 / life_ms);
  return 0;
}
