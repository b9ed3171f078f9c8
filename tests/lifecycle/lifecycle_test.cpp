// RuntimeService against real runc and crun (each as the default runtime handler), berth-monitor
// and berth-pause, with a busybox image held by an overlay (or native) snapshotter. Needs root and
// the runtime; skips otherwise.
#include "runtime/v1/api.pb.h"  // first: its enum Signal names collide with <signal.h> macros

#include "lifecycle/service.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/fs.h"
#include "criplugins/criplugins.h"
#include "lifecycle/pause.h"
#include "monitor/client.h"
#include "network/netns.h"
#include "oci/spec.h"
#include "snapshot/snapshotter.h"
#include "store/db.h"
#include "support/support.h"

namespace v1 = runtime::v1;
using berth::Code;
using berth::Error;
using berth::lifecycle::ImageInfo;
using berth::lifecycle::ImageProvider;
using berth::lifecycle::RuntimeService;
using berth::testing::TempDir;

namespace {

Code CodeOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  return Code::kOk;
}

std::string Slurp(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

class BusyboxImages : public ImageProvider {
 public:
  explicit BusyboxImages(const std::string& root) {
    snap_ = berth::snapshot::OverlaySupported(root) ? berth::snapshot::NewOverlay(root)
                                                    : berth::snapshot::NewNative(root);
    snap_->Prepare("busybox-extract", "");
    berth::testing::MakeBusyboxRootfs(snap_->ApplyDir("busybox-extract"));
    snap_->Commit("sha256:busybox-chain", "busybox-extract");
  }
  std::optional<ImageInfo> Resolve(const std::string& ref) override {
    if (ref == "berth.test/pause:1" || ref == "sha256:pause") {
      // A sandbox image on the same layers whose entrypoint is a long-running busybox command.
      ImageInfo i;
      i.id = "sha256:pause";
      i.ref = "berth.test/pause:1";
      i.repo_tags = {i.ref};
      i.chain_id = "sha256:busybox-chain";
      i.config_json = R"({"config":{"Env":["PATH=/bin","PAUSE_IMAGE=yes"],"Entrypoint":["/bin/sleep"],)"
                      R"("Cmd":["100000"],"WorkingDir":"/tmp","User":"nobody"}})";
      return i;
    }
    if (ref != "busybox" && ref != "docker.io/library/busybox:latest" && ref != "sha256:busybox") return std::nullopt;
    ImageInfo i;
    i.id = "sha256:busybox";
    i.ref = "docker.io/library/busybox:latest";
    i.repo_tags = {i.ref};
    i.chain_id = "sha256:busybox-chain";
    i.config_json = R"({"config":{"Env":["PATH=/bin","IMAGE_ENV=1"],"Cmd":["sh"],"StopSignal":"SIGUSR1"}})";
    return i;
  }
  berth::snapshot::Snapshotter& snapshotter() override { return *snap_; }

 private:
  std::unique_ptr<berth::snapshot::Snapshotter> snap_;
};

class LifecycleTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string reason = berth::testing::ContainerSkipReason(GetParam());
    if (!reason.empty()) GTEST_SKIP() << reason;
    if (berth::testing::BusyboxPath().empty()) GTEST_SKIP() << "busybox-static is not installed";
    dir_ = std::make_unique<TempDir>("berth-lifecycle");
    images_ = std::make_shared<BusyboxImages>(*dir_ / "snapshots");
    svc_ = Make();
  }
  void TearDown() override {
    if (svc_) {
      v1::ListPodSandboxResponse pods;
      svc_->ListPodSandbox({}, &pods);
      for (const auto& p : pods.items()) {
        v1::RemovePodSandboxRequest r;
        r.set_pod_sandbox_id(p.id());
        try {
          svc_->RemovePodSandbox(r);
        } catch (...) {
        }
      }
      svc_.reset();
    }
  }

  std::unique_ptr<RuntimeService> Make(const std::string& rro = "",
                                       const std::function<void(berth::lifecycle::Options&)>& edit = {}) {
    berth::lifecycle::Options o;
    o.root_dir = *dir_ / "root";
    o.state_dir = *dir_ / "state";
    o.monitor_path = BERTH_MONITOR_PATH;
    o.pause_path = BERTH_PAUSE_PATH;
    berth::lifecycle::Handler h;
    h.name = GetParam();
    h.binary = GetParam();
    h.treat_ro_mounts_as_rro = rro;
    o.handlers[h.name] = h;
    o.default_handler = h.name;
    o.restrict_oom_score_adj = true;
    o.images = images_;
    o.poll_interval = std::chrono::milliseconds(50);
    if (edit) edit(o);
    return std::make_unique<RuntimeService>(o);
  }

  v1::PodSandboxConfig PodConfig(const std::string& name) {
    v1::PodSandboxConfig c;
    c.mutable_metadata()->set_name(name);
    c.mutable_metadata()->set_namespace_("default");
    c.mutable_metadata()->set_uid("uid-" + name);
    c.set_hostname(name + "-host");
    c.set_log_directory(*dir_ / ("logs/" + name));
    (*c.mutable_labels())["app"] = name;
    c.mutable_dns_config()->add_servers("10.0.0.10");
    c.mutable_dns_config()->add_searches("svc.cluster.local");
    c.mutable_dns_config()->add_options("ndots:5");
    return c;
  }

  std::string RunPod(const v1::PodSandboxConfig& cfg) {
    v1::RunPodSandboxRequest req;
    *req.mutable_config() = cfg;
    v1::RunPodSandboxResponse resp;
    svc_->RunPodSandbox(req, &resp);
    return resp.pod_sandbox_id();
  }

  v1::ContainerConfig CtrConfig(const std::string& name, const std::string& script) {
    v1::ContainerConfig c;
    c.mutable_metadata()->set_name(name);
    c.mutable_image()->set_image("busybox");
    c.add_command("sh");
    c.add_command("-c");
    c.add_command(script);
    c.set_log_path(name + ".log");
    return c;
  }

  std::string Create(const std::string& pod, const v1::PodSandboxConfig& pcfg, const v1::ContainerConfig& c) {
    v1::CreateContainerRequest req;
    req.set_pod_sandbox_id(pod);
    *req.mutable_config() = c;
    *req.mutable_sandbox_config() = pcfg;
    v1::CreateContainerResponse resp;
    svc_->CreateContainer(req, &resp);
    return resp.container_id();
  }

  void Start(const std::string& id) {
    v1::StartContainerRequest r;
    r.set_container_id(id);
    svc_->StartContainer(r);
  }

  v1::ContainerStatus Status(const std::string& id) {
    v1::ContainerStatusRequest r;
    r.set_container_id(id);
    v1::ContainerStatusResponse resp;
    svc_->ContainerStatus(r, &resp);
    return resp.status();
  }

  v1::ContainerStatus WaitExited(const std::string& id) {
    for (int i = 0; i < 6000; ++i) {
      auto st = Status(id);
      if (st.state() == v1::CONTAINER_EXITED) return st;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "container " << id << " did not exit";
    return Status(id);
  }

  v1::ExecSyncResponse Exec(const std::string& id, std::vector<std::string> cmd, int64_t timeout = 0) {
    v1::ExecSyncRequest r;
    r.set_container_id(id);
    for (auto& c : cmd) r.add_cmd(c);
    r.set_timeout(timeout);
    v1::ExecSyncResponse resp;
    svc_->ExecSync(r, &resp);
    return resp;
  }

  // Runs `script` in a new container of a new pod (after `edit` changes its config) to the end;
  // returns its CRI log.
  std::string RunToEnd(const std::string& name, const std::string& script,
                       const std::function<void(v1::ContainerConfig&)>& edit = {}, int* exit_code = nullptr) {
    auto pcfg = PodConfig(name);
    std::string pod = RunPod(pcfg);
    auto c = CtrConfig(name, script);
    if (edit) edit(c);
    std::string id = Create(pod, pcfg, c);
    Start(id);
    auto st = WaitExited(id);
    if (exit_code) *exit_code = st.exit_code();
    return Slurp(st.log_path());
  }

  // The pause process's pid, once `runc start` has let it exec its command (runc start returns
  // before the runtime's init process has exec'd).
  int PausePid(const nlohmann::json& info) {
    int pid = info["pid"].get<int>();
    for (int i = 0; i < 500; ++i) {
      std::string cmd = Slurp("/proc/" + std::to_string(pid) + "/cmdline");
      if (!cmd.empty() && cmd.find(GetParam()) == std::string::npos &&
          cmd.rfind("/proc/self/exe", 0) != 0)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return pid;
  }

  nlohmann::json VerboseInfo(const std::string& pod) {
    v1::PodSandboxStatusRequest r;
    r.set_pod_sandbox_id(pod);
    r.set_verbose(true);
    v1::PodSandboxStatusResponse resp;
    svc_->PodSandboxStatus(r, &resp);
    return nlohmann::json::parse(resp.info().at("info"));
  }

  std::unique_ptr<TempDir> dir_;
  std::shared_ptr<BusyboxImages> images_;
  std::unique_ptr<RuntimeService> svc_;
};

TEST_P(LifecycleTest, FullLifecycleWithLogsAndEvents) {
  auto events = svc_->SubscribeEvents();
  auto pcfg = PodConfig("web");
  std::string pod = RunPod(pcfg);

  v1::PodSandboxStatusRequest sreq;
  sreq.set_pod_sandbox_id(pod);
  sreq.set_verbose(true);
  v1::PodSandboxStatusResponse sresp;
  svc_->PodSandboxStatus(sreq, &sresp);
  EXPECT_EQ(sresp.status().state(), v1::SANDBOX_READY);
  EXPECT_EQ(sresp.status().metadata().name(), "web");
  EXPECT_EQ(sresp.status().runtime_handler(), "");  // as the request named it: the default
  EXPECT_EQ(nlohmann::json::parse(sresp.info().at("info"))["runtimeHandler"], GetParam());
  EXPECT_EQ(sresp.status().network().ip(), "");
  EXPECT_EQ(sresp.status().labels().at("app"), "web");
  EXPECT_NE(sresp.info().at("info").find("netNamespacePath"), std::string::npos);

  auto c = CtrConfig("hello",
                     "echo hello; printf partial; sleep 0.2; echo ' line'; echo err >&2; "
                     "cat /etc/hostname; grep nameserver /etc/resolv.conf; echo $IMAGE_ENV; "
                     "ls /dev/shm >/dev/null && echo shm-ok");
  (*c.mutable_labels())["tier"] = "front";
  std::string id = Create(pod, pcfg, c);
  EXPECT_EQ(Status(id).state(), v1::CONTAINER_CREATED);
  Start(id);
  auto st = WaitExited(id);
  EXPECT_EQ(st.exit_code(), 0);
  EXPECT_EQ(st.reason(), "Completed");
  EXPECT_GT(st.started_at(), 0);
  EXPECT_GE(st.finished_at(), st.started_at());
  EXPECT_EQ(st.image().image(), "docker.io/library/busybox:latest");
  EXPECT_EQ(st.image_ref(), "sha256:busybox");
  EXPECT_EQ(st.log_path(), *dir_ / "logs/web/hello.log");
  std::string log = Slurp(st.log_path());
  EXPECT_NE(log.find(" stdout F hello\n"), std::string::npos) << log;
  EXPECT_NE(log.find(" stdout F partial line\n"), std::string::npos) << log;
  EXPECT_NE(log.find(" stderr F err\n"), std::string::npos) << log;
  EXPECT_NE(log.find("web-host"), std::string::npos) << log;
  EXPECT_NE(log.find("nameserver 10.0.0.10"), std::string::npos) << log;
  EXPECT_NE(log.find(" stdout F 1\n"), std::string::npos) << log;
  EXPECT_NE(log.find("shm-ok"), std::string::npos) << log;

  v1::ListContainersRequest lreq;
  (*lreq.mutable_filter()->mutable_label_selector())["tier"] = "front";
  v1::ListContainersResponse lresp;
  svc_->ListContainers(lreq, &lresp);
  ASSERT_EQ(lresp.containers_size(), 1);
  EXPECT_EQ(lresp.containers(0).state(), v1::CONTAINER_EXITED);
  lreq.mutable_filter()->mutable_state()->set_state(v1::CONTAINER_RUNNING);
  lresp.Clear();
  svc_->ListContainers(lreq, &lresp);
  EXPECT_EQ(lresp.containers_size(), 0);

  v1::RemoveContainerRequest rreq;
  rreq.set_container_id(id);
  svc_->RemoveContainer(rreq);
  svc_->RemoveContainer(rreq);  // idempotent
  EXPECT_EQ(CodeOf([&] { Status(id); }), Code::kNotFound);
  // Its files go right after the reply.
  EXPECT_TRUE(berth::testing::Eventually([&] { return !berth::fs::Exists(*dir_ / ("state/containers/" + id)); }));

  std::vector<v1::ContainerEventType> types;
  v1::ContainerEventResponse ev;
  while (events->Next(&ev, std::chrono::milliseconds(100))) {
    if (ev.container_id() == id) types.push_back(ev.container_event_type());
  }
  EXPECT_EQ(types, (std::vector<v1::ContainerEventType>{v1::CONTAINER_CREATED_EVENT, v1::CONTAINER_STARTED_EVENT,
                                                         v1::CONTAINER_STOPPED_EVENT, v1::CONTAINER_DELETED_EVENT}));

  v1::StopPodSandboxRequest stop;
  stop.set_pod_sandbox_id(pod);
  svc_->StopPodSandbox(stop);
  svc_->StopPodSandbox(stop);  // idempotent
  sresp.Clear();
  svc_->PodSandboxStatus(sreq, &sresp);
  EXPECT_EQ(sresp.status().state(), v1::SANDBOX_NOTREADY);
  EXPECT_FALSE(berth::fs::Exists(*dir_ / ("state/netns/" + pod)));
  v1::RemovePodSandboxRequest rm;
  rm.set_pod_sandbox_id(pod);
  svc_->RemovePodSandbox(rm);
  svc_->RemovePodSandbox(rm);
  v1::ListPodSandboxResponse pods;
  svc_->ListPodSandbox({}, &pods);
  EXPECT_EQ(pods.items_size(), 0);
}

TEST_P(LifecycleTest, TwoContainersShareTheNetworkNamespaceAndExec) {
  auto pcfg = PodConfig("pair");
  std::string pod = RunPod(pcfg);
  std::string a = Create(pod, pcfg, CtrConfig("a", "sleep 1000"));
  std::string b = Create(pod, pcfg, CtrConfig("b", "sleep 1000"));
  Start(a);
  Start(b);
  auto na = Exec(a, {"readlink", "/proc/self/ns/net"});
  auto nb = Exec(b, {"readlink", "/proc/self/ns/net"});
  EXPECT_EQ(na.exit_code(), 0);
  EXPECT_FALSE(na.stdout().empty());
  EXPECT_EQ(na.stdout(), nb.stdout());
  char host[64] = {};
  ssize_t n = readlink("/proc/self/ns/net", host, sizeof host - 1);
  ASSERT_GT(n, 0);
  EXPECT_NE(na.stdout(), std::string(host) + "\n");
  // Loopback is up in the pod's namespace.
  auto lo = Exec(a, {"cat", "/sys/class/net/lo/operstate"});
  EXPECT_NE(lo.stdout().find("unknown"), std::string::npos) << lo.stdout();
  auto ex = Exec(a, {"sh", "-c", "echo out; echo err >&2; exit 7"});
  EXPECT_EQ(ex.exit_code(), 7);
  EXPECT_EQ(ex.stdout(), "out\n");
  EXPECT_EQ(ex.stderr(), "err\n");
  EXPECT_EQ(CodeOf([&] { Exec(a, {"sleep", "30"}, 1); }), Code::kDeadlineExceeded);
  // Stats of running containers.
  v1::ContainerStatsRequest sr;
  sr.set_container_id(a);
  v1::ContainerStatsResponse sresp;
  svc_->ContainerStats(sr, &sresp);
  EXPECT_TRUE(sresp.stats().cpu().has_usage_core_nano_seconds());
  EXPECT_TRUE(sresp.stats().memory().has_working_set_bytes());
  v1::PodSandboxStatsRequest pr;
  pr.set_pod_sandbox_id(pod);
  v1::PodSandboxStatsResponse presp;
  svc_->PodSandboxStats(pr, &presp);
  EXPECT_EQ(presp.stats().linux().containers_size(), 2);
  // Reopen the log of a running container.
  v1::ReopenContainerLogRequest rl;
  rl.set_container_id(a);
  svc_->ReopenContainerLog(rl);
  // Update resources of a running container.
  v1::UpdateContainerResourcesRequest ur;
  ur.set_container_id(a);
  ur.mutable_linux()->set_memory_limit_in_bytes(64 << 20);
  svc_->UpdateContainerResources(ur);
  EXPECT_EQ(Status(a).resources().linux().memory_limit_in_bytes(), 64 << 20);
  // Stopping the pod stops both containers.
  v1::StopPodSandboxRequest stop;
  stop.set_pod_sandbox_id(pod);
  svc_->StopPodSandbox(stop);
  EXPECT_EQ(Status(a).state(), v1::CONTAINER_EXITED);
  EXPECT_EQ(Status(b).state(), v1::CONTAINER_EXITED);
}

TEST_P(LifecycleTest, StopUsesTheImageStopSignal) {
  auto pcfg = PodConfig("sig");
  std::string pod = RunPod(pcfg);
  std::string id = Create(pod, pcfg, CtrConfig("trap", "trap 'echo got-usr1; exit 3' USR1; echo ready; while true; do sleep 0.05; done"));
  Start(id);
  for (int i = 0; i < 1000 && Slurp(Status(id).log_path()).find("ready") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  v1::StopContainerRequest r;
  r.set_container_id(id);
  r.set_timeout(60);
  svc_->StopContainer(r);
  auto st = Status(id);
  EXPECT_EQ(st.state(), v1::CONTAINER_EXITED);
  EXPECT_EQ(st.exit_code(), 3);
  EXPECT_EQ(st.reason(), "Error");
  EXPECT_NE(Slurp(st.log_path()).find("got-usr1"), std::string::npos);
  svc_->StopContainer(r);  // idempotent
}

TEST_P(LifecycleTest, OomKilledContainer) {
  auto pcfg = PodConfig("oom");
  std::string pod = RunPod(pcfg);
  auto c = CtrConfig("hog", "dd if=/dev/zero of=/dev/null bs=128M count=1");
  c.mutable_linux()->mutable_resources()->set_memory_limit_in_bytes(32 << 20);
  std::string id = Create(pod, pcfg, c);
  Start(id);
  auto st = WaitExited(id);
  EXPECT_EQ(st.exit_code(), 137);
  EXPECT_EQ(st.reason(), "OOMKilled");
}

class RroTest : public LifecycleTest {
 protected:
  // A read-only volume whose source has a tmpfs submount; returns the exit code of writing into
  // the submount from inside the container.
  int WriteIntoSubmount(bool* reported_rro) {
    std::string vol = *dir_ / "vol";
    berth::fs::MkdirAll(vol + "/sub");
    if (mount("tmpfs", (vol + "/sub").c_str(), "tmpfs", 0, "size=1m") != 0) {
      ADD_FAILURE() << "tmpfs mount failed";
      return -1;
    }
    auto pcfg = PodConfig("rro");
    std::string pod = RunPod(pcfg);
    auto c = CtrConfig("vol", "sleep 1000");
    auto* m = c.add_mounts();
    m->set_container_path("/mnt");
    m->set_host_path(vol);
    m->set_readonly(true);
    std::string id = Create(pod, pcfg, c);
    Start(id);
    auto top = Exec(id, {"touch", "/mnt/top"});
    EXPECT_NE(top.exit_code(), 0);
    auto sub = Exec(id, {"touch", "/mnt/sub/file"});
    auto st = Status(id);
    *reported_rro = st.mounts_size() == 1 && st.mounts(0).recursive_read_only();
    v1::RemovePodSandboxRequest rm;
    rm.set_pod_sandbox_id(pod);
    svc_->RemovePodSandbox(rm);
    umount2((vol + "/sub").c_str(), MNT_DETACH);
    return sub.exit_code();
  }
};

TEST_P(LifecycleTest, StartErrorsCarryTheRuntimeMessage) {
  auto pcfg = PodConfig("badcmd");
  std::string pod = RunPod(pcfg);
  v1::ContainerConfig c = CtrConfig("missing", "");
  c.clear_command();
  c.add_command("/no/such/program");
  std::string id = Create(pod, pcfg, c);
  v1::StartContainerRequest r;
  r.set_container_id(id);
  try {
    svc_->StartContainer(r);
    ADD_FAILURE() << "StartContainer of a missing program succeeded";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("/no/such/program"), std::string::npos) << msg;
    EXPECT_NE(msg.find("exited with status"), std::string::npos) << msg;
  }
  v1::ContainerStatusRequest sr;
  sr.set_container_id(id);
  v1::ContainerStatusResponse st;
  svc_->ContainerStatus(sr, &st);
  EXPECT_EQ(st.status().state(), v1::CONTAINER_EXITED);
  EXPECT_EQ(st.status().reason(), "StartError");
  // The pod is still usable.
  std::string ok = Create(pod, pcfg, CtrConfig("ok", "exit 3"));
  Start(ok);
  EXPECT_EQ(WaitExited(ok).exit_code(), 3);
}

TEST_P(RroTest, ReadOnlyVolumesAreRecursiveByDefault) {
  bool rro = false;
  EXPECT_NE(WriteIntoSubmount(&rro), 0);
  EXPECT_TRUE(rro);
}

TEST_P(RroTest, DisabledKeepsSubmountsWritable) {
  svc_.reset();
  svc_ = Make("Disabled");
  bool rro = true;
  EXPECT_EQ(WriteIntoSubmount(&rro), 0);
  EXPECT_FALSE(rro);
}

// A handler whose rro the CRI runtime plugin resolved keeps that resolution: here "off", although
// treat_ro_mounts_as_rro "" would resolve to on on this host; nothing is probed again.
TEST_P(RroTest, ResolutionFromThePluginIsUsedAsGiven) {
  svc_.reset();
  svc_ = Make("", [this](berth::lifecycle::Options& o) {
    o.handlers[GetParam()].rro = berth::oci::HandlerRRO{};
  });
  bool rro = true;
  EXPECT_EQ(WriteIntoSubmount(&rro), 0);
  EXPECT_FALSE(rro);
}

TEST_P(LifecycleTest, PerMountRecursiveReadOnlyValidation) {
  auto pcfg = PodConfig("kep");
  std::string pod = RunPod(pcfg);
  auto c = CtrConfig("bad", "true");
  auto* m = c.add_mounts();
  m->set_container_path("/mnt");
  m->set_host_path(*dir_ / "kepvol");
  m->set_recursive_read_only(true);
  EXPECT_EQ(CodeOf([&] { Create(pod, pcfg, c); }), Code::kInvalidArgument);  // not readonly
  m->set_readonly(true);
  m->set_propagation(v1::PROPAGATION_HOST_TO_CONTAINER);
  EXPECT_EQ(CodeOf([&] { Create(pod, pcfg, c); }), Code::kInvalidArgument);  // not private
  m->set_propagation(v1::PROPAGATION_PRIVATE);
  std::string id = Create(pod, pcfg, c);
  EXPECT_TRUE(Status(id).mounts(0).recursive_read_only());
}

TEST_P(LifecycleTest, BadRequestsGetTheRightCodes) {
  auto pcfg = PodConfig("bad");
  std::string pod = RunPod(pcfg);
  v1::RunPodSandboxRequest dup;
  *dup.mutable_config() = pcfg;
  v1::RunPodSandboxResponse dresp;
  try {
    svc_->RunPodSandbox(dup, &dresp);
    ADD_FAILURE() << "duplicate pod accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kAlreadyExists);
    EXPECT_NE(std::string(e.what()).find(pod), std::string::npos) << e.what();
  }
  v1::RunPodSandboxRequest handler;
  *handler.mutable_config() = PodConfig("other");
  handler.set_runtime_handler("kata");
  try {
    svc_->RunPodSandbox(handler, &dresp);
    ADD_FAILURE() << "unknown handler accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("kata"), std::string::npos);
  }
  v1::RunPodSandboxRequest nometa;
  EXPECT_EQ(CodeOf([&] { svc_->RunPodSandbox(nometa, &dresp); }), Code::kInvalidArgument);

  std::string ok = Create(pod, pcfg, CtrConfig("c", "sleep 1000"));
  EXPECT_EQ(CodeOf([&] { Create(pod, pcfg, CtrConfig("c", "true")); }), Code::kAlreadyExists);
  EXPECT_EQ(CodeOf([&] { Create("nope", pcfg, CtrConfig("d", "true")); }), Code::kNotFound);
  auto img = CtrConfig("img", "true");
  img.mutable_image()->set_image("missing:latest");
  EXPECT_EQ(CodeOf([&] { Create(pod, pcfg, img); }), Code::kNotFound);
  auto grp = CtrConfig("grp", "true");
  grp.mutable_linux()->mutable_security_context()->mutable_run_as_group()->set_value(5);
  EXPECT_EQ(CodeOf([&] { Create(pod, pcfg, grp); }), Code::kInvalidArgument);
  auto cap = CtrConfig("cap", "true");
  cap.mutable_linux()->mutable_security_context()->mutable_capabilities()->add_add_capabilities("NOT_A_CAP");
  EXPECT_EQ(CodeOf([&] { Create(pod, pcfg, cap); }), Code::kInvalidArgument);
  auto priv = CtrConfig("priv", "true");
  priv.mutable_linux()->mutable_security_context()->set_privileged(true);
  EXPECT_EQ(CodeOf([&] { Create(pod, pcfg, priv); }), Code::kInvalidArgument);
  auto badpath = CtrConfig("path", "true");
  badpath.set_log_path("../../escape.log");
  EXPECT_EQ(CodeOf([&] { Create(pod, pcfg, badpath); }), Code::kInvalidArgument);

  v1::StartContainerRequest s;
  s.set_container_id("0123456789abcdef-unknown");
  EXPECT_EQ(CodeOf([&] { svc_->StartContainer(s); }), Code::kNotFound);
  EXPECT_EQ(CodeOf([&] { Status("unknown"); }), Code::kNotFound);
  v1::StopPodSandboxRequest sp;
  sp.set_pod_sandbox_id("unknown");
  EXPECT_EQ(CodeOf([&] { svc_->StopPodSandbox(sp); }), Code::kNotFound);
  EXPECT_EQ(CodeOf([&] { Exec(ok, {"true"}); }), Code::kFailedPrecondition);  // not running

  v1::UpdateContainerResourcesRequest upd;
  upd.set_container_id(ok);
  upd.mutable_linux()->set_cpu_shares(-1);
  try {
    svc_->UpdateContainerResources(upd);
    ADD_FAILURE() << "negative cpu shares accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    EXPECT_EQ(std::string(e.what()), "linux.cpu_shares: negative value -1");
  }

  // Everything else still works.
  Start(ok);
  EXPECT_EQ(Exec(ok, {"true"}).exit_code(), 0);
  EXPECT_EQ(CodeOf([&] { Start(ok); }), Code::kFailedPrecondition);
  v1::ListContainersResponse l;
  svc_->ListContainers({}, &l);
  EXPECT_EQ(l.containers_size(), 1);
}

TEST_P(LifecycleTest, RecoversAfterRestart) {
  auto pcfg = PodConfig("survive");
  std::string pod = RunPod(pcfg);
  std::string run = Create(pod, pcfg, CtrConfig("runner", "sleep 1000"));
  std::string quit = Create(pod, pcfg, CtrConfig("quitter", "read x < /dev/null; sleep 0.5; exit 42"));
  std::string created = Create(pod, pcfg, CtrConfig("idle", "true"));
  Start(run);
  Start(quit);
  int run_pid = 0;
  {
    v1::ContainerStatusRequest r;
    r.set_container_id(run);
    r.set_verbose(true);
    v1::ContainerStatusResponse resp;
    svc_->ContainerStatus(r, &resp);
    run_pid = nlohmann::json::parse(resp.info().at("info"))["pid"].get<int>();
  }
  ASSERT_GT(run_pid, 0);
  // "berthd" goes away without cleaning anything up.
  svc_->Close();
  svc_.release();  // leaked on purpose: a killed daemon runs no destructors

  // A half-created container left by a crash during CreateContainer.
  {
    auto db = berth::store::Database::Open(*dir_ / "root/lifecycle.db");
    berth::store::Transaction tx(db);
    db->Prepare("INSERT INTO lifecycle_containers (id, sandbox_id, meta, config) VALUES (?, ?, ?, ?)")
        .Bind(1, "halfcreated")
        .Bind(2, pod)
        .Bind(3, R"({"state":"creating","dir":")" + (*dir_ / "state/containers/halfcreated") + R"(","name_key":"half"})")
        .BindBlob(4, "")
        .Run();
    tx.Commit();
  }
  berth::fs::MkdirAll(*dir_ / "state/containers/halfcreated/rootfs");
  // Wait for the quitter to exit while nobody watches.
  for (int i = 0; i < 3000 && !berth::fs::Exists(*dir_ / ("state/containers/" + quit + "/exit")); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  svc_ = Make();
  EXPECT_NE(svc_->RecoveryReport().find("halfcreated"), std::string::npos) << svc_->RecoveryReport();
  EXPECT_FALSE(berth::fs::Exists(*dir_ / "state/containers/halfcreated"));
  v1::ListPodSandboxResponse pods;
  svc_->ListPodSandbox({}, &pods);
  ASSERT_EQ(pods.items_size(), 1);
  EXPECT_EQ(pods.items(0).state(), v1::SANDBOX_READY);
  EXPECT_EQ(Status(run).state(), v1::CONTAINER_RUNNING);
  EXPECT_EQ(kill(run_pid, 0), 0);
  auto q = Status(quit);
  EXPECT_EQ(q.state(), v1::CONTAINER_EXITED);
  EXPECT_EQ(q.exit_code(), 42);
  EXPECT_EQ(Status(created).state(), v1::CONTAINER_CREATED);
  EXPECT_EQ(Exec(run, {"echo", "still here"}).stdout(), "still here\n");
  v1::ListContainersResponse l;
  svc_->ListContainers({}, &l);
  EXPECT_EQ(l.containers_size(), 3);
  // The recovered container can be stopped and the created one started.
  v1::StopContainerRequest stop;
  stop.set_container_id(run);
  svc_->StopContainer(stop);
  EXPECT_EQ(Status(run).state(), v1::CONTAINER_EXITED);
  Start(created);
  EXPECT_EQ(WaitExited(created).exit_code(), 0);
}

// Seccomp: RuntimeDefault filters (Seccomp: 2 in /proc/self/status), Unconfined does not, a
// Localhost profile is loaded from its file and enforced.
TEST_P(LifecycleTest, SeccompProfiles) {
  auto mode = [&](const std::string& name, const std::function<void(v1::SecurityProfile*)>& set) {
    std::string log = RunToEnd(name, "grep '^Seccomp:' /proc/self/status; mkdir /tmp/d && echo mkdir-ok",
                               [&](v1::ContainerConfig& c) {
                                 set(c.mutable_linux()->mutable_security_context()->mutable_seccomp());
                               });
    return log;
  };
  std::string def = mode("sec-default", [](v1::SecurityProfile* p) { p->set_profile_type(v1::SecurityProfile::RuntimeDefault); });
  EXPECT_NE(def.find("Seccomp:\t2"), std::string::npos) << def;
  EXPECT_NE(def.find("mkdir-ok"), std::string::npos) << def;
  std::string unconfined = mode("sec-none", [](v1::SecurityProfile* p) { p->set_profile_type(v1::SecurityProfile::Unconfined); });
  EXPECT_NE(unconfined.find("Seccomp:\t0"), std::string::npos) << unconfined;
  std::string profile = *dir_ / "no-mkdir.json";
  berth::testing::WriteFile(profile, R"({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
      {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]})");
  std::string local = mode("sec-local", [&](v1::SecurityProfile* p) {
    p->set_profile_type(v1::SecurityProfile::Localhost);
    p->set_localhost_ref(profile);
  });
  EXPECT_NE(local.find("Seccomp:\t2"), std::string::npos) << local;
  EXPECT_EQ(local.find("mkdir-ok"), std::string::npos) << local;
  // The pod's profile applies to the pause process, which keeps running under it.
  auto spcfg = PodConfig("sec-pod");
  spcfg.mutable_linux()->mutable_security_context()->mutable_seccomp()->set_profile_type(
      v1::SecurityProfile::RuntimeDefault);
  std::string spod = RunPod(spcfg);
  int pause_pid = PausePid(VerboseInfo(spod));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::string pstatus = Slurp("/proc/" + std::to_string(pause_pid) + "/status");
  EXPECT_NE(pstatus.find("Seccomp:\t2"), std::string::npos) << pstatus;
  v1::PodSandboxStatusRequest sreq;
  sreq.set_pod_sandbox_id(spod);
  v1::PodSandboxStatusResponse sresp;
  svc_->PodSandboxStatus(sreq, &sresp);
  EXPECT_EQ(sresp.status().state(), v1::SANDBOX_READY);

  // A missing profile file is refused, naming it.
  auto pcfg = PodConfig("sec-missing");
  std::string pod = RunPod(pcfg);
  auto c = CtrConfig("sec-missing", "true");
  c.mutable_linux()->mutable_security_context()->mutable_seccomp()->set_profile_type(v1::SecurityProfile::Localhost);
  c.mutable_linux()->mutable_security_context()->mutable_seccomp()->set_localhost_ref(*dir_ / "missing.json");
  try {
    Create(pod, pcfg, c);
    ADD_FAILURE() << "missing seccomp profile accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.json"), std::string::npos) << e.what();
  }
}

