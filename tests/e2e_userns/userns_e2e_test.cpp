// End-to-end user namespaces for pods (KEP-127): the real berthd with runc and with crun, an image
// imported from an OCI archive built in the test from busybox-static, a real gRPC client. A pod
// with userns_options mode POD: its uid_map, idmapped image layers (root-owned files are root's
// inside, nothing copied), volumes seen through the mapping, an idmapped and recursively
// read-only volume, the CRI rules refused with named reasons and nothing left behind, and a
// kill -9 of berthd with the pod running. Needs root, the runtime and busybox-static; a handler
// that did not prove user namespaces at start skips with its reason.
#include "runtime/v1/api.grpc.pb.h"  // first: its enum Signal names collide with <signal.h> macros

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "berth/admin/v1/admin.grpc.pb.h"
#include "berth/images/v1/images.grpc.pb.h"
#include "berthd_proc.h"
#include "common/fs.h"
#include "image_support.h"
#include "support/support.h"

namespace {

namespace v1 = runtime::v1;
using berth::testing::BerthdProc;
using berth::testing::TempDir;

constexpr uint32_t kHostBase = 3100000000u;  // the pods' root on the host: far from real users

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

std::string Binary(const std::string& handler) { return handler == "runc-spec" ? "runc" : handler; }

// A berthd whose default handler is `handler`; "runc-spec" is runc with a base_runtime_spec
// (`runc spec`), so that the pause runs through the runtime rather than being started by berthd.
// runtime_extra: more keys of [plugins."io.containerd.cri.v1.runtime"] (e.g. userns_rootfs).
// Without berth-rro-probe (with_probe false) the runtime cannot be proven: user namespaces are off.
std::unique_ptr<BerthdProc> NewBerthd(const std::string& dir, const std::string& handler,
                                      const std::string& runtime_extra = "",
                                      bool with_probe = true) {
  berth::testing::BerthdOptions o;
  o.handler = handler;
  o.binary = Binary(handler);
  o.runtime_extra = runtime_extra;
  if (handler == "runc-spec") {
    berth::fs::MkdirAll(dir + "/spec", 0755);
    if (std::system(("runc spec -b " + dir + "/spec").c_str()) == 0)
      o.handler_extra = "base_runtime_spec = \"" + dir + "/spec/config.json\"\n";
  }
  o.extra = "[plugins.\"io.containerd.cri.v1.runtime\".cni]\nconf_dir = \"\"\n";
  o.env = {{"BERTH_RRO_PROBE", with_probe ? BERTH_RRO_PROBE_PATH : "/nonexistent/berth-rro-probe"}};
  return std::make_unique<BerthdProc>(dir, BERTHD_PATH, BERTH_MONITOR_PATH, BERTH_PAUSE_PATH, o);
}

void Map(google::protobuf::RepeatedPtrField<v1::IDMapping>* out, uint32_t container, uint32_t host,
         uint32_t len) {
  auto* m = out->Add();
  m->set_container_id(container);
  m->set_host_id(host);
  m->set_length(len);
}

class UsernsE2E : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string reason = berth::testing::ContainerSkipReason(Binary(GetParam()));
    if (!reason.empty()) GTEST_SKIP() << reason;
    if (berth::testing::BusyboxPath().empty()) GTEST_SKIP() << "busybox-static is not installed";
    dir_ = std::make_unique<TempDir>("berth-e2e-userns");
    // The pods' root reaches bundles and volumes below it: traversable, as /run and /var/lib are.
    ASSERT_EQ(::chmod(dir_->path().c_str(), 0711), 0);
    d_ = NewBerthd(dir_->path(), GetParam(), RuntimeExtra());
    ASSERT_EQ(d_->Start(), "");
    v1::StatusRequest sreq;
    sreq.set_verbose(true);
    v1::StatusResponse sresp;
    ASSERT_TRUE(d_->rt().Status(Ctx().get(), sreq, &sresp).ok());
    for (const auto& h : sresp.runtime_handlers()) {
      if (h.name() != GetParam()) continue;
      if (!h.features().user_namespaces()) {
        auto handlers = nlohmann::json::parse(sresp.info().at("runtimeHandlers"));
        std::string why;
        for (const auto& j : handlers)
          if (j.value("name", "") == GetParam())
            why = j["features"].value("user_namespaces_reason", "");
        ASSERT_FALSE(why.empty()) << "user_namespaces false without a reason";
        GTEST_SKIP() << GetParam() << " cannot run pods in a user namespace here: " << why;
      }
    }
    ImportImage("docker.io/test/busybox:userns", 64 * 1024, "gzip");
  }

  virtual std::string RuntimeExtra() { return ""; }

  void ImportImage(const std::string& ref, size_t filler, const std::string& compression) {
    berth::testing::TestImageOptions opts;
    opts.user = "";
    opts.entrypoint = {};
    opts.cmd = {"sh"};
    opts.filler_bytes = filler;
    opts.compression = {compression};
    opts.id = ref;
    std::string name = std::to_string(std::hash<std::string>{}(ref));
    auto img = berth::testing::BuildTestImage(*dir_ / ("oci-" + name), opts);
    berth::testing::WriteOciArchive(img, *dir_ / (name + ".tar"), ref);
    berth::images::v1::ImportRequest req;
    req.set_path(*dir_ / (name + ".tar"));
    berth::images::v1::ImportResponse resp;
    auto st = d_->admin().Import(Ctx().get(), req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }

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

  v1::PodSandboxConfig Pod(const std::string& name, uint32_t host = kHostBase) {
    v1::PodSandboxConfig c;
    c.mutable_metadata()->set_name(name);
    c.mutable_metadata()->set_namespace_("e2e");
    c.mutable_metadata()->set_uid("uid-" + name);
    c.set_hostname(name);
    c.set_log_directory(*dir_ / ("logs/" + name));
    auto* u = c.mutable_linux()
                  ->mutable_security_context()
                  ->mutable_namespace_options()
                  ->mutable_userns_options();
    u->set_mode(v1::POD);
    Map(u->mutable_uids(), 0, host, 65536);
    Map(u->mutable_gids(), 0, host, 65536);
    return c;
  }
  grpc::Status RunPod(const v1::PodSandboxConfig& c, std::string* id) {
    v1::RunPodSandboxRequest req;
    *req.mutable_config() = c;
    v1::RunPodSandboxResponse resp;
    auto st = d_->rt().RunPodSandbox(Ctx().get(), req, &resp);
    *id = resp.pod_sandbox_id();
    return st;
  }
  grpc::Status Create(const std::string& pod, const v1::PodSandboxConfig& pc,
                      const std::string& name, const std::string& script, std::string* id,
                      const std::function<void(v1::ContainerConfig&)>& edit = nullptr) {
    v1::CreateContainerRequest req;
    req.set_pod_sandbox_id(pod);
    *req.mutable_sandbox_config() = pc;
    auto* c = req.mutable_config();
    c->mutable_metadata()->set_name(name);
    c->mutable_image()->set_image("docker.io/test/busybox:userns");
    c->add_command("sh");
    c->add_command("-c");
    c->add_command(script);
    c->set_log_path(name + ".log");
    if (edit) edit(*c);
    v1::CreateContainerResponse resp;
    auto st = d_->rt().CreateContainer(Ctx().get(), req, &resp);
    *id = resp.container_id();
    return st;
  }
  void Start(const std::string& id) {
    v1::StartContainerRequest r;
    r.set_container_id(id);
    v1::StartContainerResponse rr;
    auto st = d_->rt().StartContainer(Ctx().get(), r, &rr);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  v1::ContainerStatusResponse Status(const std::string& id) {
    v1::ContainerStatusRequest r;
    r.set_container_id(id);
    r.set_verbose(true);
    v1::ContainerStatusResponse rr;
    d_->rt().ContainerStatus(Ctx().get(), r, &rr);
    return rr;
  }
  v1::ContainerStatus WaitExited(const std::string& id) {
    for (int i = 0; i < 3000; ++i) {
      auto s = Status(id).status();
      if (s.state() == v1::CONTAINER_EXITED) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "container did not exit";
    return Status(id).status();
  }
  // The container's output: the message part of each CRI log line.
  std::string Output(const std::string& pod, const std::string& name) {
    std::istringstream in(ReadAll(*dir_ / ("logs/" + pod + "/" + name + ".log")));
    std::string line, out;
    while (std::getline(in, line)) {
      // <time> <stream> <P|F> <text>
      size_t a = line.find(' '), b = line.find(' ', a + 1), c = line.find(' ', b + 1);
      if (c != std::string::npos) out += line.substr(c + 1) + "\n";
    }
    return out;
  }
  // Runs `script` in a new container of the pod and returns its output.
  std::string RunIn(const std::string& pod, const v1::PodSandboxConfig& pc, const std::string& name,
                    const std::string& script,
                    const std::function<void(v1::ContainerConfig&)>& edit = nullptr) {
    std::string id;
    auto st = Create(pod, pc, name, script, &id, edit);
    EXPECT_TRUE(st.ok()) << st.error_message();
    if (!st.ok()) return "";
    Start(id);
    auto s = WaitExited(id);
    EXPECT_EQ(s.exit_code(), 0) << Output(pc.metadata().name(), name) << d_->Log();
    return Output(pc.metadata().name(), name);
  }
  // Namespace files and staged mounts berthd keeps for pods: none once they are gone.
  std::vector<std::string> Leftovers() {
    std::vector<std::string> out;
    std::string cri = *dir_ / "state/io.containerd.grpc.v1.cri";
    for (const char* sub : {"userns", "netns", "sandboxes", "containers", "rro"}) {
      std::error_code ec;
      for (const auto& e : std::filesystem::directory_iterator(cri + "/" + sub, ec))
        out.push_back(std::string(sub) + "/" + e.path().filename().string());
    }
    std::istringstream mi(ReadAll("/proc/self/mountinfo"));
    std::string line;
    while (std::getline(mi, line))
      if (line.find(cri) != std::string::npos) out.push_back("mount: " + line);
    return out;
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<BerthdProc> d_;
};

TEST_P(UsernsE2E, PodRootIsTheMappedUidWithIdmappedLayersAndPlainVolumes) {
  auto pc = Pod("mapped");
  std::string pod;
  auto st = RunPod(pc, &pod);
  ASSERT_TRUE(st.ok()) << st.error_message() << d_->Log();

  // A volume the pod's root may write to, and a host file only host root may read.
  std::string vol = *dir_ / "vol", secret_dir = *dir_ / "secret";
  berth::testing::WriteFile(secret_dir + "/key", "host secret\n");
  ASSERT_EQ(::chmod((secret_dir + "/key").c_str(), 0600), 0);
  ASSERT_EQ(::chmod(secret_dir.c_str(), 0755), 0);
  berth::fs::MkdirAll(vol, 0777);
  ASSERT_EQ(::chmod(vol.c_str(), 0777), 0);

  std::string out = RunIn(
      pod, pc, "probe",
      "cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c 'owner %u:%g' /bin/busybox; "
      "touch /rootfs-write && stat -c 'new %u' /rootfs-write; "
      "touch /vol/made-inside; "
      "cat /secret/key 2>/dev/null && echo SECRET-READ || echo secret-denied; "
      "ls /sys/class/net | tr '\\n' ' '; echo; "
      "stat -c 'sysctl-net %u' /proc/sys/net/ipv4/ip_forward; "
      "echo x > /dev/shm/x && echo shm-ok; echo '10.9.9.9 extra' >> /etc/hosts && echo hosts-ok",
      [&](v1::ContainerConfig& c) {
        auto* m = c.add_mounts();
        m->set_container_path("/vol");
        m->set_host_path(vol);
        m = c.add_mounts();
        m->set_container_path("/secret");
        m->set_host_path(secret_dir);
        m->set_readonly(true);
      });
  std::string want_map = "0 " + std::to_string(kHostBase) + " 65536";
  auto squash = [](std::string s) {
    std::string o;
    for (char c : s)
      if (c != ' ' || (!o.empty() && o.back() != ' ')) o += c;
    return o;
  };
  std::string flat = squash(out);
  EXPECT_NE(flat.find(want_map), std::string::npos) << out;
  EXPECT_NE(out.find("\n0\n"), std::string::npos) << "id -u is not 0: " << out;
  EXPECT_NE(out.find("owner 0:0"), std::string::npos)
      << "image files are not root's inside: " << out;
  EXPECT_NE(out.find("new 0"), std::string::npos) << out;
  EXPECT_NE(out.find("secret-denied"), std::string::npos) << out;
  EXPECT_EQ(out.find("SECRET-READ"), std::string::npos) << out;
  EXPECT_NE(out.find("lo"), std::string::npos) << "sysfs shows no network devices: " << out;
  // /proc/sys/net belongs to the root of the user namespace that owns the network namespace.
  EXPECT_NE(out.find("sysctl-net 0"), std::string::npos)
      << "the pod's netns is not owned by its userns: " << out;
  EXPECT_NE(out.find("shm-ok"), std::string::npos) << out;
  EXPECT_NE(out.find("hosts-ok"), std::string::npos) << out;
  struct stat sb;
  ASSERT_EQ(::stat((vol + "/made-inside").c_str(), &sb), 0);
  EXPECT_EQ(sb.st_uid, kHostBase) << "a file the pod's root made is not the mapped uid on the host";
  EXPECT_EQ(sb.st_gid, kHostBase);

  // Status: the mode and the mappings; verbose container info: the effective mappings.
  v1::PodSandboxStatusRequest sr;
  sr.set_pod_sandbox_id(pod);
  sr.set_verbose(true);
  v1::PodSandboxStatusResponse sresp;
  ASSERT_TRUE(d_->rt().PodSandboxStatus(Ctx().get(), sr, &sresp).ok());
  const auto& u = sresp.status().linux().namespaces().options().userns_options();
  std::cout << GetParam() << ": pause started by "
            << nlohmann::json::parse(sresp.info().at("info")).value("pauseStartedBy", "?")
            << std::endl;
  EXPECT_EQ(u.mode(), v1::POD);
  ASSERT_EQ(u.uids_size(), 1);
  EXPECT_EQ(u.uids(0).host_id(), kHostBase);
  EXPECT_EQ(u.gids(0).length(), 65536u);

  std::string cid;
  ASSERT_TRUE(Create(pod, pc, "sleeper", "sleep 300", &cid).ok());
  Start(cid);
  auto info = nlohmann::json::parse(Status(cid).info().at("info"));
  ASSERT_TRUE(info.contains("userNamespace")) << info.dump();
  EXPECT_EQ(info["userNamespace"]["uidMappings"][0].value("hostID", 0u), kHostBase);
  EXPECT_NE(squash(info["userNamespace"].value("uid_map", "")).find(want_map), std::string::npos)
      << info.dump();

  v1::RemovePodSandboxRequest rr;
  rr.set_pod_sandbox_id(pod);
  v1::RemovePodSandboxResponse rresp;
  ASSERT_TRUE(d_->rt().RemovePodSandbox(Ctx().get(), rr, &rresp).ok());
  EXPECT_TRUE(berth::testing::Eventually([&] { return Leftovers().empty(); }))
      << ::testing::PrintToString(Leftovers());
}

TEST_P(UsernsE2E, IdmappedRecursivelyReadOnlyVolumeIsReadOnlyAllTheWayDown) {
  auto pc = Pod("idmapped");
  std::string pod;
  ASSERT_TRUE(RunPod(pc, &pod).ok()) << d_->Log();
  std::string vol = *dir_ / "data";
  berth::testing::WriteFile(vol + "/owned-by-root", "root's\n");
  ASSERT_EQ(::chmod((vol + "/owned-by-root").c_str(), 0600), 0);
  berth::fs::MkdirAll(vol + "/sub", 0755);
  ASSERT_EQ(::mount("tmpfs", (vol + "/sub").c_str(), "tmpfs", 0, "size=1m"), 0);
  std::string out = RunIn(pod, pc, "reader",
                          "stat -c 'file %u' /data/owned-by-root; cat /data/owned-by-root; "
                          "touch /data/x 2>&1; touch /data/sub/x 2>&1; true",
                          [&](v1::ContainerConfig& c) {
                            auto* m = c.add_mounts();
                            m->set_container_path("/data");
                            m->set_host_path(vol);
                            m->set_readonly(true);
                            m->set_recursive_read_only(true);
                            Map(m->mutable_uidmappings(), 0, kHostBase, 65536);
                            Map(m->mutable_gidmappings(), 0, kHostBase, 65536);
                          });
  ::umount2((vol + "/sub").c_str(), MNT_DETACH);
  EXPECT_NE(out.find("file 0"), std::string::npos)
      << "host root's file is not root's through the idmapped volume: " << out;
  EXPECT_NE(out.find("root's"), std::string::npos) << out;
  EXPECT_NE(out.find("touch: /data/x: Read-only file system"), std::string::npos) << out;
  EXPECT_NE(out.find("touch: /data/sub/x: Read-only file system"), std::string::npos) << out;
}

TEST_P(UsernsE2E, InvalidModesAndMappingsAreRefusedLeavingNothing) {
  struct Case {
    std::string name, want;
    grpc::StatusCode code;
    std::function<void(v1::PodSandboxConfig&)> edit;
  };
  auto opts = [](v1::PodSandboxConfig& c) {
    return c.mutable_linux()
        ->mutable_security_context()
        ->mutable_namespace_options()
        ->mutable_userns_options();
  };
  std::vector<Case> cases = {
      {"container-mode", "userns_options.mode: CONTAINER is not supported", grpc::INVALID_ARGUMENT,
       [&](v1::PodSandboxConfig& c) { opts(c)->set_mode(v1::CONTAINER); }},
      {"target-mode", "userns_options.mode: TARGET is not supported", grpc::INVALID_ARGUMENT,
       [&](v1::PodSandboxConfig& c) { opts(c)->set_mode(v1::TARGET); }},
      {"two-uid-maps", "userns_options.uids: mode POD needs exactly one uid mapping, got 2",
       grpc::INVALID_ARGUMENT,
       [&](v1::PodSandboxConfig& c) {
         Map(opts(c)->mutable_uids(), 70000, kHostBase + 70000, 10);
       }},
      {"no-gid-map", "userns_options.gids: mode POD needs exactly one gid mapping, got 0",
       grpc::INVALID_ARGUMENT, [&](v1::PodSandboxConfig& c) { opts(c)->clear_gids(); }},
      {"root-unmapped",
       "userns_options.uids[0]: container id 0 (root) must be mapped: container_id 1, host_id",
       grpc::INVALID_ARGUMENT,
       [&](v1::PodSandboxConfig& c) { opts(c)->mutable_uids(0)->set_container_id(1); }},
      {"overflow",
       "userns_options.gids[0]: host range overflows past 4294967294: container_id 0, host_id "
       "4294967000, length 65536",
       grpc::INVALID_ARGUMENT,
       [&](v1::PodSandboxConfig& c) { opts(c)->mutable_gids(0)->set_host_id(4294967000u); }},
      {"empty", "userns_options.uids[0]: empty range", grpc::INVALID_ARGUMENT,
       [&](v1::PodSandboxConfig& c) { opts(c)->mutable_uids(0)->set_length(0); }},
      {"node-with-maps",
       "userns_options: mode NODE takes no mappings, got 1 uid and 1 gid mappings",
       grpc::INVALID_ARGUMENT, [&](v1::PodSandboxConfig& c) { opts(c)->set_mode(v1::NODE); }},
      {"host-network", "mode POD cannot be combined with the host's network namespace",
       grpc::INVALID_ARGUMENT,
       [&](v1::PodSandboxConfig& c) {
         c.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_network(
             v1::NODE);
         c.clear_hostname();
       }},
  };
  for (const auto& tc : cases) {
    auto pc = Pod(tc.name);
    tc.edit(pc);
    std::string id;
    auto st = RunPod(pc, &id);
    EXPECT_EQ(st.error_code(), tc.code) << tc.name << ": " << st.error_message();
    EXPECT_NE(st.error_message().find(tc.want), std::string::npos)
        << tc.name << ": " << st.error_message();
  }
  // Overlapping ranges in a volume's mappings are named too (the pod's lists hold one range).
  auto pc = Pod("vol-overlap");
  std::string pod, cid;
  ASSERT_TRUE(RunPod(pc, &pod).ok());
  auto st = Create(pod, pc, "c", "true", &cid, [&](v1::ContainerConfig& c) {
    auto* m = c.add_mounts();
    m->set_container_path("/v");
    m->set_host_path(*dir_ / "v");
    Map(m->mutable_uidmappings(), 0, kHostBase, 1000);
    Map(m->mutable_uidmappings(), 500, kHostBase + 5000, 10);
    Map(m->mutable_gidmappings(), 0, kHostBase, 1000);
  });
  EXPECT_EQ(st.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find(
                "mounts[0].uidMappings[1]: container range overlaps mounts[0].uidMappings[0]"),
            std::string::npos)
      << st.error_message();
  v1::RemovePodSandboxRequest rr;
  rr.set_pod_sandbox_id(pod);
  v1::RemovePodSandboxResponse rresp;
  ASSERT_TRUE(d_->rt().RemovePodSandbox(Ctx().get(), rr, &rresp).ok());

  v1::ListPodSandboxResponse pods;
  ASSERT_TRUE(d_->rt().ListPodSandbox(Ctx().get(), {}, &pods).ok());
  EXPECT_EQ(pods.items_size(), 0);
  EXPECT_TRUE(berth::testing::Eventually([&] { return Leftovers().empty(); }))
      << ::testing::PrintToString(Leftovers());
}

TEST_P(UsernsE2E, KillNineWithAUsernsPodRunningThenRestartStopAndRemove) {
  auto pc = Pod("survivor");
  std::string pod, cid;
  ASSERT_TRUE(RunPod(pc, &pod).ok()) << d_->Log();
  ASSERT_TRUE(Create(pod, pc, "sleeper", "sleep 600", &cid).ok());
  Start(cid);
  d_->Kill(SIGKILL);
  ASSERT_EQ(d_->Start(), "");
  auto s = Status(cid).status();
  EXPECT_EQ(s.state(), v1::CONTAINER_RUNNING) << d_->Log();
  v1::ExecSyncRequest er;
  er.set_container_id(cid);
  for (const char* a : {"cat", "/proc/self/uid_map"}) er.add_cmd(a);
  er.set_timeout(30);
  v1::ExecSyncResponse eresp;
  auto st = d_->rt().ExecSync(Ctx().get(), er, &eresp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_NE(eresp.stdout().find(std::to_string(kHostBase)), std::string::npos) << eresp.stdout();
  // A second container joins the pod's user namespace after the restart.
  std::string out = RunIn(pod, pc, "late", "cat /proc/self/uid_map");
  EXPECT_NE(out.find(std::to_string(kHostBase)), std::string::npos) << out;

  v1::StopPodSandboxRequest sr;
  sr.set_pod_sandbox_id(pod);
  v1::StopPodSandboxResponse sresp;
  ASSERT_TRUE(d_->rt().StopPodSandbox(Ctx().get(), sr, &sresp).ok());
  v1::RemovePodSandboxRequest rr;
  rr.set_pod_sandbox_id(pod);
  v1::RemovePodSandboxResponse rresp;
  ASSERT_TRUE(d_->rt().RemovePodSandbox(Ctx().get(), rr, &rresp).ok());
  EXPECT_TRUE(berth::testing::Eventually([&] { return Leftovers().empty(); }))
      << ::testing::PrintToString(Leftovers());
}

// A handler that could not prove user namespaces says why (Status verbose info) and refuses a
// user-namespaced pod with FAILED_PRECONDITION and that reason, leaving nothing behind.
TEST(UsernsUnproven, ReasonInStatusAndPodRefused) {
  std::string reason = berth::testing::ContainerSkipReason("runc");
  if (!reason.empty()) GTEST_SKIP() << reason;
  TempDir dir("berth-e2e-userns-unproven");
  ASSERT_EQ(::chmod(dir.path().c_str(), 0711), 0);
  auto d = NewBerthd(dir.path(), "runc", "", false);
  ASSERT_EQ(d->Start(), "");
  v1::StatusRequest sreq;
  sreq.set_verbose(true);
  v1::StatusResponse sresp;
  ASSERT_TRUE(d->rt().Status(Ctx().get(), sreq, &sresp).ok());
  for (const auto& h : sresp.runtime_handlers())
    EXPECT_FALSE(h.features().user_namespaces()) << h.name();
  auto handlers = nlohmann::json::parse(sresp.info().at("runtimeHandlers"));
  std::string why;
  for (const auto& j : handlers)
    if (j.value("name", "") == "runc") why = j["features"].value("user_namespaces_reason", "");
  EXPECT_NE(why.find("berth-rro-probe not found"), std::string::npos) << why;

  v1::RunPodSandboxRequest req;
  auto* c = req.mutable_config();
  c->mutable_metadata()->set_name("refused");
  c->mutable_metadata()->set_uid("u");
  auto* u = c->mutable_linux()
                ->mutable_security_context()
                ->mutable_namespace_options()
                ->mutable_userns_options();
  u->set_mode(v1::POD);
  Map(u->mutable_uids(), 0, kHostBase, 65536);
  Map(u->mutable_gids(), 0, kHostBase, 65536);
  v1::RunPodSandboxResponse resp;
  auto st = d->rt().RunPodSandbox(Ctx().get(), req, &resp);
  EXPECT_EQ(st.error_code(), grpc::FAILED_PRECONDITION);
  EXPECT_NE(
      st.error_message().find("runtime handler \"runc\" cannot run pods in a user namespace: "),
      std::string::npos)
      << st.error_message();
  EXPECT_NE(st.error_message().find("berth-rro-probe not found"), std::string::npos)
      << st.error_message();
  std::error_code ec;
  EXPECT_TRUE(std::filesystem::is_empty(dir / "state/io.containerd.grpc.v1.cri/sandboxes", ec));
}

// userns_rootfs = "copy": the slow path the kernel would force where it cannot idmap layers, run
// here by the operator's choice. Root file systems are overlays over a chown'ed copy of the image
// made once per image and mapping, kept beside the image's snapshot and removed with it.
class UsernsCopyE2E : public UsernsE2E {
 protected:
  std::string RuntimeExtra() override { return "userns_rootfs = \"copy\"\n"; }

  // <snapshots>/<id>/userns-copies/<entry> below berth's root: complete copies and stages.
  std::vector<std::string> Copies() {
    std::vector<std::string> out;
    std::error_code ec;
    std::filesystem::recursive_directory_iterator it(*dir_ / "root", ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      auto name = it->path().filename().string();
      if (!it->is_directory(ec) || it->is_symlink(ec)) continue;
      if (name == "userns-copies") {
        for (const auto& e : std::filesystem::directory_iterator(it->path(), ec))
          out.push_back(e.path().string());
        it.disable_recursion_pending();
      } else if (name == "fs" || name == "blobs" || name == "work") {
        it.disable_recursion_pending();
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  static std::string Key(uint32_t host) {
    std::string r = "0-" + std::to_string(host) + "-65536";
    return "u" + r + "_g" + r;
  }
  void RemovePods() {
    v1::ListPodSandboxResponse pods;
    ASSERT_TRUE(d_->rt().ListPodSandbox(Ctx().get(), {}, &pods).ok());
    for (const auto& p : pods.items()) {
      v1::StopPodSandboxRequest sr;
      sr.set_pod_sandbox_id(p.id());
      v1::StopPodSandboxResponse sresp;
      ASSERT_TRUE(d_->rt().StopPodSandbox(Ctx().get(), sr, &sresp).ok());
      v1::RemovePodSandboxRequest r;
      r.set_pod_sandbox_id(p.id());
      v1::RemovePodSandboxResponse rr;
      ASSERT_TRUE(d_->rt().RemovePodSandbox(Ctx().get(), r, &rr).ok());
    }
  }
};

TEST_P(UsernsCopyE2E, CopiedRootfsIsRootsInsideMadeOnceReusedAndRemovedWithTheImage) {
  // The handler says how its pods get their root file systems, and warns.
  v1::StatusRequest sreq;
  sreq.set_verbose(true);
  v1::StatusResponse sresp;
  ASSERT_TRUE(d_->rt().Status(Ctx().get(), sreq, &sresp).ok());
  std::string why;
  for (const auto& j : nlohmann::json::parse(sresp.info().at("runtimeHandlers")))
    if (j.value("name", "") == GetParam()) why = j["features"].value("user_namespaces_reason", "");
  EXPECT_NE(why.find("chown'ed copies"), std::string::npos) << why;
  auto admin = berth::admin::v1::Admin::NewStub(
      grpc::CreateChannel("unix:" + d_->socket(), grpc::InsecureChannelCredentials()));
  berth::admin::v1::ListWarningsResponse warnings;
  ASSERT_TRUE(admin->ListWarnings(Ctx().get(), {}, &warnings).ok());
  bool warned = false;
  for (const auto& w : warnings.warnings())
    warned |= w.id() == "io.berth.warning/userns-rootfs-copy/" + GetParam() &&
              w.message().find("slow") != std::string::npos;
  EXPECT_TRUE(warned) << warnings.DebugString();

  const std::string script =
      "echo $(cat /proc/self/uid_map); id -u; stat -c %u:%g /bin/busybox /etc/passwd; ls /data; "
      "touch /written && stat -c w%u /written";
  auto pa = Pod("copy-a");
  std::string a;
  ASSERT_TRUE(RunPod(pa, &a).ok()) << d_->Log();
  std::string out = RunIn(a, pa, "first", script);
  EXPECT_EQ(out.find("0 " + std::to_string(kHostBase) + " 65536\n0\n0:0\n0:0\n"), 0u) << out;
  EXPECT_NE(out.find("hello.txt"), std::string::npos) << out;
  EXPECT_EQ(out.find("remove-me.txt"), std::string::npos) << "the whiteout applies: " << out;
  EXPECT_NE(out.find("w0\n"), std::string::npos) << "the pod's root writes its rootfs: " << out;
  auto copies = Copies();
  ASSERT_EQ(copies.size(), 1u) << ::testing::PrintToString(copies);
  EXPECT_EQ(std::filesystem::path(copies[0]).filename(), Key(kHostBase));
  struct stat st {};
  ASSERT_EQ(::stat((copies[0] + "/bin/busybox").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kHostBase) << "on the host, the copy is the pod root's";
  auto ino = st.st_ino;

  // A second pod with the same image and mapping uses the same copy; another mapping gets its own.
  auto pb = Pod("copy-b");
  std::string b;
  ASSERT_TRUE(RunPod(pb, &b).ok());
  EXPECT_EQ(RunIn(b, pb, "second", script), out);
  ASSERT_EQ(Copies(), copies);
  ASSERT_EQ(::stat((copies[0] + "/bin/busybox").c_str(), &st), 0);
  EXPECT_EQ(st.st_ino, ino) << "not copied again";
  EXPECT_NE(d_->Log().find("chown'ed copy reused"), std::string::npos);
  auto pc = Pod("copy-c", kHostBase + 65536);
  std::string c;
  ASSERT_TRUE(RunPod(pc, &c).ok());
  EXPECT_EQ(RunIn(c, pc, "third", "echo $(cat /proc/self/uid_map); stat -c %u /bin/busybox"),
            "0 " + std::to_string(kHostBase + 65536) + " 65536\n0\n");
  EXPECT_EQ(Copies().size(), 2u) << ::testing::PrintToString(Copies());

  // The copies go with the image, once no container's snapshot is based on it any more (their
  // files are removed after RemoveContainer answers: active snapshots have a meta.json).
  RemovePods();
  auto snapshots = std::filesystem::path(copies[0]).parent_path().parent_path().parent_path();
  EXPECT_TRUE(berth::testing::Eventually([&] {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(snapshots, ec))
      if (std::filesystem::exists(e.path() / "meta.json")) return false;
    return true;
  }));
  v1::RemoveImageRequest rir;
  rir.mutable_image()->set_image("docker.io/test/busybox:userns");
  v1::RemoveImageResponse rires;
  auto images = v1::ImageService::NewStub(
      grpc::CreateChannel("unix:" + d_->socket(), grpc::InsecureChannelCredentials()));
  auto rst = images->RemoveImage(Ctx().get(), rir, &rires);
  ASSERT_TRUE(rst.ok()) << rst.error_message();
  EXPECT_TRUE(
      berth::testing::Eventually([&] { return Copies().empty(); }, std::chrono::seconds(30)))
      << ::testing::PrintToString(Copies());
  EXPECT_FALSE(std::filesystem::exists(copies[0]));
}

// kill -9 of berthd while the copy is being made: after the restart neither the stage nor a
// partial copy is left, the container being created is gone, and the next one makes a whole copy.
TEST_P(UsernsCopyE2E, KillNineMidCopyLeavesNothingHalfDone) {
  const std::string big = "docker.io/test/big:userns";
  ImportImage(big, 96u << 20, "none");  // a copy long enough to be caught in the act
  auto pc = Pod("crash");
  std::string pod;
  ASSERT_TRUE(RunPod(pc, &pod).ok()) << d_->Log();
  auto image = [&](v1::ContainerConfig& c) { c.mutable_image()->set_image(big); };
  std::thread create([&] {
    std::string id;
    Create(pod, pc, "cut", "true", &id, image);  // fails: berthd dies under it
  });
  bool stopped = false;
  for (int i = 0; i < 60000 && !stopped; ++i) {
    for (const auto& e : Copies()) {
      if (std::filesystem::path(e).filename().string().rfind(".stage-", 0) == 0) {
        ::kill(d_->pid(), SIGSTOP);
        stopped = true;
      }
    }
    if (!stopped) std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  ASSERT_TRUE(stopped) << "no copy was seen being made";
  auto during = Copies();
  d_->Kill(SIGKILL);
  create.join();
  ASSERT_EQ(during.size(), 1u) << "caught mid-copy: only the stage: "
                               << ::testing::PrintToString(during);

  ASSERT_EQ(d_->Start(), "");
  EXPECT_TRUE(berth::testing::Eventually([&] { return Copies().empty(); }))
      << ::testing::PrintToString(Copies()) << d_->Log();
  v1::ListContainersResponse list;
  ASSERT_TRUE(d_->rt().ListContainers(Ctx().get(), {}, &list).ok());
  EXPECT_EQ(list.containers_size(), 0) << "the container being created was undone";
  std::string out = RunIn(pod, pc, "whole", "stat -c '%u %s' /usr/share/berth/filler.bin", image);
  EXPECT_EQ(out, "0 " + std::to_string(96u << 20) + "\n");
  auto copies = Copies();
  ASSERT_EQ(copies.size(), 1u) << ::testing::PrintToString(copies);
  EXPECT_EQ(std::filesystem::path(copies[0]).filename(), Key(kHostBase));
}

INSTANTIATE_TEST_SUITE_P(Runtimes, UsernsCopyE2E, ::testing::Values("runc", "crun"));

INSTANTIATE_TEST_SUITE_P(Runtimes, UsernsE2E, ::testing::Values("runc", "crun", "runc-spec"),
                         [](const auto& info) {
                           std::string n = info.param;
                           return n == "runc-spec" ? std::string("runc_pause_through_runtime") : n;
                         });

}  // namespace
