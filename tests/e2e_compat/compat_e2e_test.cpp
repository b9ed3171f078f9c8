// End-to-end: what kubelet and tools see of berth is what they see of containerd. The real
// berthd with runc, berth-monitor and berth-pause on a temporary socket, root and state, a
// busybox image with the /etc/passwd and /etc/group of Docker's busybox image, and a real gRPC
// client (and berthctl). Needs root, runc and busybox-static; skips otherwise.
#include "runtime/v1/api.grpc.pb.h"  // first: its enum Signal names collide with <signal.h> macros

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "berth/images/v1/images.grpc.pb.h"
#include "common/exec.h"
#include "image_support.h"
#include "support/support.h"

namespace {

namespace v1 = runtime::v1;
using berth::testing::TempDir;

// Docker's busybox image: root is a member of wheel; daemon is uid 1, gid 1.
constexpr const char* kPasswd =
    "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "nobody:x:65534:65534:nobody:/home:/bin/false\n";
constexpr const char* kGroup =
    "root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nadm:x:4:\ntty:x:5:\ndisk:x:6:\nwheel:x:10:root\n"
    "nogroup:x:65534:\n";
constexpr const char* kImage = "docker.io/test/busybox:compat";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::unique_ptr<grpc::ClientContext> Ctx(std::chrono::milliseconds d = std::chrono::seconds(60)) {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + d);
  return c;
}

std::string NodeHostname() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