// CRI devices: the host's /dev/null appears at another path, usable with the given permissions.
TEST_P(LifecycleTest, DevicesAreMappedIntoTheContainer) {
  std::string log = RunToEnd("dev", "test -c /dev/mynull && echo is-char; echo data > /dev/mynull && echo write-ok; "
                                    "stat -c '%t:%T' /dev/mynull",
                             [](v1::ContainerConfig& c) {
                               auto* d = c.add_devices();
                               d->set_host_path("/dev/null");
                               d->set_container_path("/dev/mynull");
                               d->set_permissions("rw");
                             });
  EXPECT_NE(log.find("stdout F is-char\n"), std::string::npos) << log;
  EXPECT_NE(log.find("stdout F write-ok\n"), std::string::npos) << log;
  EXPECT_NE(log.find("stdout F 1:3\n"), std::string::npos) << log;
  // Bad devices are refused with the field named.
  auto pcfg = PodConfig("dev-bad");
  std::string pod = RunPod(pcfg);
  auto c = CtrConfig("dev-bad", "true");
  auto* d = c.add_devices();
  d->set_host_path(*dir_ / "not-a-device");
  berth::testing::WriteFile(*dir_ / "not-a-device", "x");
  d->set_container_path("/dev/x");
  try {
    Create(pod, pcfg, c);
    ADD_FAILURE() << "a regular file accepted as a device";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("devices[0].host_path"), std::string::npos) << e.what();
  }
}

