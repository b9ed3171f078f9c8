// End-to-end pods and containers: the real berthd (runc, berth-monitor, berth-pause) on a
// temporary socket, root and state, an image imported from an OCI archive built in the test,
// and a real gRPC client, with runc and with crun as the default runtime handler. Needs root, the
// runtime and busybox-static; skips otherwise.
#include "runtime/v1/api.grpc.pb.h"  // first: its enum Signal names collide with <signal.h> macros

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "berth/images/v1/images.grpc.pb.h"
#include "berthd_proc.h"
#include "common/exec.h"
#include "common/fs.h"
#include "image_support.h"
#include "oci/spec.h"
#include "support/support.h"

namespace {

namespace v1 = runtime::v1;
using berth::testing::BerthdProc;
using berth::testing::TempDir;

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

// A berthd whose default runtime handler is `handler` ("runc" or "crun"; the other is configured
// too). handler_extra: lines added to the default handler's table; extra: tables appended to the
// config; binary: the default handler's BinaryName ("" = the handler's name).
std::unique_ptr<BerthdProc> NewBerthd(const std::string& dir, const std::string& handler,
                                      const std::string& handler_extra, const std::string& extra,
                                      const std::string& binary) {
  berth::testing::BerthdOptions o;
  o.handler = handler;
  o.binary = binary.empty() ? handler : binary;
  o.handler_extra = handler_extra;
  o.more_handlers = {handler == "runc" ? "crun" : "runc"};
  o.extra = extra;
  return std::make_unique<BerthdProc>(dir, BERTHD_PATH, BERTH_MONITOR_PATH, BERTH_PAUSE_PATH, o);
}

// Every test runs with runc and with crun as the default runtime handler.
class PodsE2E : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string reason = berth::testing::ContainerSkipReason(GetParam());
    if (!reason.empty()) GTEST_SKIP() << reason;
    if (berth::testing::BusyboxPath().empty()) GTEST_SKIP() << "busybox-static is not installed";
    dir_ = std::make_unique<TempDir>("berth-e2e-pods");
    d_ = NewBerthd(dir_->path(), GetParam(), HandlerExtra(), Extra(), Binary());
    std::string err = d_->Start();
    ASSERT_EQ(err, "");
    berth::testing::TestImageOptions opts;
    opts.user = "";
    opts.entrypoint = {};
    opts.cmd = {"sh"};
    auto img = berth::testing::BuildTestImage(*dir_ / "oci", opts);
    berth::testing::WriteOciArchive(img, *dir_ / "busybox.tar", "docker.io/test/busybox:e2e");
    berth::images::v1::ImportRequest req;
    req.set_path(*dir_ / "busybox.tar");
    berth::images::v1::ImportResponse resp;
    auto st = d_->admin().Import(Ctx().get(), req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  // Configuration a test fixture adds (called after dir_ exists, before berthd starts).
  virtual std::string HandlerExtra() { return ""; }
  virtual std::string Binary() { return ""; }
  virtual std::string Extra() { return ""; }

  void TearDown() override {
    if (!d_) return;
    v1::ListPodSandboxResponse pods;
    if (d_->rt().ListPodSandbox(Ctx().get(), {}, &pods).ok()) {
      for (const auto& p : pods.items()) {
        v1::RemovePodSandboxRequest r;
        r.set_pod_sandbox_id(p.id());
        v1::RemovePodSandboxResponse rr;
        d_->rt().RemovePodSandbox(Ctx().get(), r, &rr);
      }
    }
    d_.reset();
  }

  v1::PodSandboxConfig Pod(const std::string& name) {
    v1::PodSandboxConfig c;
    c.mutable_metadata()->set_name(name);
    c.mutable_metadata()->set_namespace_("e2e");
    c.mutable_metadata()->set_uid("uid-" + name);
    c.set_hostname(name);
    c.set_log_directory(*dir_ / ("logs/" + name));
    return c;
  }
  std::string RunPod(const v1::PodSandboxConfig& c) {
    v1::RunPodSandboxRequest req;
    *req.mutable_config() = c;
    v1::RunPodSandboxResponse resp;
    auto st = d_->rt().RunPodSandbox(Ctx().get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.pod_sandbox_id();
  }
  grpc::Status Create(const std::string& pod, const v1::PodSandboxConfig& pc,
                      const std::string& name, const std::string& script, std::string* id,
                      const std::function<void(v1::ContainerConfig&)>& edit = nullptr) {
    v1::CreateContainerRequest req;
    req.set_pod_sandbox_id(pod);
    *req.mutable_sandbox_config() = pc;
    auto* c = req.mutable_config();
    c->mutable_metadata()->set_name(name);
    c->mutable_image()->set_image("docker.io/test/busybox:e2e");
    c->add_command("sh");
    c->add_command("-c");
    c->add_command(script);
    c->set_log_path(name + ".log");
    if (edit) edit(*c);
    v1::CreateContainerResponse resp;
    auto st = d_->rt().CreateContainer(Ctx().get(), req, &resp);
    if (id) *id = resp.container_id();
    create_error_ = st.error_message();
    return st;
  }
  void Start(const std::string& id) {
    v1::StartContainerRequest r;
    r.set_container_id(id);
    v1::StartContainerResponse rr;
    auto st = d_->rt().StartContainer(Ctx().get(), r, &rr);
    EXPECT_TRUE(st.ok()) << st.error_message();
  }
  v1::ContainerStatus Status(const std::string& id, grpc::StatusCode* code = nullptr) {
    v1::ContainerStatusRequest r;
    r.set_container_id(id);
    r.set_verbose(true);
    v1::ContainerStatusResponse rr;
    auto st = d_->rt().ContainerStatus(Ctx().get(), r, &rr);
    if (code) *code = st.error_code();
    return rr.status();
  }
  v1::ContainerStatus WaitExited(const std::string& id) {
    for (int i = 0; i < 3000; ++i) {
      auto s = Status(id);
      if (s.state() == v1::CONTAINER_EXITED) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "container did not exit";
    return Status(id);
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<BerthdProc> d_;
  std::string create_error_;  // of the last Create
};

TEST_P(PodsE2E, LifecycleExecLogsEventsAndBadRequests) {
  grpc::ClientContext ev_ctx;
  v1::GetEventsRequest ev_req;
  auto reader = d_->rt().GetContainerEvents(&ev_ctx, ev_req);
  std::vector<std::pair<std::string, v1::ContainerEventType>> events;
  std::mutex ev_mu;
  std::thread ev_thread([&] {
    v1::ContainerEventResponse ev;
    while (reader->Read(&ev)) {
      std::lock_guard<std::mutex> l(ev_mu);
      events.emplace_back(ev.container_id(), ev.container_event_type());
    }
  });

  auto pc = Pod("web");
  std::string pod = RunPod(pc);
  std::string a, b;
  ASSERT_TRUE(Create(pod, pc, "a",
                     "printf 'part'; sleep 0.1; echo ial; head -c 20000 /dev/zero | tr '\\0' x; "
                     "echo end; sleep 1000",
                     &a)
                  .ok());
  ASSERT_TRUE(Create(pod, pc, "b", "sleep 1000", &b).ok());
  Start(a);
  Start(b);
  // Shared network namespace.
  auto exec = [&](const std::string& id, std::vector<std::string> cmd, int64_t timeout,
                  v1::ExecSyncResponse* out) {
    v1::ExecSyncRequest r;
    r.set_container_id(id);
    for (auto& c : cmd) r.add_cmd(c);
    r.set_timeout(timeout);
    return d_->rt().ExecSync(Ctx().get(), r, out);
  };
  v1::ExecSyncResponse na, nb;
  ASSERT_TRUE(exec(a, {"readlink", "/proc/self/ns/net"}, 10, &na).ok());
  ASSERT_TRUE(exec(b, {"readlink", "/proc/self/ns/net"}, 10, &nb).ok());
  EXPECT_EQ(na.stdout(), nb.stdout());
  v1::ExecSyncResponse slow;
  EXPECT_EQ(exec(a, {"sleep", "30"}, 1, &slow).error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  // Logs: a write without a newline is joined with the rest of its line; a line longer than
  // max_container_log_line_size (16 KiB) is split into P(artial) entries and a F(ull) one.
  std::string log;
  for (int i = 0; i < 500 && log.find("end\n") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    log = ReadAll(Status(a).log_path());
  }
  EXPECT_NE(log.find(" stdout F partial\n"), std::string::npos) << log;
  EXPECT_NE(log.find(" stdout P xxxx"), std::string::npos) << log.substr(0, 200);
  EXPECT_NE(log.find("xend\n"), std::string::npos);

  // Bad requests get the right codes and leave the daemon working.
  grpc::StatusCode code;
  Status("does-not-exist", &code);
  EXPECT_EQ(code, grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Create(pod, pc, "a", "true", nullptr).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  {
    v1::RunPodSandboxRequest dup;
    *dup.mutable_config() = pc;
    v1::RunPodSandboxResponse r;
    auto st = d_->rt().RunPodSandbox(Ctx().get(), dup, &r);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::ALREADY_EXISTS);
    EXPECT_NE(st.error_message().find(pod), std::string::npos);
  }
  {
    v1::CreateContainerRequest req;
    req.set_pod_sandbox_id(pod);
    auto* c = req.mutable_config();
    c->mutable_metadata()->set_name("evil");
    c->mutable_image()->set_image("docker.io/test/busybox:e2e");
    c->add_command("true");
    c->mutable_linux()->mutable_security_context()->mutable_capabilities()->add_add_capabilities(
        "CAP_NOPE");
    v1::CreateContainerResponse r;
    EXPECT_EQ(d_->rt().CreateContainer(Ctx().get(), req, &r).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    v1::ExecRequest er;
    er.set_container_id(a);
    er.set_stdout(true);
    v1::ExecResponse r;
    auto st = d_->rt().Exec(Ctx().get(), er, &r);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);  // no command
    EXPECT_NE(st.error_message().find("exec command must not be empty"), std::string::npos);
  }
  EXPECT_EQ(Status(a).state(), v1::CONTAINER_RUNNING);

  // Stop, remove, stop and remove the pod.
  v1::StopContainerRequest sr;
  sr.set_container_id(a);
  sr.set_timeout(10);
  v1::StopContainerResponse srr;
  ASSERT_TRUE(d_->rt().StopContainer(Ctx().get(), sr, &srr).ok());
  EXPECT_EQ(Status(a).state(), v1::CONTAINER_EXITED);
  v1::RemoveContainerRequest rr;
  rr.set_container_id(a);
  v1::RemoveContainerResponse rrr;
  ASSERT_TRUE(d_->rt().RemoveContainer(Ctx().get(), rr, &rrr).ok());
  v1::StopPodSandboxRequest sp;
  sp.set_pod_sandbox_id(pod);
  v1::StopPodSandboxResponse spr;
  ASSERT_TRUE(d_->rt().StopPodSandbox(Ctx().get(), sp, &spr).ok());
  EXPECT_EQ(Status(b).state(), v1::CONTAINER_EXITED);
  v1::RemovePodSandboxRequest rp;
  rp.set_pod_sandbox_id(pod);
  v1::RemovePodSandboxResponse rpr;
  ASSERT_TRUE(d_->rt().RemovePodSandbox(Ctx().get(), rp, &rpr).ok());
  v1::ListContainersResponse lc;
  ASSERT_TRUE(d_->rt().ListContainers(Ctx().get(), {}, &lc).ok());
  EXPECT_EQ(lc.containers_size(), 0);

  ev_ctx.TryCancel();
  ev_thread.join();
  std::vector<v1::ContainerEventType> of_a;
  for (const auto& [id, t] : events) {
    if (id == a) of_a.push_back(t);
  }
  EXPECT_EQ(of_a, (std::vector<v1::ContainerEventType>{
                      v1::CONTAINER_CREATED_EVENT, v1::CONTAINER_STARTED_EVENT,
                      v1::CONTAINER_STOPPED_EVENT, v1::CONTAINER_DELETED_EVENT}));

#ifdef BERTHCTL_PATH
  auto r = berth::exec::Run({BERTHCTL_PATH, "--address", d_->socket(), "pods"});
  EXPECT_TRUE(r.ok()) << r.err;
  EXPECT_NE(r.out.find("POD ID"), std::string::npos) << r.out;
#endif
}

TEST_P(PodsE2E, SurvivesSigkillOfBerthd) {
  auto pc = Pod("survivor");
  std::string pod = RunPod(pc);
  std::string run, quit;
  ASSERT_TRUE(Create(pod, pc, "runner", "sleep 1000", &run).ok());
  ASSERT_TRUE(Create(pod, pc, "quitter", "sleep 1; exit 42", &quit).ok());
  Start(run);
  Start(quit);
  // A create in flight when berthd is killed.
  std::thread creator([&] { Create(pod, pc, "inflight", "true", nullptr); });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  d_->Kill(SIGKILL);
  creator.join();
  // The quitter exits while berthd is down.
  std::string exit_file = *dir_ / ("state/io.containerd.grpc.v1.cri/containers/" + quit + "/exit");
  for (int i = 0; i < 3000 && !berth::fs::Exists(exit_file); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(d_->Start(), "");
  EXPECT_EQ(Status(run).state(), v1::CONTAINER_RUNNING);
  auto q = Status(quit);
  EXPECT_EQ(q.state(), v1::CONTAINER_EXITED);
  EXPECT_EQ(q.exit_code(), 42);
  v1::ListPodSandboxResponse pods;
  ASSERT_TRUE(d_->rt().ListPodSandbox(Ctx().get(), {}, &pods).ok());
  ASSERT_EQ(pods.items_size(), 1);
  EXPECT_EQ(pods.items(0).state(), v1::SANDBOX_READY);
  // No half-created leftovers: every container directory belongs to a listed container.
  v1::ListContainersResponse lc;
  ASSERT_TRUE(d_->rt().ListContainers(Ctx().get(), {}, &lc).ok());
  std::set<std::string> listed;
  for (const auto& c : lc.containers()) listed.insert(c.id());
  std::string cdir = *dir_ / "state/io.containerd.grpc.v1.cri/containers";
  if (std::filesystem::exists(cdir)) {
    for (const auto& e : std::filesystem::directory_iterator(cdir)) {
      EXPECT_TRUE(listed.count(e.path().filename().string())) << "leftover " << e.path();
    }
  }
  v1::ExecSyncRequest er;
  er.set_container_id(run);
  er.add_cmd("echo");
  er.add_cmd("alive");
  v1::ExecSyncResponse eresp;
  ASSERT_TRUE(d_->rt().ExecSync(Ctx().get(), er, &eresp).ok());
  EXPECT_EQ(eresp.stdout(), "alive\n");
}

// berthd with a handler base_runtime_spec and a pinned sandbox image: the CRI runtime plugin
// reads the base spec once at init and the lifecycle uses it for sandboxes and containers. The
// sandbox image is not one of Kubernetes' own pause images, so it is pulled when absent (from a
// registry that refuses connections here) and, once imported, runs as the pause process.
class PodsE2EConfigured : public PodsE2E {
 protected:
  static constexpr const char* kPause = "127.0.0.1:1/test/pause:e2e";
  std::string HandlerExtra() override {
    auto base = berth::oci::DefaultSpec();
    base["process"]["env"].push_back("FROM_BASE=e2e");
    base["process"]["rlimits"] =
        nlohmann::json::parse(R"([{"type":"RLIMIT_NOFILE","hard":2345,"soft":2345}])");
    berth::testing::WriteFile(*dir_ / "base.json", base.dump());
    return "base_runtime_spec = \"" + (*dir_ / "base.json") + "\"\n";
  }
  std::string Extra() override {
    return "[plugins.\"io.containerd.cri.v1.images\".pinned_images]\n"
           "sandbox = \"" +
           SandboxImage() + "\"\n";
  }
  virtual std::string SandboxImage() { return kPause; }
  nlohmann::json PodInfo(const std::string& pod) {
    v1::PodSandboxStatusRequest r;
    r.set_pod_sandbox_id(pod);
    r.set_verbose(true);
    v1::PodSandboxStatusResponse resp;
    auto st = d_->rt().PodSandboxStatus(Ctx().get(), r, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return nlohmann::json::parse(resp.info().at("info"));
  }
  // The pause image: busybox's sleep as its entrypoint.
  berth::testing::TestImage PauseImage() {
    berth::testing::TestImageOptions opts;
    opts.user = "";
    opts.id = "pause";
    opts.entrypoint = {"/bin/sleep"};
    opts.cmd = {"100000"};
    return berth::testing::BuildTestImage(*dir_ / "oci-pause", opts);
  }
  // Runs a pod on the pinned image and checks the pause, the base spec and a container in it.
  void ExpectPinnedPod(const std::string& image) {
    auto pc = Pod("pinned");
    std::string pod = RunPod(pc);
    auto info = PodInfo(pod);
    EXPECT_EQ(info["image"], image);
    EXPECT_EQ(info["runtimeSpec"]["process"]["args"], nlohmann::json({"/bin/sleep", "100000"}));
    auto env = info["runtimeSpec"]["process"]["env"];
    EXPECT_NE(std::find(env.begin(), env.end(), "FROM_BASE=e2e"), env.end()) << env.dump();
    std::string id;
    ASSERT_TRUE(Create(pod, pc, "c", "echo base=$FROM_BASE; ulimit -n; hostname", &id).ok());
    Start(id);
    auto st = WaitExited(id);
    EXPECT_EQ(st.exit_code(), 0);
    std::string log = ReadAll(st.log_path());
    EXPECT_NE(log.find(" stdout F base=e2e\n"), std::string::npos) << log;
    EXPECT_NE(log.find(" stdout F 2345\n"), std::string::npos) << log;
    EXPECT_NE(log.find(" stdout F pinned\n"), std::string::npos) << log;
    v1::RemovePodSandboxRequest rm;
    rm.set_pod_sandbox_id(pod);
    v1::RemovePodSandboxResponse rmr;
    ASSERT_TRUE(d_->rt().RemovePodSandbox(Ctx().get(), rm, &rmr).ok());
    EXPECT_TRUE(berth::testing::Eventually(
        [&] { return ReadAll("/proc/self/mountinfo").find(pod) == std::string::npos; }));
  }
};

TEST_P(PodsE2EConfigured, BaseRuntimeSpecAndSandboxImage) {
  // The image is absent and its registry refuses: the pull's error, naming the image; nothing
  // of the sandbox is left.
  v1::RunPodSandboxRequest req;
  *req.mutable_config() = Pod("unpulled");
  v1::RunPodSandboxResponse resp;
  auto st = d_->rt().RunPodSandbox(Ctx().get(), req, &resp);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.error_message().find(kPause), std::string::npos) << st.error_message();
  EXPECT_NE(st.error_message().find("pinned_images.sandbox"), std::string::npos)
      << st.error_message();
  v1::ListPodSandboxResponse pods;
  ASSERT_TRUE(d_->rt().ListPodSandbox(Ctx().get(), {}, &pods).ok());
  EXPECT_EQ(pods.items_size(), 0);

  // Imported: new pods run its entrypoint as their pause process.
  berth::testing::WriteOciArchive(PauseImage(), *dir_ / "pause.tar", kPause);
  berth::images::v1::ImportRequest ireq;
  ireq.set_path(*dir_ / "pause.tar");
  berth::images::v1::ImportResponse iresp;
  auto ist = d_->admin().Import(Ctx().get(), ireq, &iresp);
  ASSERT_TRUE(ist.ok()) << ist.error_message();
  ExpectPinnedPod(kPause);
}

// The pinned sandbox image in a local registry: the first RunPodSandbox pulls it.
class PodsE2EPulledSandbox : public PodsE2EConfigured {
 protected:
  void SetUp() override {
    if (std::string why = berth::testing::RegistrySkipReason(); !why.empty()) GTEST_SKIP() << why;
    PodsE2EConfigured::SetUp();
  }
  std::string SandboxImage() override {
    registry_ = std::make_unique<berth::testing::LocalRegistry>();
    berth::testing::PushImage(PauseImage(), registry_->host(), "test/pause:pulled");
    return registry_->host() + "/test/pause:pulled";
  }
  void TearDown() override {
    PodsE2EConfigured::TearDown();
    registry_.reset();
  }
  std::unique_ptr<berth::testing::LocalRegistry> registry_;
};

TEST_P(PodsE2EPulledSandbox, SandboxImageIsPulledWhenAbsent) {
  std::string image = registry_->host() + "/test/pause:pulled";
  ExpectPinnedPod(image);
  auto images = v1::ImageService::NewStub(
      grpc::CreateChannel("unix:" + d_->socket(), grpc::InsecureChannelCredentials()));
  v1::ImageStatusRequest sreq;
  sreq.mutable_image()->set_image(image);
  v1::ImageStatusResponse sresp;
  ASSERT_TRUE(images->ImageStatus(Ctx().get(), sreq, &sresp).ok());
  EXPECT_TRUE(sresp.has_image()) << "the sandbox image is in the image store after the pull";
}

// Mount propagation and the lifetime of volume mounts (for both handlers): what a container sees
// of the host, what the host sees of it, and that nothing of berth's holds a host mount once the
// container is gone.
class PodsE2EMounts : public PodsE2E {
 protected:
  // The lines of the host's mountinfo that name this test's directory (berthd's root and state
  // are below it, so every mount berth makes for the test is there) or the cgroup2 mount of a
  // hybrid host (which the hybrid-cgroup launcher must leave alone on the host).
  std::set<std::string> HostMounts() {
    std::set<std::string> out;
    std::istringstream in(ReadAll("/proc/self/mountinfo"));
    for (std::string line; std::getline(in, line);)
      if (line.find(dir_->path()) != std::string::npos ||
          line.find(" /sys/fs/cgroup/unified ") != std::string::npos)
        out.insert(line);
    return out;
  }
  // A directory bind-mounted onto itself and made shared, as kubelet's volumes with propagation
  // are.
  std::string SharedDir(const std::string& name) {
    std::string d = *dir_ / name;
    berth::fs::MkdirAll(d);
    EXPECT_EQ(::mount(d.c_str(), d.c_str(), nullptr, MS_BIND, nullptr), 0) << strerror(errno);
    EXPECT_EQ(::mount(nullptr, d.c_str(), nullptr, MS_SHARED, nullptr), 0) << strerror(errno);
    return d;
  }
  static void AddVolume(v1::ContainerConfig& c, const std::string& host, const std::string& path,
                        v1::MountPropagation p, bool ro = false, bool rro = false) {
    auto* m = c.add_mounts();
    m->set_host_path(host);
    m->set_container_path(path);
    m->set_propagation(p);
    m->set_readonly(ro);
    m->set_recursive_read_only(rro);
  }
  std::string Exec(const std::string& id, const std::string& script) {
    v1::ExecSyncRequest r;
    r.set_container_id(id);
    for (const char* a : {"sh", "-c"}) r.add_cmd(a);
    r.add_cmd(script);
    r.set_timeout(20);
    v1::ExecSyncResponse out;
    auto st = d_->rt().ExecSync(Ctx().get(), r, &out);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return out.stdout() + out.stderr();
  }
  void RemovePod(const std::string& pod) {
    v1::StopPodSandboxRequest sp;
    sp.set_pod_sandbox_id(pod);
    v1::StopPodSandboxResponse spr;
    ASSERT_TRUE(d_->rt().StopPodSandbox(Ctx().get(), sp, &spr).ok());
    v1::RemovePodSandboxRequest rp;
    rp.set_pod_sandbox_id(pod);
    v1::RemovePodSandboxResponse rpr;
    ASSERT_TRUE(d_->rt().RemovePodSandbox(Ctx().get(), rp, &rpr).ok());
  }
  // Unmounts `dir` (MNT_DETACH) and removes it: what a test suite does with its volume's submount.
  static int DetachAndRemove(const std::string& dir) {
    if (::umount2(dir.c_str(), MNT_DETACH) != 0) return errno;
    return ::rmdir(dir.c_str()) == 0 ? 0 : errno;
  }
};

TEST_P(PodsE2EMounts, HostToContainerAndBidirectionalPropagation) {
  std::string slave = SharedDir("slave"), shared = SharedDir("shared");
  auto before = HostMounts();
  auto pc = Pod("prop");
  pc.mutable_linux()->mutable_security_context()->set_privileged(true);
  std::string pod = RunPod(pc), id;
  ASSERT_TRUE(Create(pod, pc, "c", "sleep 1000", &id,
                     [&](v1::ContainerConfig& c) {
                       c.mutable_linux()->mutable_security_context()->set_privileged(
                           true);  // to mount inside
                       AddVolume(c, slave, "/slave", v1::PROPAGATION_HOST_TO_CONTAINER);
                       AddVolume(c, shared, "/shared", v1::PROPAGATION_BIDIRECTIONAL);
                     })
                  .ok())
      << create_error_;
  Start(id);
  // Host mounts made after the start reach the container through both volumes.
  for (const auto& d : {slave, shared}) {
    berth::fs::MkdirAll(d + "/late");
    ASSERT_EQ(::mount("late", (d + "/late").c_str(), "tmpfs", 0, "size=64k"), 0) << strerror(errno);
    berth::testing::WriteFile(d + "/late/f", "from-host");
  }
  EXPECT_EQ(Exec(id, "cat /slave/late/f"), "from-host");
  EXPECT_EQ(Exec(id, "cat /shared/late/f"), "from-host");
  // A mount made in the container reaches the host through the bidirectional volume only.
  EXPECT_EQ(Exec(id,
                 "mkdir -p /shared/inner /slave/inner && mount -t tmpfs inner /shared/inner && "
                 "mount -t tmpfs inner /slave/inner && echo in > /shared/inner/f && echo in > "
                 "/slave/inner/f && echo ok"),
            "ok\n");
  EXPECT_TRUE(berth::testing::Eventually([&] { return berth::fs::Exists(shared + "/inner/f"); }))
      << "a mount made in the container did not reach the host through a bidirectional volume; in "
         "the container:\n"
      << Exec(id, "grep -E ' / | /shared| /slave' /proc/self/mountinfo") << "host:\n"
      << ReadAll("/proc/self/mountinfo");
  EXPECT_FALSE(berth::fs::Exists(slave + "/inner/f"))
      << "a host-to-container volume propagated back to the host";
  RemovePod(pod);
  for (const auto& m : {slave + "/late", shared + "/late", shared + "/inner"})
    EXPECT_EQ(DetachAndRemove(m), 0) << m;
  EXPECT_TRUE(berth::testing::Eventually([&] { return HostMounts() == before; }));
  EXPECT_EQ(HostMounts(), before);
}

// An rro volume with a tmpfs submount, by the KEP field and by treat_ro_mounts_as_rro: the
// submount is read-only in the container; the host can detach and remove it while the container
// still runs (the order a CRI test suite cleans up in) and after the container is removed.
TEST_P(PodsE2EMounts, RroSubmountsAreReleased) {
  std::string kep = *dir_ / "kep", ro = *dir_ / "ro";
  for (const auto& d : {kep, ro}) {
    berth::fs::MkdirAll(d + "/tmpfs");
    ASSERT_EQ(::mount("sub", (d + "/tmpfs").c_str(), "tmpfs", 0, "size=64k"), 0) << strerror(errno);
  }
  auto before = HostMounts();
  auto pc = Pod("rro");
  std::string pod = RunPod(pc), id;
  ASSERT_TRUE(Create(pod, pc, "c", "sleep 1000", &id,
                     [&](v1::ContainerConfig& c) {
                       AddVolume(c, kep, "/kep", v1::PROPAGATION_PRIVATE, true, true);
                       AddVolume(c, ro, "/ro", v1::PROPAGATION_PRIVATE, true, false);
                     })
                  .ok())
      << create_error_;
  Start(id);
  EXPECT_EQ(
      Exec(id,
           "for d in /kep /ro; do touch $d/tmpfs/f 2>&1 | grep -c 'Read-only file system'; done"),
      "1\n1\n");
  EXPECT_EQ(DetachAndRemove(kep + "/tmpfs"), 0)
      << "removing a submount of a running container's rro volume";
  RemovePod(pod);
  EXPECT_EQ(DetachAndRemove(ro + "/tmpfs"), 0)
      << "removing a submount of a removed container's rro volume";
  before.erase(std::find_if(before.begin(), before.end(), [&](const std::string& l) {
    return l.find(kep + "/tmpfs ") != std::string::npos;
  }));
  before.erase(std::find_if(before.begin(), before.end(), [&](const std::string& l) {
    return l.find(ro + "/tmpfs ") != std::string::npos;
  }));
  EXPECT_TRUE(berth::testing::Eventually([&] { return HostMounts() == before; }));
  EXPECT_EQ(HostMounts(), before);
}

// The same with berth's staged fallback: the handler's runtime says it has no `rro` (its
// `features` lacks it), so berth stages a recursively read-only copy of each volume itself.
class PodsE2EStaged : public PodsE2EMounts {
 protected:
  std::string Binary() override {
    auto runc = *berth::exec::LookPath("runc");
    auto doc = nlohmann::json::parse(berth::exec::Run({runc, "features"}).out);
    auto& opts = doc["mountOptions"];
    for (auto it = opts.begin(); it != opts.end();) it = (*it == "rro") ? opts.erase(it) : it + 1;
    berth::testing::WriteFile(*dir_ / "fake/features.json", doc.dump());
    // Named as the real runtime, which it runs for everything but `features`.
    std::string script = *dir_ / ("fake/" + GetParam());
    berth::testing::WriteFile(script, "#!/bin/sh\nif [ \"$1\" = features ]; then cat '" +
                                          *dir_ / "fake/features.json" + "'; exit 0; fi\nexec '" +
                                          *berth::exec::LookPath(GetParam()) + "' \"$@\"\n");
    ::chmod(script.c_str(), 0755);
    return script;
  }
};

TEST_P(PodsE2EStaged, RroSubmountsAreReleased) {
  std::string vol = *dir_ / "vol";
  berth::fs::MkdirAll(vol + "/tmpfs");
  ASSERT_EQ(::mount("sub", (vol + "/tmpfs").c_str(), "tmpfs", 0, "size=64k"), 0) << strerror(errno);
  auto before = HostMounts();
  auto pc = Pod("staged");
  std::string pod = RunPod(pc), id;
  ASSERT_TRUE(Create(pod, pc, "c", "sleep 1000", &id,
                     [&](v1::ContainerConfig& c) {
                       AddVolume(c, vol, "/vol", v1::PROPAGATION_PRIVATE, true, true);
                     })
                  .ok())
      << create_error_;
  Start(id);
  bool staged = false;
  for (const auto& l : HostMounts()) staged |= l.find("/rro/") != std::string::npos;
  EXPECT_TRUE(staged) << "berth did not stage the volume";
  EXPECT_EQ(Exec(id, "touch /vol/tmpfs/f 2>&1 | grep -c 'Read-only file system'"), "1\n");
  RemovePod(pod);
  EXPECT_EQ(DetachAndRemove(vol + "/tmpfs"), 0)
      << "removing a submount of a removed container's staged rro volume; host mounts:\n"
      << ReadAll("/proc/self/mountinfo");
  before.erase(std::find_if(before.begin(), before.end(), [&](const std::string& l) {
    return l.find(vol + "/tmpfs ") != std::string::npos;
  }));
  EXPECT_TRUE(berth::testing::Eventually([&] { return HostMounts() == before; }));
  EXPECT_EQ(HostMounts(), before);
}

std::string HandlerName(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

INSTANTIATE_TEST_SUITE_P(Handlers, PodsE2E, ::testing::Values("runc", "crun"), HandlerName);
INSTANTIATE_TEST_SUITE_P(Handlers, PodsE2EConfigured, ::testing::Values("runc", "crun"),
                         HandlerName);
INSTANTIATE_TEST_SUITE_P(Handlers, PodsE2EPulledSandbox, ::testing::Values("runc", "crun"),
                         HandlerName);
INSTANTIATE_TEST_SUITE_P(Handlers, PodsE2EMounts, ::testing::Values("runc", "crun"), HandlerName);
INSTANTIATE_TEST_SUITE_P(Handlers, PodsE2EStaged, ::testing::Values("runc", "crun"), HandlerName);

}  // namespace