class CompatE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    skip_ = berth::testing::ContainerSkipReason("runc");
    if (skip_.empty() && berth::testing::BusyboxPath().empty())
      skip_ = "busybox-static is not installed";
    if (!skip_.empty()) return;
    dir_ = new TempDir("berth-e2e-compat");
    socket_ = *dir_ / "berth.sock";
    std::ostringstream c;
    c << "version = 3\nroot = \"" << dir_->path() << "/root\"\nstate = \"" << dir_->path()
      << "/state\"\n"
      << "[grpc]\naddress = \"" << socket_ << "\"\n"
      << "[plugins.\"io.containerd.cri.v1.runtime\"]\nrestrict_oom_score_adj = true\n"
      << "[plugins.\"io.containerd.cri.v1.runtime\".containerd]\ndefault_runtime_name = \"runc\"\n"
      << "[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.runc]\n"
      << "runtime_type = \"io.containerd.runc.v2\"\n"
      << "[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.runc.options]\nBinaryName "
         "= \"runc\"\n";
    berth::testing::WriteFile(*dir_ / "config.toml", c.str());
    start_error_ = StartBerthd();
    if (!start_error_.empty()) return;
    berth::testing::TestImageOptions opts;
    opts.user = "";
    opts.entrypoint = {};
    opts.cmd = {"sh"};
    opts.passwd = kPasswd;
    opts.group = kGroup;
    opts.id = "compat";
    image_id_ = Import(opts, kImage);
  }
  static void TearDownTestSuite() {
    if (pid_ > 0) berth::testing::StopChild(pid_, SIGTERM);
    pid_ = -1;
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    ASSERT_EQ(start_error_, "");
    ASSERT_FALSE(image_id_.empty());
  }
  void TearDown() override {
    if (!skip_.empty() || !runtime_) return;
    v1::ListPodSandboxResponse pods;
    if (!runtime_->ListPodSandbox(Ctx().get(), {}, &pods).ok()) return;
    for (const auto& p : pods.items()) {
      v1::RemovePodSandboxRequest r;
      r.set_pod_sandbox_id(p.id());
      v1::RemovePodSandboxResponse rr;
      runtime_->RemovePodSandbox(Ctx().get(), r, &rr);
    }
  }

  static std::string StartBerthd() {
    std::string log = *dir_ / "berthd.log";
    pid_ = fork();
    if (pid_ < 0) return "fork failed";
    if (pid_ == 0) {
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      setenv("BERTH_MONITOR_PATH", BERTH_MONITOR_PATH, 1);
      setenv("BERTH_PAUSE_PATH", BERTH_PAUSE_PATH, 1);
      std::string cfg = *dir_ / "config.toml";
      execl(BERTHD_PATH, BERTHD_PATH, "--config", cfg.c_str(), nullptr);
      _exit(127);
    }
    auto channel = grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials());
    runtime_ = v1::RuntimeService::NewStub(channel);
    images_ = v1::ImageService::NewStub(channel);
    berth_images_ = berth::images::v1::Images::NewStub(channel);
    for (int i = 0; i < 1200; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return "berthd exited during startup:\n" + ReadAll(log);
      }
      v1::VersionResponse resp;
      if (access(socket_.c_str(), F_OK) == 0 &&
          runtime_->Version(Ctx(std::chrono::milliseconds(200)).get(), {}, &resp).ok())
        return "";
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return "berthd did not answer on " + socket_ + ":\n" + ReadAll(log);
  }

  // Builds and imports an image; returns its ID ("sha256:...").
  static std::string Import(const berth::testing::TestImageOptions& opts, const std::string& ref) {
    std::string dir = *dir_ / ("oci-" + opts.id);
    auto img = berth::testing::BuildTestImage(dir, opts);
    berth::testing::WriteOciArchive(img, dir + ".tar", ref);
    berth::images::v1::ImportRequest req;
    req.set_path(dir + ".tar");
    berth::images::v1::ImportResponse resp;
    auto st = berth_images_->Import(Ctx().get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return img.config_digest;
  }

  static berth::exec::Result Berthctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {BERTHCTL_PATH, "--runtime-endpoint", "unix://" + socket_};
    argv.insert(argv.end(), args.begin(), args.end());
    berth::exec::Options o;
    o.timeout = std::chrono::seconds(120);
    return berth::exec::Run(argv, o);
  }

  v1::PodSandboxConfig Pod(const std::string& name) {
    v1::PodSandboxConfig c;
    c.mutable_metadata()->set_name(name);
    c.mutable_metadata()->set_namespace_("compat");
    c.mutable_metadata()->set_uid("uid-" + name);
    c.set_hostname(name);
    c.set_log_directory(*dir_ / ("logs/" + name));
    return c;
  }
  grpc::Status RunPod(const v1::PodSandboxConfig& c, std::string* id,
                      const std::string& handler = "") {
    v1::RunPodSandboxRequest req;
    *req.mutable_config() = c;
    req.set_runtime_handler(handler);
    v1::RunPodSandboxResponse resp;
    auto st = runtime_->RunPodSandbox(Ctx().get(), req, &resp);
    if (id) *id = resp.pod_sandbox_id();
    return st;
  }
  std::string MustRunPod(const v1::PodSandboxConfig& c) {
    std::string id;
    auto st = RunPod(c, &id);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return id;
  }
  v1::ContainerConfig Ctr(const std::string& name, const std::string& script) {
    v1::ContainerConfig c;
    c.mutable_metadata()->set_name(name);
    c.mutable_image()->set_image(kImage);
    c.add_command("sh");
    c.add_command("-c");
    c.add_command(script);
    c.set_log_path(name + ".log");
    return c;
  }
  std::string Create(const std::string& pod, const v1::PodSandboxConfig& pc,
                     const v1::ContainerConfig& c) {
    v1::CreateContainerRequest req;
    req.set_pod_sandbox_id(pod);
    *req.mutable_sandbox_config() = pc;
    *req.mutable_config() = c;
    v1::CreateContainerResponse resp;
    auto st = runtime_->CreateContainer(Ctx().get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.container_id();
  }
  void Start(const std::string& id) {
    v1::StartContainerRequest r;
    r.set_container_id(id);
    v1::StartContainerResponse rr;
    auto st = runtime_->StartContainer(Ctx().get(), r, &rr);
    EXPECT_TRUE(st.ok()) << st.error_message();
  }
  grpc::Status Status(const std::string& id, v1::ContainerStatus* out) {
    v1::ContainerStatusRequest r;
    r.set_container_id(id);
    v1::ContainerStatusResponse rr;
    auto st = runtime_->ContainerStatus(Ctx().get(), r, &rr);
    if (out) *out = rr.status();
    return st;
  }
  v1::ContainerStatus WaitExited(const std::string& id) {
    v1::ContainerStatus s;
    for (int i = 0; i < 3000; ++i) {
      Status(id, &s);
      if (s.state() == v1::CONTAINER_EXITED) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "container " << id << " did not exit";
    return s;
  }
  // Runs `script` to its end in a new container of `pod`; returns its log.
  std::string RunToEnd(const std::string& pod, const v1::PodSandboxConfig& pc,
                       v1::ContainerConfig c, v1::ContainerStatus* status = nullptr) {
    std::string id = Create(pod, pc, c);
    Start(id);
    auto s = WaitExited(id);
    if (status) *status = s;
    return ReadAll(s.log_path());
  }
  grpc::Status Stop(const std::string& id, int64_t timeout, std::chrono::milliseconds deadline) {
    v1::StopContainerRequest r;
    r.set_container_id(id);
    r.set_timeout(timeout);
    v1::StopContainerResponse rr;
    return runtime_->StopContainer(Ctx(deadline).get(), r, &rr);
  }

  static inline std::string skip_, start_error_, socket_, image_id_;
  static inline TempDir* dir_ = nullptr;
  static inline pid_t pid_ = -1;
  static inline std::unique_ptr<v1::RuntimeService::Stub> runtime_;
  static inline std::unique_ptr<v1::ImageService::Stub> images_;
  static inline std::unique_ptr<berth::images::v1::Images::Stub> berth_images_;
};

// `id` in the busybox image: the groups containerd and Docker give the process.
TEST_F(CompatE2E, SupplementaryGroupsAsContainerd) {
  auto pc = Pod("groups");
  std::string pod = MustRunPod(pc);
  struct Case {
    std::string name;
    std::function<void(v1::LinuxContainerSecurityContext&)> set;
    std::string id_line;
  };
  std::vector<Case> cases = {
      {"nothing", [](auto&) {}, "uid=0(root) gid=0(root) groups=0(root),10(wheel)"},
      {"supplemental",
       [](auto& sc) {
         sc.add_supplemental_groups(1);
         sc.add_supplemental_groups(1234);
       },
       "uid=0(root) gid=0(root) groups=0(root),1(daemon),10(wheel),1234"},
      {"uid", [](auto& sc) { sc.mutable_run_as_user()->set_value(1234); },
       "uid=1234 gid=0(root) groups=0(root)"},
      {"uid-gid",
       [](auto& sc) {
         sc.mutable_run_as_user()->set_value(1234);
         sc.mutable_run_as_group()->set_value(1234);
       },
       "uid=1234 gid=1234 groups=1234"},
      {"username", [](auto& sc) { sc.set_run_as_username("daemon"); },
       "uid=1(daemon) gid=1(daemon) groups=1(daemon)"},
      {"strict",
       [](auto& sc) {
         sc.add_supplemental_groups(1234);
         sc.set_supplemental_groups_policy(v1::Strict);
       },
       "uid=0(root) gid=0(root) groups=0(root),1234"},
  };
  for (const auto& k : cases) {
    auto c = Ctr(k.name, "id");
    k.set(*c.mutable_linux()->mutable_security_context());
    v1::ContainerStatus st;
    std::string log = RunToEnd(pod, pc, c, &st);
    EXPECT_NE(log.find(" stdout F " + k.id_line + "\n"), std::string::npos)
        << k.name << ": " << log;
    EXPECT_EQ(st.exit_code(), 0) << k.name;
    if (k.name == "supplemental") {
      // ContainerStatus.user: the effective uid, gid and groups (KEP-3619).
      EXPECT_EQ(st.user().linux().uid(), 0);
      EXPECT_EQ(st.user().linux().gid(), 0);
      EXPECT_EQ(std::vector<int64_t>(st.user().linux().supplemental_groups().begin(),
                                     st.user().linux().supplemental_groups().end()),
                (std::vector<int64_t>{0, 10, 1, 1234}));
    }
    if (k.name == "uid-gid") {
      EXPECT_EQ(st.user().linux().uid(), 1234);
      EXPECT_EQ(st.user().linux().gid(), 1234);
      EXPECT_EQ(st.user().linux().supplemental_groups_size(), 1);
    }
  }
  v1::StatusRequest sreq;
  v1::StatusResponse sresp;
  ASSERT_TRUE(runtime_->Status(Ctx().get(), sreq, &sresp).ok());
  EXPECT_TRUE(sresp.features().supplemental_groups_policy());
}

// Output that ends without a newline is a partial entry, as containerd writes it.
TEST_F(CompatE2E, LastLineWithoutNewlineIsPartial) {
  auto pc = Pod("partial");
  std::string pod = MustRunPod(pc);
  std::string log = RunToEnd(pod, pc, Ctr("partial", "echo full; printf abcd"));
  EXPECT_NE(log.find(" stdout F full\n"), std::string::npos) << log;
  EXPECT_NE(log.find(" stdout P abcd\n"), std::string::npos) << log;
  EXPECT_EQ(log.find(" stdout F abcd"), std::string::npos) << log;
}

// `crictl info | jq .config...` paths of containerd's CRI plugin.
TEST_F(CompatE2E, StatusConfigIsContainerdsJSON) {
  v1::StatusRequest req;
  req.set_verbose(true);
  v1::StatusResponse resp;
  auto st = runtime_->Status(Ctx().get(), req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  auto cfg = nlohmann::json::parse(resp.info().at("config"));
  EXPECT_EQ(cfg["containerd"]["snapshotter"], "overlayfs");
  EXPECT_EQ(cfg["containerd"]["defaultRuntimeName"], "runc");
  EXPECT_EQ(cfg["containerd"]["runtimes"]["runc"]["runtimeType"], "io.containerd.runc.v2");
  EXPECT_EQ(cfg["containerd"]["runtimes"]["runc"]["options"]["BinaryName"], "runc");
  EXPECT_EQ(cfg["containerd"]["runtimes"]["runc"]["sandboxMode"], "podsandbox");
  EXPECT_EQ(cfg["containerd"]["runtimes"]["runc"]["privileged_without_host_devices"], false);
  EXPECT_EQ(cfg["cni"]["binDir"], "/opt/cni/bin");
  EXPECT_EQ(cfg["cni"]["confDir"], "/etc/cni/net.d");
  EXPECT_EQ(cfg["cni"]["maxConfNum"], 1);
  EXPECT_EQ(cfg["enableSelinux"], false);
  EXPECT_EQ(cfg["sandboxImage"], "registry.k8s.io/pause:3.10");
  EXPECT_EQ(cfg["maxContainerLogSize"], 16384);
  EXPECT_EQ(cfg["restrictOOMScoreAdj"], true);
  EXPECT_EQ(cfg["registry"]["configPath"], "");
  EXPECT_EQ(cfg["imageDecryption"]["keyModel"], "node");
  EXPECT_EQ(cfg["streamServerAddress"], "127.0.0.1");
  EXPECT_EQ(cfg["streamIdleTimeout"], "4h0m0s");
  EXPECT_EQ(cfg["x509KeyPairStreaming"]["tlsCertFile"], "");
  EXPECT_EQ(cfg["containerdRootDir"], *dir_ / "root");
  EXPECT_EQ(cfg["containerdEndpoint"], socket_);
  EXPECT_EQ(cfg["rootDir"], *dir_ / "root/io.containerd.grpc.v1.cri");
  EXPECT_EQ(cfg["stateDir"], *dir_ / "state/io.containerd.grpc.v1.cri");
  // No key of berth's own TOML spelling at containerd's places; berth's additions apart.
  EXPECT_FALSE(cfg.contains("max_container_log_line_size"));
  EXPECT_FALSE(cfg["containerd"].contains("default_runtime_name"));
  EXPECT_FALSE(cfg["containerd"]["runtimes"]["runc"].contains("treat_ro_mounts_as_rro"));
  EXPECT_EQ(cfg["berth"]["runtimes"]["runc"]["treatRoMountsAsRro"], "");
  EXPECT_TRUE(cfg["berth"]["runtimes"]["runc"]["recursiveReadOnly"].contains("enabled"));
  EXPECT_EQ(cfg["berth"]["cni"]["binDirs"], nlohmann::json({"/opt/cni/bin", "/usr/lib/cni"}));
}

// A stop whose caller gives up is abandoned: no SIGKILL, the container keeps running; a later
// stop with a longer deadline stops it.
TEST_F(CompatE2E, StopContainerHonoursTheCallersDeadline) {
  auto pc = Pod("stop");
  std::string pod = MustRunPod(pc);
  std::string id = Create(pod, pc, Ctr("stubborn", "trap '' TERM; echo ready; sleep 100000"));
  Start(id);
  // SIGTERM is ignored only once the shell has run its trap.
  const std::string log = pc.log_directory() + "/stubborn.log";
  ASSERT_TRUE(berth::testing::Eventually([&] {
    std::ifstream in(log);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str().find("ready") != std::string::npos;
  })) << "no \"ready\" in " << log;
  auto st = Stop(id, 60, std::chrono::seconds(1));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << st.error_message();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  v1::ContainerStatus s;
  ASSERT_TRUE(Status(id, &s).ok());
  EXPECT_EQ(s.state(), v1::CONTAINER_RUNNING);
  // The abandoned stop holds nothing: this one (whose deadline ends long before the first
  // stop's 60 s) escalates to SIGKILL after its own 1 s.
  st = Stop(id, 1, std::chrono::seconds(30));
  EXPECT_TRUE(st.ok()) << st.error_message();
  ASSERT_TRUE(Status(id, &s).ok());
  EXPECT_EQ(s.state(), v1::CONTAINER_EXITED);
  EXPECT_EQ(s.exit_code(), 137);
}

// Host-network pods: no hostname of their own (refused as containerd refuses it); without one
// the node's, in $HOSTNAME and /etc/hostname.
TEST_F(CompatE2E, HostNetworkPodHostname) {
  auto pc = Pod("hostnet");
  pc.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_network(
      v1::NODE);
  auto st = RunPod(pc, nullptr);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("unable to set hostname without a private UTS namespace"),
            std::string::npos)
      << st.error_message();
  v1::ListPodSandboxResponse pods;
  ASSERT_TRUE(runtime_->ListPodSandbox(Ctx().get(), {}, &pods).ok());
  EXPECT_EQ(pods.items_size(), 0);

  pc.set_hostname("");
  std::string pod = MustRunPod(pc);
  std::string log = RunToEnd(
      pod, pc, Ctr("hostname", "echo HOSTNAME=$HOSTNAME; echo /etc/hostname=$(cat /etc/hostname)"));
  EXPECT_NE(log.find(" stdout F HOSTNAME=" + NodeHostname() + "\n"), std::string::npos) << log;
  EXPECT_NE(log.find(" stdout F /etc/hostname=" + NodeHostname() + "\n"), std::string::npos) << log;
}

// runtime_handler is echoed as the request named it: "" for the default handler.
TEST_F(CompatE2E, RuntimeHandlerIsEchoed) {
  std::map<std::string, std::string> pods;  // handler -> pod id
  for (std::string h : {"", "runc"}) {
    std::string id;
    auto st = RunPod(Pod("handler-" + (h.empty() ? std::string("default") : h)), &id, h);
    ASSERT_TRUE(st.ok()) << st.error_message();
    pods[h] = id;
    v1::PodSandboxStatusRequest r;
    r.set_pod_sandbox_id(id);
    v1::PodSandboxStatusResponse rr;
    ASSERT_TRUE(runtime_->PodSandboxStatus(Ctx().get(), r, &rr).ok());
    EXPECT_EQ(rr.status().runtime_handler(), h);
  }
  v1::ListPodSandboxResponse list;
  ASSERT_TRUE(runtime_->ListPodSandbox(Ctx().get(), {}, &list).ok());
  ASSERT_EQ(list.items_size(), 2);
  for (const auto& p : list.items()) EXPECT_EQ(pods.at(p.runtime_handler()), p.id());
#ifdef BERTHCTL_PATH
  auto r = Berthctl({"pods", "--runtime", ""});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(pods[""].substr(0, 13)), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(pods["runc"].substr(0, 13)), std::string::npos) << r.out;
  r = Berthctl({"pods", "-q", "--runtime", "runc"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, pods["runc"] + "\n");
#endif
}

// The first `n` characters shared by at least two of `ids`, or "".
std::string SharedPrefix(const std::vector<std::string>& ids, size_t n, size_t* matches) {
  std::map<std::string, size_t> count;
  for (const auto& id : ids) ++count[id.substr(0, n)];
  for (const auto& [p, k] : count)
    if (k > 1) {
      *matches = k;
      return p;
    }
  return "";
}

// Unique prefixes name containers, sandboxes and images (images also as sha256:<prefix>); an
// ambiguous one is refused with how many IDs it matches. berthctl takes the same.
TEST_F(CompatE2E, ShortIds) {
  auto pc = Pod("short");
  std::string pod = MustRunPod(pc);
  std::string sleeper = Create(pod, pc, Ctr("sleeper", "sleep 100000"));
  Start(sleeper);
  // Sandbox and container by a 12-character prefix.
  v1::PodSandboxStatusRequest pr;
  pr.set_pod_sandbox_id(pod.substr(0, 12));
  v1::PodSandboxStatusResponse prr;
  ASSERT_TRUE(runtime_->PodSandboxStatus(Ctx().get(), pr, &prr).ok());
  EXPECT_EQ(prr.status().id(), pod);
  v1::ContainerStatus s;
  ASSERT_TRUE(Status(sleeper.substr(0, 5), &s).ok());
  EXPECT_EQ(s.id(), sleeper);
  v1::ExecSyncRequest er;
  er.set_container_id(sleeper.substr(0, 12));
  er.add_cmd("echo");
  er.add_cmd("in");
  er.set_timeout(30);
  v1::ExecSyncResponse err;
  ASSERT_TRUE(runtime_->ExecSync(Ctx().get(), er, &err).ok());
  EXPECT_EQ(err.stdout(), "in\n");
  // Images by ID prefix, with and without sha256:.
  for (std::string ref : {image_id_.substr(0, 7 + 12), image_id_.substr(7, 12)}) {
    v1::ImageStatusRequest ir;
    ir.mutable_image()->set_image(ref);
    v1::ImageStatusResponse irr;
    ASSERT_TRUE(images_->ImageStatus(Ctx().get(), ir, &irr).ok()) << ref;
    EXPECT_EQ(irr.image().id(), image_id_) << ref;
  }
  // Ambiguous container prefixes: created containers until two share a first character.
  std::vector<std::string> ids = {sleeper};
  size_t matches = 0;
  std::string prefix;
  for (int i = 0; i < 17 && prefix.empty(); ++i) {
    ids.push_back(Create(pod, pc, Ctr("c" + std::to_string(i), "true")));
    prefix = SharedPrefix(ids, 1, &matches);
  }
  ASSERT_FALSE(prefix.empty());
  auto st = Status(prefix, nullptr);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "ID prefix \"" + prefix + "\" is ambiguous: it matches " +
                                    std::to_string(matches) + " containers");
  // Ambiguous image prefixes: imported images until two IDs share a first hex digit.
  std::vector<std::string> image_hex = {image_id_.substr(7)};
  std::string iprefix;
  size_t imatches = 0;
  for (int i = 0; i < 17 && iprefix.empty(); ++i) {
    berth::testing::TestImageOptions o;
    o.id = "prefix-" + std::to_string(i);
    o.filler_bytes = 16;
    image_hex.push_back(Import(o, "docker.io/test/prefix:" + std::to_string(i)).substr(7));
    iprefix = SharedPrefix(image_hex, 1, &imatches);
  }
  ASSERT_FALSE(iprefix.empty());
  v1::ImageStatusRequest ir;
  ir.mutable_image()->set_image("sha256:" + iprefix);
  v1::ImageStatusResponse irr;
  st = images_->ImageStatus(Ctx().get(), ir, &irr);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "ID prefix \"" + iprefix + "\" is ambiguous: it matches " +
                                    std::to_string(imatches) + " images");
#ifdef BERTHCTL_PATH
  auto r = Berthctl({"inspect", sleeper.substr(0, 12)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(sleeper), std::string::npos) << r.out;
  r = Berthctl({"inspectp", pod.substr(0, 12)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(pod), std::string::npos) << r.out;
  r = Berthctl({"inspecti", image_id_.substr(0, 7 + 12)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(image_id_), std::string::npos) << r.out;
  r = Berthctl({"inspect", prefix});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("is ambiguous: it matches " + std::to_string(matches) + " containers"),
            std::string::npos)
      << r.err;
  r = Berthctl({"stop", "--time", "0", sleeper.substr(0, 12)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(Status(sleeper, &s).ok());
  EXPECT_EQ(s.state(), v1::CONTAINER_EXITED);
#endif
}

}  // namespace