// tty: true runs the process on a terminal; its output is logged as stdout.
TEST_P(LifecycleTest, TtyContainer) {
  std::string log = RunToEnd("tty", "test -t 0 && test -t 1 && echo on-a-tty; echo to-stderr >&2",
                             [](v1::ContainerConfig& c) { c.set_tty(true); });
  EXPECT_NE(log.find(" stdout F on-a-tty\r"), std::string::npos) << log;
  EXPECT_NE(log.find(" stdout F to-stderr\r"), std::string::npos) << log;
  EXPECT_EQ(log.find(" stderr "), std::string::npos) << log;
  std::string plain = RunToEnd("notty", "test -t 1 && echo on-a-tty || echo no-tty");
  EXPECT_NE(plain.find(" stdout F no-tty\n"), std::string::npos) << plain;
}

// run_as_username is looked up in the image's /etc/passwd; supplemental groups are added to the
// image's groups of that user.
TEST_P(LifecycleTest, RunAsUsernameAndSupplementalGroups) {
  auto pcfg = PodConfig("user");
  std::string pod = RunPod(pcfg);
  auto c = CtrConfig("user", "id -u; id -g; id -G");
  auto* sc = c.mutable_linux()->mutable_security_context();
  sc->set_run_as_username("app");
  sc->add_supplemental_groups(3000);
  std::string id = Create(pod, pcfg, c);
  Start(id);
  auto st = WaitExited(id);
  EXPECT_EQ(st.exit_code(), 0);
  std::string log = Slurp(st.log_path());
  EXPECT_NE(log.find("stdout F 1000\n"), std::string::npos) << log;
  EXPECT_NE(log.find("stdout F 1000 2000 3000\n"), std::string::npos) << log;
  EXPECT_EQ(st.user().linux().uid(), 1000);
  EXPECT_EQ(st.user().linux().gid(), 1000);
  EXPECT_EQ(std::vector<int64_t>(st.user().linux().supplemental_groups().begin(), st.user().linux().supplemental_groups().end()),
            (std::vector<int64_t>{1000, 2000, 3000}));
  auto ghost = CtrConfig("ghost", "true");
  ghost.mutable_linux()->mutable_security_context()->set_run_as_username("ghost");
  try {
    Create(pod, pcfg, ghost);
    ADD_FAILURE() << "unknown user accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("run_as_username: no user \"ghost\""), std::string::npos) << e.what();
  }
}

