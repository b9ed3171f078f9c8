// User namespaces for pods: what a user namespace (mode POD, idmapped image layers) adds to a pod,
// through the real berthd over its CRI socket, against a plain pod with the same image in the same
// run (pods alternate, so both see the same machine load). Per pod: RunPodSandbox,
// CreateContainer, StartContainer (container `true`), its exit, StopPodSandbox, RemovePodSandbox.
// Needs root, the runtime and busybox-static.
//
//   pods_userns_bench [--pods N] [--runtime runc|crun] [--rootfs idmap|copy]
#include "runtime/v1/api.grpc.pb.h"  // first: its enum Signal names collide with <signal.h> macros

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "berth/images/v1/images.grpc.pb.h"
#include "image_support.h"
#include "support/support.h"

namespace v1 = runtime::v1;
using Clock = std::chrono::steady_clock;

namespace {

const char* kImage = "docker.io/bench/busybox:userns";

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::unique_ptr<grpc::ClientContext> Ctx() {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  return c;
}

void Check(const grpc::Status& st, const std::string& what) {
  if (!st.ok()) throw std::runtime_error(what + ": " + st.error_message());
}

class Berthd {
 public:
  Berthd(const std::string& dir, const std::string& runtime, const std::string& rootfs)
      : dir_(dir) {
    socket_ = dir + "/berth.sock";
    const std::string rt =
        "[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes." + runtime;
    std::ostringstream c;
    c << "version = 3\nroot = \"" << dir << "/root\"\nstate = \"" << dir << "/state\"\n"
      << "[grpc]\naddress = \"" << socket_ << "\"\n"
      << "[plugins.\"io.containerd.cri.v1.runtime\"]\nrestrict_oom_score_adj = true\n"
      << "userns_rootfs = \"" << rootfs << "\"\n"
      << "[plugins.\"io.containerd.cri.v1.runtime\".containerd]\ndefault_runtime_name = \""
      << runtime << "\"\n"
      << rt << "]\nruntime_type = \"io.containerd.runc.v2\"\n"
      << rt << ".options]\nBinaryName = \"" << runtime << "\"\n"
      << "[plugins.\"io.containerd.cri.v1.runtime\".cni]\nconf_dir = \"\"\n";
    berth::testing::WriteFile(dir + "/config.toml", c.str());
  }
  ~Berthd() {
    if (pid_ > 0) berth::testing::StopChild(pid_, SIGTERM);
  }
  void Start() {
    pid_ = fork();
    if (pid_ == 0) {
      int fd = open((dir_ + "/berthd.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      setenv("BERTH_MONITOR_PATH", BERTH_MONITOR_PATH, 1);
      setenv("BERTH_PAUSE_PATH", BERTH_PAUSE_PATH, 1);
      setenv("BERTH_RRO_PROBE", BERTH_RRO_PROBE_PATH, 1);
      execl(BERTHD_PATH, BERTHD_PATH, "--config", (dir_ + "/config.toml").c_str(), "--log-level",
            "warn", nullptr);
      _exit(127);
    }
    auto ch = grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials());
    rt_ = v1::RuntimeService::NewStub(ch);
    images_ = berth::images::v1::Images::NewStub(ch);
    for (int i = 0; i < 600; ++i) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
      v1::VersionResponse resp;
      if (access(socket_.c_str(), F_OK) == 0 && rt_->Version(&ctx, {}, &resp).ok()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    throw std::runtime_error("berthd did not start:\n" + ReadAll(dir_ + "/berthd.log"));
  }
  v1::RuntimeService::Stub& rt() { return *rt_; }
  berth::images::v1::Images::Stub& images() { return *images_; }

 private:
  std::string dir_, socket_;
  pid_t pid_ = -1;
  std::unique_ptr<v1::RuntimeService::Stub> rt_;
  std::unique_ptr<berth::images::v1::Images::Stub> images_;
};

struct Times {
  std::vector<double> run, create, start, exit, stop, remove, total;
};

v1::PodSandboxConfig Pod(const std::string& dir, int i, bool userns) {
  v1::PodSandboxConfig c;
  std::string name = (userns ? "userns-" : "plain-") + std::to_string(i);
  c.mutable_metadata()->set_name(name);
  c.mutable_metadata()->set_namespace_("bench");
  c.mutable_metadata()->set_uid("uid-" + name);
  c.set_log_directory(dir + "/logs");
  if (userns) {
    auto* u = c.mutable_linux()
                  ->mutable_security_context()
                  ->mutable_namespace_options()
                  ->mutable_userns_options();
    u->set_mode(v1::POD);
    for (auto* l : {u->add_uids(), u->add_gids()}) {
      l->set_container_id(0);
      l->set_host_id(3300000000u + 65536u * static_cast<uint32_t>(i % 8));
      l->set_length(65536);
    }
  }
  return c;
}

void OnePod(Berthd& d, const std::string& dir, int i, bool userns, Times* t) {
  auto pc = Pod(dir, i, userns);
  auto t0 = Clock::now();
  v1::RunPodSandboxRequest rr;
  *rr.mutable_config() = pc;
  v1::RunPodSandboxResponse rresp;
  Check(d.rt().RunPodSandbox(Ctx().get(), rr, &rresp), "RunPodSandbox");
  auto t1 = Clock::now();
  v1::CreateContainerRequest cr;
  cr.set_pod_sandbox_id(rresp.pod_sandbox_id());
  *cr.mutable_sandbox_config() = pc;
  cr.mutable_config()->mutable_metadata()->set_name("c");
  cr.mutable_config()->mutable_image()->set_image(kImage);
  cr.mutable_config()->add_command("true");
  v1::CreateContainerResponse cresp;
  Check(d.rt().CreateContainer(Ctx().get(), cr, &cresp), "CreateContainer");
  auto t2 = Clock::now();
  v1::StartContainerRequest sr;
  sr.set_container_id(cresp.container_id());
  v1::StartContainerResponse sresp;
  Check(d.rt().StartContainer(Ctx().get(), sr, &sresp), "StartContainer");
  auto t3 = Clock::now();
  for (;;) {
    v1::ContainerStatusRequest q;
    q.set_container_id(cresp.container_id());
    v1::ContainerStatusResponse qr;
    Check(d.rt().ContainerStatus(Ctx().get(), q, &qr), "ContainerStatus");
    if (qr.status().state() == v1::CONTAINER_EXITED) {
      if (qr.status().exit_code() != 0)
        throw std::runtime_error("container exited " + std::to_string(qr.status().exit_code()));
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  auto t4 = Clock::now();
  v1::StopPodSandboxRequest stop;
  stop.set_pod_sandbox_id(rresp.pod_sandbox_id());
  v1::StopPodSandboxResponse stopr;
  Check(d.rt().StopPodSandbox(Ctx().get(), stop, &stopr), "StopPodSandbox");
  auto t5 = Clock::now();
  v1::RemovePodSandboxRequest rm;
  rm.set_pod_sandbox_id(rresp.pod_sandbox_id());
  v1::RemovePodSandboxResponse rmr;
  Check(d.rt().RemovePodSandbox(Ctx().get(), rm, &rmr), "RemovePodSandbox");
  auto t6 = Clock::now();
  if (!t) return;
  t->run.push_back(Ms(t1 - t0));
  t->create.push_back(Ms(t2 - t1));
  t->start.push_back(Ms(t3 - t2));
  t->exit.push_back(Ms(t4 - t3));
  t->stop.push_back(Ms(t5 - t4));
  t->remove.push_back(Ms(t6 - t5));
  t->total.push_back(Ms(t6 - t0));
}

}  // namespace

int main(int argc, char** argv) {
  int pods = 20;
  std::string runtime = "runc", rootfs = "idmap";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--pods" && i + 1 < argc) {
      pods = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--runtime" && i + 1 < argc) {
      runtime = argv[++i];
    } else if (a == "--rootfs" && i + 1 < argc &&
               (std::string(argv[i + 1]) == "idmap" || std::string(argv[i + 1]) == "copy")) {
      rootfs = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--pods N] [--runtime runc|crun] [--rootfs idmap|copy]\n",
                   argv[0]);
      return 2;
    }
  }
  std::string skip = berth::testing::ContainerSkipReason(runtime);
  if (skip.empty() && berth::testing::BusyboxPath().empty())
    skip = "busybox-static is not installed";
  if (!skip.empty()) {
    std::printf("skipped: %s\n", skip.c_str());
    return 0;
  }
  try {
    berth::testing::TempDir dir("berth-userns-bench");
    ::chmod(dir.path().c_str(), 0711);
    Berthd d(dir.path(), runtime, rootfs);
    d.Start();
    v1::StatusRequest sreq;
    v1::StatusResponse sresp;
    Check(d.rt().Status(Ctx().get(), sreq, &sresp), "Status");
    for (const auto& h : sresp.runtime_handlers()) {
      if (h.name() == runtime && !h.features().user_namespaces()) {
        std::printf("skipped: %s did not prove user namespaces (see berthctl features %s)\n",
                    runtime.c_str(), runtime.c_str());
        return 0;
      }
    }
    berth::testing::TestImageOptions opts;
    opts.user = "";
    opts.entrypoint = {};
    opts.cmd = {"sh"};
    auto img = berth::testing::BuildTestImage(dir / "oci", opts);
    berth::testing::WriteOciArchive(img, dir / "busybox.tar", kImage);
    berth::images::v1::ImportRequest ir;
    ir.set_path(dir / "busybox.tar");
    berth::images::v1::ImportResponse iresp;
    Check(d.images().Import(Ctx().get(), ir, &iresp), "Import");
    Times first;  // the first user-namespaced pod: with --rootfs copy, it makes the copy
    for (int i = 0; i < 3; ++i) {  // warm-up: page cache, the spare pause, the runtime's binary
      OnePod(d, dir.path(), 1000 + i, false, nullptr);
      OnePod(d, dir.path(), 1000 + i, true, i == 0 ? &first : nullptr);
    }
    Times plain, userns;
    for (int i = 0; i < pods; ++i) {
      OnePod(d, dir.path(), i, i % 2 == 1, i % 2 == 1 ? &userns : &plain);
      OnePod(d, dir.path(), i, i % 2 == 0, i % 2 == 0 ? &userns : &plain);
    }
    std::printf(
        "pods_userns_bench: %d pods each, runtime %s, rootfs %s, median ms (plain / userns / "
        "added)\n",
        pods, runtime.c_str(), rootfs.c_str());
    std::printf("  first userns pod's CreateContainer (warm-up): %.2f ms\n", first.create[0]);
    auto row = [](const char* what, const std::vector<double>& a, const std::vector<double>& b) {
      std::printf("  %-22s %8.2f  %8.2f  %+8.2f\n", what, Median(a), Median(b),
                  Median(b) - Median(a));
    };
    row("RunPodSandbox", plain.run, userns.run);
    row("CreateContainer", plain.create, userns.create);
    row("StartContainer", plain.start, userns.start);
    row("exit seen", plain.exit, userns.exit);
    row("StopPodSandbox", plain.stop, userns.stop);
    row("RemovePodSandbox", plain.remove, userns.remove);
    row("whole pod", plain.total, userns.total);
    double added = Median(userns.total) - Median(plain.total);
    std::printf("  added per pod by the user namespace %.2f ms (ratio %.3fx)   goal < 5 ms: %s\n",
                added, Median(userns.total) / Median(plain.total), added < 5 ? "met" : "not met");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pods_userns_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
