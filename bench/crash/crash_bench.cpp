// bench/crash: with N containers recorded (M of them running), the time from berthd's start until
// its socket answers Version, after SIGKILL (recovery of every record against the host) and after
// a clean stop (SIGTERM) of the same store, alternated in the same run.
//
//   crash_bench [--containers N] [--running M] [--rounds R]     (defaults 1000, 500, 5)
#include "berthd_proc.h"  // first: its enum Signal names collide with <signal.h> macros

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "image_support.h"
#include "support/support.h"

namespace v1 = runtime::v1;
using berth::testing::Deadline;
using Clock = std::chrono::steady_clock;

namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double TimedStart(berth::testing::BerthdProc& d) {
  auto t0 = Clock::now();
  std::string err = d.Start(std::chrono::seconds(300));
  if (!err.empty()) {
    std::fprintf(stderr, "%s\n", err.c_str());
    std::exit(1);
  }
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  int containers = 1000, running = 500, rounds = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--containers")) containers = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--running")) running = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoi(argv[i + 1]);
  }
  std::string reason = berth::testing::ContainerSkipReason("runc");
  if (reason.empty() && berth::testing::BusyboxPath().empty())
    reason = "busybox-static is not installed";
  if (!reason.empty()) {
    std::printf("skipped: %s\n", reason.c_str());
    return 0;
  }
  berth::testing::TempDir dir("berth-crash-bench");
  berth::testing::BerthdProc d(dir.path(), BERTHD_PATH, BERTH_MONITOR_PATH, BERTH_PAUSE_PATH);
  TimedStart(d);
  berth::testing::TestImageOptions o;
  o.user = "";
  o.entrypoint = {};
  o.cmd = {"sh"};
  auto img = berth::testing::BuildTestImage(dir / "oci", o);
  berth::testing::WriteOciArchive(img, dir / "busybox.tar", "docker.io/test/busybox:bench");
  berth::images::v1::ImportRequest ireq;
  ireq.set_path(dir / "busybox.tar");
  berth::images::v1::ImportResponse iresp;
  if (!d.admin().Import(Deadline().get(), ireq, &iresp).ok()) return 1;
  std::vector<std::string> pods;
  int made = 0, started = 0;
  for (int p = 0; made < containers; ++p) {
    v1::RunPodSandboxRequest rr;
    auto* pc = rr.mutable_config();
    pc->mutable_metadata()->set_name("b" + std::to_string(p));
    pc->mutable_metadata()->set_namespace_("bench");
    pc->mutable_metadata()->set_uid("u" + std::to_string(p));
    v1::RunPodSandboxResponse rp;
    auto st = d.rt().RunPodSandbox(Deadline().get(), rr, &rp);
    if (!st.ok()) return std::fprintf(stderr, "RunPodSandbox: %s\n", st.error_message().c_str()), 1;
    pods.push_back(rp.pod_sandbox_id());
    for (int c = 0; c < 20 && made < containers; ++c, ++made) {
      v1::CreateContainerRequest cr;
      cr.set_pod_sandbox_id(rp.pod_sandbox_id());
      *cr.mutable_sandbox_config() = *pc;
      cr.mutable_config()->mutable_metadata()->set_name("c" + std::to_string(c));
      cr.mutable_config()->mutable_image()->set_image("docker.io/test/busybox:bench");
      for (const char* a : {"sleep", "100000"}) cr.mutable_config()->add_command(a);
      v1::CreateContainerResponse cresp;
      st = d.rt().CreateContainer(Deadline().get(), cr, &cresp);
      if (!st.ok())
        return std::fprintf(stderr, "CreateContainer: %s\n", st.error_message().c_str()), 1;
      if (started < running) {
        v1::StartContainerRequest sr;
        sr.set_container_id(cresp.container_id());
        v1::StartContainerResponse sresp;
        if (d.rt().StartContainer(Deadline().get(), sr, &sresp).ok()) ++started;
      }
    }
  }
  std::printf("store: %d containers (%d running) in %zu pods\n", made, started, pods.size());
  std::vector<double> clean, killed;
  for (int r = 0; r < rounds; ++r) {
    d.Kill(SIGTERM);
    clean.push_back(TimedStart(d));
    d.Kill(SIGKILL);
    killed.push_back(TimedStart(d));
  }
  if (std::getenv("BERTH_BENCH_LOG")) std::printf("%s\n", d.Log().c_str());
  double c = Median(clean), k = Median(killed);
  std::printf(
      "start until Version answers, median of %d (ms): clean %.1f, after SIGKILL %.1f, difference "
      "%.1f "
      "(goal < 100), ratio %.2f\n",
      rounds, c, k, k - c, c > 0 ? k / c : 0);
  for (const auto& p : pods) {
    v1::RemovePodSandboxRequest rr;
    rr.set_pod_sandbox_id(p);
    v1::RemovePodSandboxResponse rresp;
    d.rt().RemovePodSandbox(Deadline(300).get(), rr, &rresp);
  }
  return 0;
}