// The handler's base_runtime_spec (parsed once, shared) is the base of containers and sandboxes.
TEST_P(LifecycleTest, BaseRuntimeSpecIsHonoured) {
  auto base = berth::oci::DefaultSpec();
  base["process"]["env"].push_back("FROM_BASE=yes");
  base["process"]["rlimits"] = nlohmann::json::parse(R"([{"type":"RLIMIT_NOFILE","hard":4321,"soft":4321}])");
  base["linux"]["resources"]["pids"] = {{"limit", 123}};
  auto shared = std::make_shared<const nlohmann::json>(base);
  svc_.reset();
  svc_ = Make("", [&](berth::lifecycle::Options& o) { o.handlers[GetParam()].base_spec = shared; });
  auto pcfg = PodConfig("base");
  std::string pod = RunPod(pcfg);
  auto info = VerboseInfo(pod);
  int pause_pid = PausePid(info);
  ASSERT_GT(pause_pid, 0);
  std::string environ = Slurp("/proc/" + std::to_string(pause_pid) + "/environ");
  EXPECT_NE(environ.find("FROM_BASE=yes"), std::string::npos);
  std::string limits = Slurp("/proc/" + std::to_string(pause_pid) + "/limits");
  EXPECT_NE(limits.find("Max open files            4321"), std::string::npos) << limits;
  std::string id = Create(pod, pcfg, CtrConfig("base", "echo env=$FROM_BASE; ulimit -n"));
  Start(id);
  auto st = WaitExited(id);
  std::string log = Slurp(st.log_path());
  EXPECT_NE(log.find("stdout F env=yes\n"), std::string::npos) << log;
  EXPECT_NE(log.find("stdout F 4321\n"), std::string::npos) << log;
  EXPECT_EQ((*shared)["process"]["env"].size(), 2u);

  // UpdateContainerResources replaces what the CRI controls and keeps the base spec's pids limit.
  std::string sleeper = Create(pod, pcfg, CtrConfig("sleeper", "sleep 1000"));
  Start(sleeper);
  v1::UpdateContainerResourcesRequest ur;
  ur.set_container_id(sleeper);
  ur.mutable_linux()->set_memory_limit_in_bytes(48 << 20);
  svc_->UpdateContainerResources(ur);
  v1::ContainerStatusRequest sr;
  sr.set_container_id(sleeper);
  sr.set_verbose(true);
  v1::ContainerStatusResponse sresp;
  svc_->ContainerStatus(sr, &sresp);
  auto cinfo = nlohmann::json::parse(sresp.info().at("info"));
  EXPECT_EQ(cinfo["runtimeSpec"]["linux"]["resources"]["pids"]["limit"], 123);
  EXPECT_EQ(cinfo["runtimeSpec"]["linux"]["resources"]["memory"]["limit"], 48 << 20);
  std::string cg = cinfo["cgroupsPath"];
  if (berth::fs::Exists("/sys/fs/cgroup/pids" + cg)) {
    EXPECT_EQ(Slurp("/sys/fs/cgroup/pids" + cg + "/pids.max"), "123\n");
    EXPECT_EQ(Slurp("/sys/fs/cgroup/memory" + cg + "/memory.limit_in_bytes"), std::to_string(48 << 20) + "\n");
  }
}

// pinned_images.sandbox: a sandbox image present locally runs its entrypoint as the pause process.
TEST_P(LifecycleTest, SandboxImageRunsAsThePauseProcess) {
  svc_.reset();
  svc_ = Make("", [](berth::lifecycle::Options& o) { o.sandbox_image = "berth.test/pause:1"; });
  auto pcfg = PodConfig("pinned");
  std::string pod = RunPod(pcfg);
  auto info = VerboseInfo(pod);
  EXPECT_EQ(info["image"], "berth.test/pause:1");
  EXPECT_EQ(info["runtimeSpec"]["process"]["args"], nlohmann::json({"/bin/sleep", "100000"}));
  int pause_pid = PausePid(info);
  ASSERT_GT(pause_pid, 0);
  std::string cmdline = Slurp("/proc/" + std::to_string(pause_pid) + "/cmdline");
  EXPECT_EQ(cmdline, std::string("/bin/sleep\0" "100000\0", 18));
  EXPECT_NE(Slurp("/proc/" + std::to_string(pause_pid) + "/environ").find("PAUSE_IMAGE=yes"), std::string::npos);
  // The image's User (a name, looked up in the image's /etc/passwd) runs the pause process.
  std::string status = Slurp("/proc/" + std::to_string(pause_pid) + "/status");
  EXPECT_NE(status.find("Uid:\t65534\t"), std::string::npos) << status;
  EXPECT_NE(status.find("Gid:\t65534\t"), std::string::npos) << status;
  // Containers join it as usual.
  std::string id = Create(pod, pcfg, CtrConfig("in-pinned", "sleep 1000"));
  Start(id);
  auto ns = Exec(id, {"readlink", "/proc/self/ns/net"});
  char pause_ns[64] = {};
  ASSERT_GT(readlink(("/proc/" + std::to_string(pause_pid) + "/ns/net").c_str(), pause_ns, sizeof pause_ns - 1), 0);
  EXPECT_EQ(ns.stdout(), std::string(pause_ns) + "\n");
  // Removing the pod removes the sandbox's snapshot and unmounts its rootfs.
  std::string rootfs = *dir_ / ("state/sandboxes/" + pod + "/rootfs");
  EXPECT_TRUE(berth::fs::Exists(rootfs + "/bin/busybox"));
  v1::RemovePodSandboxRequest rm;
  rm.set_pod_sandbox_id(pod);
  svc_->RemovePodSandbox(rm);
  EXPECT_TRUE(berth::testing::Eventually([&] { return !berth::fs::Exists(rootfs); }));
  EXPECT_EQ(Slurp("/proc/self/mountinfo").find(pod), std::string::npos);

  // Without the image locally, the built-in berth-pause runs.
  svc_.reset();
  svc_ = Make("", [](berth::lifecycle::Options& o) { o.sandbox_image = "registry.example/absent:1"; });
  std::string builtin = RunPod(PodConfig("builtin"));
  auto binfo = VerboseInfo(builtin);
  EXPECT_EQ(binfo["image"], "berth-pause (built in)");
  EXPECT_EQ(binfo["runtimeSpec"]["process"]["args"], nlohmann::json({"/pause"}));
}

// Files whose removal a restart interrupted (the records gone, the cleanup after the reply not
// run) are removed by the next start.
TEST_P(LifecycleTest, RestartFinishesInterruptedRemovals) {
  auto pcfg = PodConfig("sweep");
  std::string pod = RunPod(pcfg);
  std::string id = Create(pod, pcfg, CtrConfig("swept", "true"));
  std::string cdir = *dir_ / ("state/containers/" + id), sdir = *dir_ / ("state/sandboxes/" + pod);
  ASSERT_NE(Slurp("/proc/self/mountinfo").find(cdir + "/rootfs"), std::string::npos);
  v1::StopPodSandboxRequest stop;
  stop.set_pod_sandbox_id(pod);
  svc_->StopPodSandbox(stop);
  svc_.reset();
  {
    // As RemovePodSandbox leaves things when berthd dies right after its reply.
    auto db = berth::store::Database::Open(*dir_ / "root/lifecycle.db");
    db->Prepare("DELETE FROM lifecycle_containers WHERE id = ?").Bind(1, id).Run();
    db->Prepare("DELETE FROM lifecycle_sandboxes WHERE id = ?").Bind(1, pod).Run();
  }
  ASSERT_TRUE(berth::fs::Exists(cdir));
  svc_ = Make();
  auto report = nlohmann::json::parse(svc_->RecoveryReport());
  EXPECT_NE(report["cleaned"].dump().find(id), std::string::npos) << report.dump();
  EXPECT_NE(report["cleaned"].dump().find(pod), std::string::npos) << report.dump();
  EXPECT_FALSE(berth::fs::Exists(cdir));
  EXPECT_FALSE(berth::fs::Exists(sdir));
  EXPECT_EQ(Slurp("/proc/self/mountinfo").find(id), std::string::npos);
  EXPECT_EQ(CodeOf([&] { images_->snapshotter().Remove(id); }), Code::kNotFound);
}

// The built-in pause without a base spec or sandbox image is started by berthd itself: it holds
// the pod's namespaces with the hostname and sysctls applied, sits in its own cgroup, and is
// confined (no capabilities, no_new_privs, seccomp, an empty read-only root in a mount
// namespace of its own, the pod's user).
TEST_P(LifecycleTest, BuiltInPauseIsStartedByBerthdAndConfined) {
  auto pcfg = PodConfig("direct");
  auto* lx = pcfg.mutable_linux();
  const std::string top = "/berth-test-direct-" + std::string(GetParam());  // one per handler
  lx->set_cgroup_parent(top + "/pod");
  (*lx->mutable_sysctls())["net.ipv4.ip_unprivileged_port_start"] = "81";
  (*lx->mutable_sysctls())["kernel.shm_rmid_forced"] = "1";
  lx->mutable_security_context()->mutable_run_as_user()->set_value(65535);
  lx->mutable_security_context()->mutable_run_as_group()->set_value(65535);
  lx->mutable_security_context()->mutable_namespace_options()->set_pid(v1::POD);
  std::string pod = RunPod(pcfg);
  auto info = VerboseInfo(pod);
  EXPECT_EQ(info["pauseStartedBy"], "berthd");
  int pid = info["pid"].get<int>(), waiter = info["monitorPid"].get<int>();
  ASSERT_GT(pid, 0);
  std::string proc = "/proc/" + std::to_string(pid);
  std::string status = Slurp(proc + "/status");
  EXPECT_NE(status.find("Uid:\t65535\t65535\t65535\t65535"), std::string::npos) << status;
  EXPECT_NE(status.find("Gid:\t65535\t65535\t65535\t65535"), std::string::npos) << status;
  EXPECT_NE(status.find("CapEff:\t0000000000000000"), std::string::npos) << status;
  EXPECT_NE(status.find("CapBnd:\t0000000000000000"), std::string::npos) << status;
  EXPECT_NE(status.find("NoNewPrivs:\t1"), std::string::npos) << status;
  EXPECT_NE(status.find("Seccomp:\t2"), std::string::npos) << status;
  // PID 1 of the pod's PID namespace; the waiter, its parent, outside it.
  std::string nspid = status.substr(status.find("NSpid:"));
  nspid = nspid.substr(0, nspid.find('\n'));
  EXPECT_EQ(nspid, "NSpid:\t" + std::to_string(pid) + "\t1") << status;
  EXPECT_NE(status.find("PPid:\t" + std::to_string(waiter) + "\n"), std::string::npos) << status;
  // An empty read-only root in a mount namespace that holds nothing else.
  std::string mi = Slurp(proc + "/mountinfo");
  EXPECT_EQ(std::count(mi.begin(), mi.end(), '\n'), 1) << mi;
  EXPECT_NE(mi.find(" / ro,nosuid,nodev,noexec"), std::string::npos) << mi;
  EXPECT_TRUE(std::filesystem::is_empty(proc + "/root/"));
  EXPECT_EQ(Slurp(proc + "/oom_score_adj"), Slurp("/proc/self/oom_score_adj"));  // clamped: restrict_oom_score_adj
  // The sandbox's network namespace (lo up) and its own cgroup (cpu shares 2) in every hierarchy.
  struct stat a {}, b {};
  ASSERT_EQ(::stat((proc + "/ns/net").c_str(), &a), 0);
  ASSERT_EQ(::stat(info["netNamespacePath"].get<std::string>().c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  std::string cgroups_path = info["cgroupsPath"];
  EXPECT_EQ(cgroups_path, top + "/pod/berth-" + pod);
  std::string cg = Slurp(proc + "/cgroup");
  EXPECT_NE(cg.find(cgroups_path), std::string::npos) << cg;
  auto dirs = berth::lifecycle::CgroupDirs(cgroups_path);
  ASSERT_FALSE(dirs.empty());
  bool shares = false;
  for (const auto& d : dirs) {
    EXPECT_TRUE(berth::fs::IsDir(d)) << d;
    if (berth::fs::Exists(d + "/cpu.shares")) shares = Slurp(d + "/cpu.shares") == "2\n";
  }
  if (berth::fs::IsDir("/sys/fs/cgroup/cpu")) {
    EXPECT_TRUE(shares);
  }

  // Its containers see the hostname, the sysctls and the pause as their PID 1.
  std::string id = Create(pod, pcfg, CtrConfig("in-direct", "sleep 1000"));
  Start(id);
  EXPECT_EQ(Exec(id, {"hostname"}).stdout(), "direct-host\n");
  EXPECT_EQ(Exec(id, {"cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"}).stdout(), "81\n");
  EXPECT_EQ(Exec(id, {"cat", "/proc/sys/kernel/shm_rmid_forced"}).stdout(), "1\n");
  EXPECT_EQ(Exec(id, {"cat", "/proc/1/cmdline"}).stdout(), Slurp(proc + "/cmdline"));
  EXPECT_NE(Exec(id, {"ls", "/proc/1/root/"}).exit_code(), 0) << "the pause's root is not reachable";
  // The host's own values are untouched.
  EXPECT_NE(Slurp("/proc/sys/net/ipv4/ip_unprivileged_port_start"), "81\n");

  // Stopping kills pause and waiter and removes the cgroups.
  v1::StopPodSandboxRequest stop;
  stop.set_pod_sandbox_id(pod);
  svc_->StopPodSandbox(stop);
  EXPECT_NE(::kill(pid, 0) == 0 && Slurp(proc + "/stat").find(") Z") == std::string::npos, true);
  for (const auto& d : dirs) {
    // Removed after the reply.
    EXPECT_TRUE(berth::testing::Eventually([&] { return !berth::fs::Exists(d); })) << d;
  }
  svc_->StopPodSandbox(stop);  // again: fine

  // A pause killed from outside: the sandbox becomes NOTREADY.
  std::string pod2 = RunPod(PodConfig("direct2"));
  int pid2 = VerboseInfo(pod2)["pid"].get<int>();
  ASSERT_EQ(::kill(pid2, SIGKILL), 0);
  v1::PodSandboxStatusRequest sreq;
  sreq.set_pod_sandbox_id(pod2);
  v1::PodSandboxStatusResponse sresp;
  for (int i = 0; i < 500; ++i) {
    svc_->PodSandboxStatus(sreq, &sresp);
    if (sresp.status().state() == v1::SANDBOX_NOTREADY) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(sresp.status().state(), v1::SANDBOX_NOTREADY);
  TearDown();
  // Each test has a cgroup parent of its own: tests run in parallel.
  berth::lifecycle::RemovePauseCgroups(top + "/pod");
  berth::lifecycle::RemovePauseCgroups(top);
}

// This process's children running berth-pause --sandbox, with their command lines.
std::map<int, std::string> PauseChildren() {
  std::map<int, std::string> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat = Slurp(e.path() / "stat");
    size_t paren = stat.rfind(") ");
    if (paren == std::string::npos) continue;
    int ppid = 0;
    char state = 0;
    if (std::sscanf(stat.c_str() + paren + 2, "%c %d", &state, &ppid) != 2 || ppid != ::getpid() || state == 'Z')
      continue;
    std::string cmd = Slurp(e.path() / "cmdline");
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    if (cmd.find("berth-pause --sandbox") != std::string::npos) out[std::stoi(name)] = cmd;
  }
  return out;
}

// The spare berth-pause (started ahead, with a network namespace made already) among them.
int SparePause() {
  for (const auto& [pid, cmd] : PauseChildren())
    if (cmd.find("--id spare") != std::string::npos) return pid;
  return 0;
}

bool LoopbackUp(const std::string& netns_path) {
  bool up = false;
  std::thread t([&] {
    int fd = ::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) return;
    ::close(fd);
    int sk = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr {};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    up = sk >= 0 && ::ioctl(sk, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP);
    if (sk >= 0) ::close(sk);
  });
  t.join();
  return up;
}

ino_t NetnsInode(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// After a sandbox, berthd starts the next one's berth-pause ahead (a spare that has made a network
// namespace already). The next sandbox takes it: its command line then names the sandbox, the
// namespace is the pod's (or given back for host networking), and a spare that died is replaced
// by a process started on the spot. Closing the service ends the spare.
TEST_P(LifecycleTest, BuiltInPauseSpareServesTheNextSandbox) {
  std::string a = RunPod(PodConfig("spare-a"));
  ASSERT_EQ(VerboseInfo(a)["pauseStartedBy"], "berthd");
  int spare = 0;
  // Started after the reply; its command line shows once its exec is through (at nice 10).
  svc_->WaitDeferred();
  ASSERT_TRUE(berth::testing::Eventually([&] { return (spare = SparePause()) > 0; })) << "no spare berth-pause";

  std::string b = RunPod(PodConfig("spare-b"));
  auto info = VerboseInfo(b);
  EXPECT_EQ(info["monitorPid"].get<int>(), spare) << "the spare was not used";
  std::string cmd = PauseChildren()[spare];
  EXPECT_NE(cmd.find("--id " + b), std::string::npos) << cmd;
  EXPECT_TRUE(berth::monitor::IsMonitorAlive(spare, b));
  std::string netns = info["netNamespacePath"];
  EXPECT_TRUE(berth::network::IsNetns(netns));
  EXPECT_EQ(NetnsInode("/proc/" + std::to_string(info["pid"].get<int>()) + "/ns/net"), NetnsInode(netns));
  EXPECT_NE(NetnsInode(netns), NetnsInode("/proc/self/ns/net"));
  EXPECT_TRUE(LoopbackUp(netns));

  // Host networking: the spare's own namespace is given back for the host's.
  svc_->WaitDeferred();
  ASSERT_TRUE(berth::testing::Eventually([&] { return (spare = SparePause()) > 0; }));
  auto hcfg = PodConfig("spare-host");
  hcfg.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_network(v1::NODE);
  hcfg.clear_hostname();  // a host-network pod has the node's
  std::string h = RunPod(hcfg);
  auto hinfo = VerboseInfo(h);
  EXPECT_EQ(hinfo["monitorPid"].get<int>(), spare);
  EXPECT_EQ(NetnsInode("/proc/" + std::to_string(hinfo["pid"].get<int>()) + "/ns/net"), NetnsInode("/proc/self/ns/net"));

  // A spare killed from outside is not used.
  svc_->WaitDeferred();
  ASSERT_TRUE(berth::testing::Eventually([&] { return (spare = SparePause()) > 0; }));
  ASSERT_EQ(::kill(spare, SIGKILL), 0);
  std::string c = RunPod(PodConfig("spare-c"));
  auto cinfo = VerboseInfo(c);
  EXPECT_NE(cinfo["monitorPid"].get<int>(), spare);
  EXPECT_TRUE(LoopbackUp(cinfo["netNamespacePath"]));

  svc_->WaitDeferred();
  ASSERT_TRUE(berth::testing::Eventually([&] { return SparePause() > 0; }));
  TearDown();
  EXPECT_TRUE(PauseChildren().empty()) << PauseChildren().begin()->second;
}

// Sysctls the pod cannot own, or the kernel refuses, are refused with the sysctl named, and
// nothing of the sandbox is left.
TEST_P(LifecycleTest, BuiltInPauseRefusesBadSysctls) {
  // One cgroup parent per handler: the runc and crun variants may run at the same time.
  const std::string top = "/berth-test-sysctl-" + std::string(GetParam());
  auto expect = [&](const std::string& key, const std::string& value, bool host_net, const std::string& text) {
    auto pcfg = PodConfig("sysctl-" + std::to_string(std::hash<std::string>()(key) % 1000));
    pcfg.mutable_linux()->set_cgroup_parent(top + "/pod");
    (*pcfg.mutable_linux()->mutable_sysctls())[key] = value;
    if (host_net) {
      pcfg.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_network(v1::NODE);
      pcfg.clear_hostname();  // a host-network pod has the node's
    }
    try {
      RunPod(pcfg);
      ADD_FAILURE() << key << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kInvalidArgument) << e.what();
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
    v1::ListPodSandboxResponse pods;
    svc_->ListPodSandbox({}, &pods);
    EXPECT_EQ(pods.items_size(), 0);
    EXPECT_TRUE(std::filesystem::is_empty(*dir_ / "state/sandboxes"));
    EXPECT_TRUE(std::filesystem::is_empty(*dir_ / "state/netns"));
    for (const auto& d : berth::lifecycle::CgroupDirs(top + "/pod")) {
      if (!berth::fs::IsDir(d)) continue;
      for (const auto& e : std::filesystem::directory_iterator(d))
        EXPECT_FALSE(e.is_directory()) << "left behind: " << e.path();
    }
  };
  expect("vm.swappiness", "10", false, "not namespaced");
  expect("net.ipv4.ip_forward", "1", true, "network namespace");
  expect("net.ipv4.no_such_sysctl", "1", false, "the kernel refused it");
  expect("kernel.shm_rmid_forced", "not-a-number", false, "the kernel refused it");
  // Everything else keeps working.
  std::string pod = RunPod(PodConfig("after-sysctls"));
  EXPECT_EQ(VerboseInfo(pod)["pauseStartedBy"], "berthd");
  TearDown();
  berth::lifecycle::RemovePauseCgroups(top + "/pod");
  berth::lifecycle::RemovePauseCgroups(top);
}

// Kubernetes' own pause images are not pulled (berth-pause stands in); any other sandbox image is.
TEST(SandboxImage, StockPauseImages) {
  using berth::lifecycle::IsStockPauseImage;
  EXPECT_TRUE(IsStockPauseImage("registry.k8s.io/pause:3.10"));
  EXPECT_TRUE(IsStockPauseImage("registry.k8s.io/pause:3.8"));
  EXPECT_TRUE(IsStockPauseImage("registry.k8s.io/pause"));
  EXPECT_TRUE(IsStockPauseImage("k8s.gcr.io/pause:3.2"));
  EXPECT_TRUE(IsStockPauseImage("registry.k8s.io/pause@sha256:7031c1b283388d2c2e09b57badb803c05ebed362dc88d84b480cc47f72a21097"));
  EXPECT_FALSE(IsStockPauseImage("registry.k8s.io/pause-amd64:3.1"));
  EXPECT_FALSE(IsStockPauseImage("registry.k8s.io/pauser:1"));
  EXPECT_FALSE(IsStockPauseImage("docker.io/library/pause:3.10"));
  EXPECT_FALSE(IsStockPauseImage("myregistry.example/registry.k8s.io/pause:3.10"));
  EXPECT_FALSE(IsStockPauseImage(""));
}

// OptionsFromRuntimePlugin hands the plugin's resolved rro and its parsed base spec (the same
// object: the file is not read again) to the lifecycle, with the handler's other settings.
TEST(OptionsFromRuntimePlugin, CarriesTheResolvedHandlers) {
  TempDir d("berth-lifecycle-opts");
  std::string base = d / "base.json";
  berth::testing::WriteFile(base, R"({"ociVersion":"1.1.0","process":{"env":["A=1"]}})");
  berth::criplugins::CRIRuntimePlugin p;
  p.root_dir = d / "root";
  p.state_dir = d / "state";
  p.restrict_oom_score_adj = true;  // resolved at init from the config (ResolveRestrictOom)
  p.config.unset_seccomp_profile = "runtime/default";
  p.config.max_container_log_line_size = 1234;
  p.config.containerd.default_runtime_name = "fast";
  berth::criplugins::HandlerInfo h;
  h.name = "fast";
  h.runtime.options["BinaryName"] = "crun";
  h.runtime.base_runtime_spec = base;
  h.runtime.treat_ro_mounts_as_rro = "IfPossible";
  h.runtime.privileged_without_host_devices = true;
  h.runtime.pod_annotations = {"io.example/*"};
  h.runtime.container_annotations = {"io.other/*"};
  h.base_spec = p.base_specs.Load(base);
  h.rro = {true, true, true, false};
  p.handlers["fast"] = h;
  auto o = berth::lifecycle::OptionsFromRuntimePlugin(p);
  EXPECT_EQ(o.default_handler, "fast");
  EXPECT_TRUE(o.restrict_oom_score_adj);
  EXPECT_EQ(o.unset_seccomp_profile, "runtime/default");
  EXPECT_EQ(o.max_container_log_line_size, 1234);
  ASSERT_EQ(o.handlers.count("fast"), 1u);
  const auto& lh = o.handlers.at("fast");
  EXPECT_EQ(lh.binary, "crun");
  EXPECT_EQ(lh.base_spec.get(), h.base_spec.get());
  EXPECT_EQ((*lh.base_spec)["process"]["env"][0], "A=1");
  ASSERT_TRUE(lh.rro.has_value());
  EXPECT_TRUE(lh.rro->enabled);
  EXPECT_TRUE(lh.rro->via_fallback);
  EXPECT_TRUE(lh.rro->supported_for_kep);
  EXPECT_FALSE(lh.rro->kep_via_fallback);
  EXPECT_TRUE(lh.privileged_without_host_devices);
  EXPECT_EQ(lh.pod_annotations, std::vector<std::string>{"io.example/*"});
  EXPECT_EQ(lh.container_annotations, std::vector<std::string>{"io.other/*"});
}

TEST(Netns, CreateAndRemove) {
  if (!berth::testing::IsRoot()) GTEST_SKIP() << "needs root";
  TempDir d("berth-netns");
  std::string p = d / "ns";
  berth::network::CreateNetns(p);
  EXPECT_TRUE(berth::network::IsNetns(p));
  EXPECT_EQ(CodeOf([&] { berth::network::CreateNetns(p); }), Code::kAlreadyExists);
  berth::network::RemoveNetns(p);
  EXPECT_FALSE(berth::fs::Exists(p));
  berth::network::RemoveNetns(p);
}

std::string HandlerName(const ::testing::TestParamInfo<std::string>& info) { return info.param; }
INSTANTIATE_TEST_SUITE_P(Handlers, LifecycleTest, ::testing::Values("runc", "crun"), HandlerName);
INSTANTIATE_TEST_SUITE_P(Handlers, RroTest, ::testing::Values("runc", "crun"), HandlerName);

}  // namespace
