// Spec generation: CRI configs -> expected OCI spec fragments, every validation error, and one
// generated spec run for real with runc (root; skipped otherwise).
// The CRI Signal enum has values named like the <signal.h> macros: include it first.
#include "runtime/v1/api.pb.h"

// The tests also set the deprecated seccomp_profile_path field.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#include "oci/spec.h"

#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "oci/seccomp.h"
#include "support/support.h"

namespace bt = berth::testing;
namespace oci = berth::oci;
namespace cri = runtime::v1;
using nlohmann::json;

namespace {

class SpecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rootfs_ = dir_ / "rootfs";
    bt::MakeBusyboxRootfs(rootfs_);
    sandbox_.mutable_metadata()->set_name("pod");
    sandbox_.mutable_metadata()->set_namespace_("ns");
    sandbox_.mutable_metadata()->set_uid("uid1");
    sandbox_.set_hostname("podhost");
    config_.mutable_metadata()->set_name("app");
    config_.add_command("/bin/sh");
    opts_.id = "c1";
    opts_.sandbox_id = "sb1";
    opts_.sandbox_pid = 4242;
    opts_.rootfs = rootfs_;
    opts_.image_name = "busybox:latest";
    opts_.node.own_oom_score_adj = -500;
  }
  json Spec() { return oci::ContainerSpec(config_, sandbox_, opts_); }
  // The message of the Error the spec generation throws ("" when none).
  std::string ErrorOf(berth::Code want = berth::Code::kInvalidArgument) {
    try {
      Spec();
    } catch (const berth::Error& e) {
      EXPECT_EQ(e.code(), want) << e.what();
      return e.what();
    }
    return "";
  }
  static json Ns(const json& spec, const std::string& type) {
    for (const auto& n : spec["linux"]["namespaces"])
      if (n["type"] == type) return n;
    return nullptr;
  }
  static json MountAt(const json& spec, const std::string& dest) {
    for (const auto& m : spec["mounts"])
      if (m["destination"] == dest) return m;
    return nullptr;
  }
  bt::TempDir dir_{"berth-spec"};
  std::string rootfs_;
  cri::PodSandboxConfig sandbox_;
  cri::ContainerConfig config_;
  oci::ContainerSpecOptions opts_;
};

}  // namespace

TEST_F(SpecTest, DefaultSpecHasTheStandardMountsAndCapabilities) {
  json s = oci::DefaultSpec();
  std::vector<std::string> dests;
  for (const auto& m : s["mounts"]) dests.push_back(m["destination"]);
  EXPECT_EQ(dests, (std::vector<std::string>{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue",
                                              "/sys", "/sys/fs/cgroup"}));
  EXPECT_EQ(s["process"]["capabilities"]["bounding"].size(), 14u);
  EXPECT_EQ(s["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
  EXPECT_FALSE(s["linux"]["maskedPaths"].empty());
}

TEST_F(SpecTest, CommandAndArgsFollowTheCriRules) {
  opts_.image.entrypoint = {"/entry"};
  opts_.image.cmd = {"cmd1", "cmd2"};
  config_.clear_command();
  EXPECT_EQ(Spec()["process"]["args"], json({"/entry", "cmd1", "cmd2"}));
  config_.add_args("a1");
  EXPECT_EQ(Spec()["process"]["args"], json({"/entry", "a1"}));
  config_.add_command("/bin/echo");
  EXPECT_EQ(Spec()["process"]["args"], json({"/bin/echo", "a1"}));
  config_.clear_args();
  EXPECT_EQ(Spec()["process"]["args"], json({"/bin/echo"}));
  config_.clear_command();
  opts_.image = {};
  EXPECT_NE(ErrorOf().find("no command specified"), std::string::npos);
}

TEST_F(SpecTest, EnvironmentMergesDefaultsImageAndCri) {
  opts_.image.env = {"PATH=/image/bin", "A=image", "B=image"};
  auto* kv = config_.add_envs();
  kv->set_key("B");
  kv->set_value("cri");
  kv = config_.add_envs();
  kv->set_key("C");
  kv->set_value("x=y");
  EXPECT_EQ(Spec()["process"]["env"], json({"PATH=/image/bin", "HOSTNAME=podhost", "A=image", "B=cri", "C=x=y"}));
  config_.add_envs()->set_key("");
  EXPECT_EQ(ErrorOf(), "envs[2].key: empty");
}

TEST_F(SpecTest, WorkingDirAndTty) {
  json s = Spec();
  EXPECT_EQ(s["process"]["cwd"], "/");
  EXPECT_EQ(s["process"]["terminal"], false);
  opts_.image.working_dir = "/img";
  EXPECT_EQ(Spec()["process"]["cwd"], "/img");
  config_.set_working_dir("/work");
  config_.set_tty(true);
  s = Spec();
  EXPECT_EQ(s["process"]["cwd"], "/work");
  EXPECT_EQ(s["process"]["terminal"], true);
  config_.set_working_dir("rel");
  EXPECT_EQ(ErrorOf(), "working_dir: \"rel\" is not an absolute path");
}

TEST_F(SpecTest, Capabilities) {
  auto* caps = config_.mutable_linux()->mutable_security_context()->mutable_capabilities();
  caps->add_add_capabilities("NET_ADMIN");
  caps->add_drop_capabilities("cap_kill");
  json b = Spec()["process"]["capabilities"]["bounding"];
  EXPECT_NE(std::find(b.begin(), b.end(), "CAP_NET_ADMIN"), b.end());
  EXPECT_EQ(std::find(b.begin(), b.end(), "CAP_KILL"), b.end());
  caps->Clear();
  caps->add_drop_capabilities("ALL");
  caps->add_add_capabilities("CHOWN");
  EXPECT_EQ(Spec()["process"]["capabilities"]["effective"], json({"CAP_CHOWN"}));
  caps->Clear();
  caps->add_add_capabilities("ALL");
  EXPECT_EQ(Spec()["process"]["capabilities"]["permitted"].size(), oci::AllCapabilities().size());
  caps->add_add_ambient_capabilities("NET_BIND_SERVICE");
  EXPECT_EQ(Spec()["process"]["capabilities"]["ambient"], json({"CAP_NET_BIND_SERVICE"}));
  caps->Clear();
  caps->add_add_capabilities("FOO");
  EXPECT_EQ(ErrorOf(), "linux.security_context.capabilities.add_capabilities: unknown capability \"FOO\"");
  caps->Clear();
  caps->add_drop_capabilities("BAR");
  EXPECT_EQ(ErrorOf(), "linux.security_context.capabilities.drop_capabilities: unknown capability \"BAR\"");
}

TEST_F(SpecTest, Privileged) {
  config_.mutable_linux()->mutable_security_context()->set_privileged(true);
  EXPECT_EQ(ErrorOf(), "linux.security_context.privileged: a privileged container needs a privileged sandbox");
  sandbox_.mutable_linux()->mutable_security_context()->set_privileged(true);
  json s = Spec();
  EXPECT_EQ(s["process"]["capabilities"]["bounding"].size(), oci::AllCapabilities().size());
  EXPECT_FALSE(s["linux"].contains("maskedPaths"));
  EXPECT_FALSE(s["linux"].contains("readonlyPaths"));
  EXPECT_FALSE(s["linux"].contains("seccomp"));
  EXPECT_EQ(MountAt(s, "/sys")["options"], json({"nosuid", "noexec", "nodev", "rw"}));
  EXPECT_EQ(s["linux"]["resources"]["devices"], json::parse(R"([{"allow":true,"access":"rwm"}])"));
  EXPECT_TRUE(s["linux"].contains("devices"));
  bool has_null = false;
  for (const auto& d : s["linux"]["devices"]) has_null |= d["path"] == "/dev/null";
  EXPECT_TRUE(has_null);
  opts_.privileged_without_host_devices = true;
  EXPECT_FALSE(Spec()["linux"].contains("devices"));
}

TEST_F(SpecTest, UsersAndGroups) {
  auto* sc = config_.mutable_linux()->mutable_security_context();
  // The primary gid is always one of the process's groups (as containerd and Docker set them).
  EXPECT_EQ(Spec()["process"]["user"], json::parse(R"({"uid":0,"gid":0,"additionalGids":[0]})"));
  opts_.image.user = "nobody";
  EXPECT_EQ(Spec()["process"]["user"], json::parse(R"({"uid":65534,"gid":65534,"additionalGids":[65534]})"));
  opts_.image.user = "app:extra";
  EXPECT_EQ(Spec()["process"]["user"], json::parse(R"({"uid":1000,"gid":2000,"additionalGids":[2000]})"));
  opts_.image.user = "1234:55";
  EXPECT_EQ(Spec()["process"]["user"], json::parse(R"({"uid":1234,"gid":55,"additionalGids":[55]})"));
  sc->mutable_run_as_user()->set_value(1000);
  sc->add_supplemental_groups(3000);
  EXPECT_EQ(Spec()["process"]["user"], json::parse(R"({"uid":1000,"gid":1000,"additionalGids":[1000,2000,3000]})"));
  // KEP-3619 Strict: the image's /etc/group does not count.
  sc->set_supplemental_groups_policy(cri::Strict);
  EXPECT_EQ(Spec()["process"]["user"], json::parse(R"({"uid":1000,"gid":1000,"additionalGids":[1000,3000]})"));
  sc->set_supplemental_groups_policy(static_cast<cri::SupplementalGroupsPolicy>(7));
  EXPECT_EQ(ErrorOf(), "linux.security_context.supplemental_groups_policy: unknown policy 7");
  sc->set_supplemental_groups_policy(cri::Merge);
  sc->mutable_run_as_group()->set_value(7);
  EXPECT_EQ(Spec()["process"]["user"]["gid"], 7);
  sc->clear_run_as_user();
  sc->set_run_as_username("app");
  EXPECT_EQ(Spec()["process"]["user"]["uid"], 1000);
  sc->set_run_as_username("ghost");
  EXPECT_EQ(ErrorOf(), "linux.security_context.run_as_username: no user \"ghost\" in the image's /etc/passwd");
  sc->clear_run_as_username();
  EXPECT_EQ(ErrorOf(), "linux.security_context.run_as_group: requires run_as_user or run_as_username");
  sc->clear_run_as_group();
  sc->mutable_run_as_user()->set_value(-1);
  EXPECT_EQ(ErrorOf(), "linux.security_context.run_as_user: invalid uid -1");
  sc->clear_run_as_user();
  opts_.image.user = "app:nogrp";
  EXPECT_EQ(ErrorOf(), "image config User: no group \"nogrp\" in the image's /etc/group");
}

TEST(AdditionalGids, PrimaryThenMembershipThenRequestedOnce) {
  oci::ResolvedUser u;
  u.gid = 0;
  u.additional_gids = {10};
  EXPECT_EQ(oci::AdditionalGids(u, {}, false), (std::vector<uint32_t>{0, 10}));
  EXPECT_EQ(oci::AdditionalGids(u, {1, 1234}, false), (std::vector<uint32_t>{0, 10, 1, 1234}));
  EXPECT_EQ(oci::AdditionalGids(u, {1, 1234}, true), (std::vector<uint32_t>{0, 1, 1234}));
  EXPECT_EQ(oci::AdditionalGids(u, {10, 0, 10}, false), (std::vector<uint32_t>{0, 10}));
  u.gid = 1234;
  u.additional_gids.clear();
  EXPECT_EQ(oci::AdditionalGids(u, {}, false), (std::vector<uint32_t>{1234}));
}

TEST_F(SpecTest, PasswdSymlinkCannotEscapeTheRootfs) {
  ::unlink((rootfs_ + "/etc/passwd").c_str());
  ASSERT_EQ(::symlink("../../../../../../../../etc/shadow-berth-none", (rootfs_ + "/etc/passwd").c_str()), 0);
  opts_.image.user = "root";
  EXPECT_NE(ErrorOf().find("no user \"root\""), std::string::npos);
  ::unlink((rootfs_ + "/etc/passwd").c_str());
  bt::WriteFile(rootfs_ + "/other/passwd", "u:x:7:8::/:/bin/sh\n");
  ASSERT_EQ(::symlink("/other/passwd", (rootfs_ + "/etc/passwd").c_str()), 0);  // resolved in the rootfs
  opts_.image.user = "u";
  EXPECT_EQ(Spec()["process"]["user"], json::parse(R"({"uid":7,"gid":8,"additionalGids":[8]})"));
}

TEST_F(SpecTest, Resources) {
  auto* r = config_.mutable_linux()->mutable_resources();
  r->set_cpu_shares(512);
  r->set_cpu_quota(50000);
  r->set_cpu_period(100000);
  r->set_cpuset_cpus("0-1");
  r->set_cpuset_mems("0");
  r->set_memory_limit_in_bytes(64 << 20);
  r->set_oom_score_adj(100);
  auto* hp = r->add_hugepage_limits();
  hp->set_page_size("2MB");
  hp->set_limit(4 << 20);
  (*r->mutable_unified())["memory.high"] = "1000000";
  json s = Spec();
  EXPECT_EQ(s["linux"]["resources"]["cpu"],
            json::parse(R"({"shares":512,"quota":50000,"period":100000,"cpus":"0-1","mems":"0"})"));
  EXPECT_EQ(s["linux"]["resources"]["memory"], json::parse(R"({"limit":67108864,"swap":67108864})"));
  EXPECT_EQ(s["linux"]["resources"]["hugepageLimits"], json::parse(R"([{"pageSize":"2MB","limit":4194304}])"));
  EXPECT_EQ(s["linux"]["resources"]["unified"]["memory.high"], "1000000");
  EXPECT_EQ(s["process"]["oomScoreAdj"], 100);
  r->set_memory_swap_limit_in_bytes(128 << 20);
  EXPECT_EQ(Spec()["linux"]["resources"]["memory"]["swap"], 128 << 20);
  opts_.node.swap_accounting = false;
  EXPECT_FALSE(Spec()["linux"]["resources"]["memory"].contains("swap"));

  r->set_oom_score_adj(-900);
  EXPECT_EQ(Spec()["process"]["oomScoreAdj"], -900);
  opts_.restrict_oom_score_adj = true;
  EXPECT_EQ(Spec()["process"]["oomScoreAdj"], -500);
  r->set_oom_score_adj(1001);
  EXPECT_EQ(ErrorOf(), "linux.resources.oom_score_adj: 1001 is outside [-1000, 1000]");
  r->set_oom_score_adj(0);
  r->set_cpu_shares(-2);
  EXPECT_EQ(ErrorOf(), "linux.resources.cpu_shares: negative value -2");
  r->set_cpu_shares(0);
  r->set_memory_limit_in_bytes(-1);
  EXPECT_EQ(ErrorOf(), "linux.resources.memory_limit_in_bytes: negative value -1");
  r->set_memory_limit_in_bytes(0);
  r->set_cpuset_cpus("0-1;rm");
  EXPECT_EQ(ErrorOf(), "linux.resources.cpuset_cpus: invalid cpuset \"0-1;rm\"");
  r->set_cpuset_cpus("");
  (*r->mutable_unified())["../x"] = "1";
  EXPECT_EQ(ErrorOf(), "linux.resources.unified: invalid key \"../x\"");
}

TEST_F(SpecTest, Seccomp) {
  auto* sc = config_.mutable_linux()->mutable_security_context();
  EXPECT_FALSE(Spec()["linux"].contains("seccomp"));  // unset -> unset_seccomp_profile ("" = unconfined)
  opts_.unset_seccomp_profile = "runtime/default";
  EXPECT_EQ(Spec()["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
  opts_.unset_seccomp_profile.clear();
  sc->mutable_seccomp()->set_profile_type(cri::SecurityProfile::RuntimeDefault);
  json sec = Spec()["linux"]["seccomp"];
  EXPECT_EQ(sec["defaultAction"], "SCMP_ACT_ERRNO");
  std::string text = sec.dump();
  EXPECT_NE(text.find("\"read\""), std::string::npos);
  EXPECT_EQ(text.find("\"mount\""), std::string::npos);  // needs CAP_SYS_ADMIN
  sc->mutable_capabilities()->add_add_capabilities("SYS_ADMIN");
  EXPECT_NE(Spec()["linux"]["seccomp"].dump().find("\"mount\""), std::string::npos);
  sc->clear_capabilities();
  sc->mutable_seccomp()->set_profile_type(cri::SecurityProfile::Unconfined);
  EXPECT_FALSE(Spec()["linux"].contains("seccomp"));
  sc->mutable_seccomp()->set_profile_type(cri::SecurityProfile::Localhost);
  EXPECT_EQ(ErrorOf(), "linux.security_context.seccomp.localhost_ref: required for a Localhost profile");
  sc->mutable_seccomp()->set_localhost_ref(dir_ / "missing.json");
  EXPECT_NE(ErrorOf(berth::Code::kNotFound).find(dir_ / "missing.json"), std::string::npos);
  bt::WriteFile(dir_ / "bad.json", "[1]");
  sc->mutable_seccomp()->set_localhost_ref(dir_ / "bad.json");
  EXPECT_NE(ErrorOf().find("bad.json is not a JSON object"), std::string::npos);
  bt::WriteFile(dir_ / "p.json", R"({"defaultAction":"SCMP_ACT_LOG"})");
  sc->mutable_seccomp()->set_localhost_ref(dir_ / "p.json");
  EXPECT_EQ(Spec()["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_LOG");
  sc->clear_seccomp();
  sc->set_seccomp_profile_path("localhost/" + (dir_ / "p.json"));
  EXPECT_EQ(Spec()["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_LOG");
  sc->set_seccomp_profile_path("weird");
  EXPECT_EQ(ErrorOf(), "linux.security_context.seccomp: unknown seccomp profile \"weird\"");
}

TEST_F(SpecTest, PodNamespaces) {
  auto* nso = config_.mutable_linux()->mutable_security_context()->mutable_namespace_options();
  json s = Spec();
  EXPECT_EQ(Ns(s, "network")["path"], "/proc/4242/ns/net");
  EXPECT_EQ(Ns(s, "ipc")["path"], "/proc/4242/ns/ipc");
  EXPECT_EQ(Ns(s, "uts")["path"], "/proc/4242/ns/uts");
  EXPECT_EQ(Ns(s, "pid")["path"], "/proc/4242/ns/pid");  // POD is the CRI default
  EXPECT_EQ(Ns(s, "mount"), json({{"type", "mount"}}));
  nso->set_pid(cri::CONTAINER);
  EXPECT_EQ(Ns(Spec(), "pid"), json({{"type", "pid"}}));
  nso->set_pid(cri::NODE);
  nso->set_network(cri::NODE);
  nso->set_ipc(cri::NODE);
  s = Spec();
  EXPECT_TRUE(Ns(s, "pid").is_null());
  EXPECT_TRUE(Ns(s, "network").is_null());
  EXPECT_TRUE(Ns(s, "uts").is_null());
  EXPECT_TRUE(Ns(s, "ipc").is_null());
  EXPECT_EQ(MountAt(s, "/dev/shm")["source"], "/dev/shm");
  nso->set_pid(cri::TARGET);
  nso->set_target_id("other");
  EXPECT_EQ(ErrorOf(), "linux.security_context.namespace_options.target_id: target container \"other\" is not running");
  opts_.target_pid = 77;
  EXPECT_EQ(Ns(Spec(), "pid")["path"], "/proc/77/ns/pid");
}

TEST_F(SpecTest, SandboxFilesVolumesAndCgroup) {
  opts_.hosts_path = "/state/sb1/hosts";
  opts_.resolv_conf_path = "/state/sb1/resolv.conf";
  opts_.hostname_path = "/state/sb1/hostname";
  opts_.shm_path = "/state/sb1/shm";
  config_.mutable_linux()->mutable_security_context()->set_readonly_rootfs(true);
  bt::WriteFile(dir_ / "vol/file", "x");
  auto* m = config_.add_mounts();
  m->set_container_path("/data");
  m->set_host_path(dir_ / "vol");
  m->set_readonly(true);
  auto* m2 = config_.add_mounts();
  m2->set_container_path("/etc/hostname");
  m2->set_host_path(dir_ / "vol/file");
  sandbox_.mutable_linux()->set_cgroup_parent("/kubepods/pod1");
  (*sandbox_.mutable_linux()->mutable_sysctls())["net.ipv4.ip_forward"] = "1";
  std::vector<oci::MountPlan> plans;
  json s = oci::ContainerSpec(config_, sandbox_, opts_, &plans);
  EXPECT_EQ(s["root"], json({{"path", rootfs_}, {"readonly", true}}));
  EXPECT_EQ(MountAt(s, "/etc/hosts"), json::parse(R"({"destination":"/etc/hosts","type":"bind",
      "source":"/state/sb1/hosts","options":["rbind","rprivate","ro"]})"));
  EXPECT_EQ(MountAt(s, "/etc/resolv.conf")["source"], "/state/sb1/resolv.conf");
  EXPECT_EQ(MountAt(s, "/etc/hostname")["source"], dir_ / "vol/file");  // the volume wins
  EXPECT_EQ(MountAt(s, "/dev/shm")["source"], "/state/sb1/shm");
  EXPECT_EQ(MountAt(s, "/data")["type"], "bind");
  ASSERT_EQ(plans.size(), 2u);
  EXPECT_EQ(plans[0].mount.destination, "/data");
  EXPECT_EQ(s["linux"]["cgroupsPath"], "/kubepods/pod1/berth-c1");
  EXPECT_EQ(s["linux"]["sysctl"]["net.ipv4.ip_forward"], "1");
  m->set_container_path("relative");
  EXPECT_NE(ErrorOf().find("relative"), std::string::npos);
  m->set_container_path("/data");
  sandbox_.mutable_linux()->set_cgroup_parent("kubepods");
  EXPECT_EQ(ErrorOf(), "linux.cgroup_parent: \"kubepods\" is not an absolute cgroup path");
  sandbox_.mutable_linux()->set_cgroup_parent("");
  EXPECT_EQ(Spec()["linux"]["cgroupsPath"], "/berth/berth-c1");
  opts_.node.systemd_cgroup = true;
  sandbox_.mutable_linux()->set_cgroup_parent("kubepods.slice");
  EXPECT_EQ(Spec()["linux"]["cgroupsPath"], "kubepods.slice:berth:c1");
}

// Host-to-container volumes need a slave (or shared) rootfs, bidirectional ones a shared one;
// private volumes leave the runtime's default.
TEST_F(SpecTest, RootfsPropagationFollowsTheVolumes) {
  bt::WriteFile(dir_ / "vol/file", "x");
  auto* m = config_.add_mounts();
  m->set_container_path("/data");
  m->set_host_path(dir_ / "vol");
  EXPECT_FALSE(Spec()["linux"].contains("rootfsPropagation"));
  m->set_propagation(cri::PROPAGATION_HOST_TO_CONTAINER);
  EXPECT_EQ(Spec()["linux"]["rootfsPropagation"], "rslave");
  auto* m2 = config_.add_mounts();
  m2->set_container_path("/both");
  m2->set_host_path(dir_ / "vol");
  m2->set_propagation(cri::PROPAGATION_BIDIRECTIONAL);
  EXPECT_EQ(Spec()["linux"]["rootfsPropagation"], "rshared");
}

TEST_F(SpecTest, MaskedAndReadonlyPathsFromCri) {
  auto* sc = config_.mutable_linux()->mutable_security_context();
  sc->add_masked_paths("/proc/x");
  sc->add_readonly_paths("/proc/y");
  json s = Spec();
  EXPECT_EQ(s["linux"]["maskedPaths"], json({"/proc/x"}));
  EXPECT_EQ(s["linux"]["readonlyPaths"], json({"/proc/y"}));
  sc->add_masked_paths("rel");
  EXPECT_EQ(ErrorOf(), "linux.security_context.masked_paths: \"rel\" is not an absolute path");
}

TEST_F(SpecTest, DevicesAndAnnotations) {
  auto* d = config_.add_devices();
  d->set_host_path("/dev/null");
  d->set_container_path("/dev/mynull");
  d->set_permissions("rw");
  (*config_.mutable_annotations())["io.example/keep"] = "1";
  (*config_.mutable_annotations())["drop"] = "2";
  opts_.container_annotation_patterns = {"io.example/*"};
  json s = Spec();
  EXPECT_EQ(s["linux"]["devices"][0]["path"], "/dev/mynull");
  EXPECT_EQ(s["linux"]["devices"][0]["type"], "c");
  EXPECT_EQ(s["linux"]["devices"][0]["major"], 1);
  EXPECT_EQ(s["linux"]["devices"][0]["minor"], 3);
  json last = s["linux"]["resources"]["devices"].back();
  EXPECT_EQ(last, json::parse(R"({"allow":true,"type":"c","major":1,"minor":3,"access":"rw"})"));
  EXPECT_EQ(s["annotations"]["io.example/keep"], "1");
  EXPECT_FALSE(s["annotations"].contains("drop"));
  EXPECT_EQ(s["annotations"][oci::kAnnContainerType], "container");
  EXPECT_EQ(s["annotations"][oci::kAnnSandboxId], "sb1");
  EXPECT_EQ(s["annotations"][oci::kAnnSandboxName], "pod");
  EXPECT_EQ(s["annotations"][oci::kAnnSandboxNamespace], "ns");
  EXPECT_EQ(s["annotations"][oci::kAnnContainerName], "app");
  EXPECT_EQ(s["annotations"][oci::kAnnImageName], "busybox:latest");
  d->set_permissions("rwx");
  EXPECT_EQ(ErrorOf(), "devices[0].permissions: invalid \"rwx\"");
  d->set_permissions("");
  d->set_host_path(dir_.path());
  EXPECT_EQ(ErrorOf(), "devices[0].host_path: " + dir_.path() + " is not a device");
  d->set_host_path("dev/null");
  EXPECT_EQ(ErrorOf(), "devices[0].host_path: \"dev/null\" is not an absolute path");
}

TEST_F(SpecTest, BaseSpecFromFile) {
  bt::WriteFile(dir_ / "base.json", R"({"ociVersion":"1.0.2","process":{"env":["BASE=1"]},
      "annotations":{"from-base":"yes"}})");
  opts_.base_spec_path = dir_ / "base.json";
  json s = Spec();
  EXPECT_EQ(s["ociVersion"], "1.0.2");
  EXPECT_EQ(s["process"]["env"][0], "BASE=1");
  EXPECT_EQ(s["annotations"]["from-base"], "yes");
  opts_.base_spec_path = dir_ / "nope.json";
  EXPECT_NE(ErrorOf(berth::Code::kNotFound).find("failed to open base OCI spec: "), std::string::npos);
}

TEST_F(SpecTest, ParsedBaseSpecWinsOverThePath) {
  auto base = std::make_shared<const json>(json::parse(R"({"ociVersion":"1.0.2","process":{"env":["BASE=1"],
      "rlimits":[{"type":"RLIMIT_NOFILE","hard":4096,"soft":2048}]},"linux":{"resources":{"cpu":{"realtimeRuntime":5}}}})"));
  opts_.base_spec = base;
  opts_.base_spec_path = dir_ / "never-read.json";
  config_.mutable_linux()->mutable_resources()->set_cpu_shares(100);
  json s = Spec();
  EXPECT_EQ(s["ociVersion"], "1.0.2");
  EXPECT_EQ(s["process"]["env"][0], "BASE=1");
  EXPECT_EQ(s["process"]["rlimits"][0]["soft"], 2048);
  EXPECT_EQ(s["linux"]["resources"]["cpu"], json::parse(R"({"realtimeRuntime":5,"shares":100})"));
  EXPECT_EQ((*base)["process"]["env"].size(), 1u);  // the shared spec is never changed
  opts_.base_spec = std::make_shared<const json>(json::array());
  EXPECT_EQ(ErrorOf(), "base OCI spec is not a JSON object");
}

TEST_F(SpecTest, BoundingSetLimitsGrantedCapabilities) {
  opts_.node.bounding_caps = {"CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN"};
  auto* caps = config_.mutable_linux()->mutable_security_context()->mutable_capabilities();
  caps->add_add_capabilities("ALL");
  EXPECT_EQ(Spec()["process"]["capabilities"]["bounding"], json({"CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN"}));
  caps->Clear();
  caps->add_add_capabilities("SYS_RESOURCE");
  EXPECT_EQ(ErrorOf(),
            "linux.security_context.capabilities.add_capabilities: CAP_SYS_RESOURCE is not in berthd's bounding "
            "set and cannot be granted");
  caps->Clear();
  caps->add_drop_capabilities("SYS_RESOURCE");  // dropping what is not there is fine
  EXPECT_NO_THROW(Spec());
  caps->Clear();
  config_.mutable_linux()->mutable_security_context()->set_privileged(true);
  sandbox_.mutable_linux()->mutable_security_context()->set_privileged(true);
  EXPECT_EQ(Spec()["process"]["capabilities"]["permitted"].size(), 3u);
}

TEST_F(SpecTest, NetnsPathHostnameAndRunAsExclusivity) {
  opts_.netns_path = "/run/berth/netns/sb1";
  opts_.hostname = "real-host";
  json s = Spec();
  EXPECT_EQ(Ns(s, "network")["path"], "/run/berth/netns/sb1");
  EXPECT_EQ(Ns(s, "uts")["path"], "/proc/4242/ns/uts");
  auto env = s["process"]["env"];
  EXPECT_NE(std::find(env.begin(), env.end(), "HOSTNAME=real-host"), env.end());
  auto* sc = config_.mutable_linux()->mutable_security_context();
  sc->mutable_run_as_user()->set_value(1000);
  sc->set_run_as_username("app");
  EXPECT_EQ(ErrorOf(), "linux.security_context.run_as_username: mutually exclusive with run_as_user");
}

TEST(ResourcesFromCriTest, UpdatesAndOomClamping) {
  cri::LinuxContainerResources r;
  oci::NodeInfo node;
  node.own_oom_score_adj = 200;
  auto lr = oci::ResourcesFromCri(r, false, node);
  EXPECT_EQ(lr.resources, json::object());
  EXPECT_FALSE(lr.oom_score_adj.has_value());
  EXPECT_EQ(oci::ResourcesFromCri(r, true, node).oom_score_adj, 200);  // restricted: never below berthd
  r.set_memory_limit_in_bytes(32 << 20);
  r.set_cpu_quota(-1);
  r.set_oom_score_adj(-5);
  lr = oci::ResourcesFromCri(r, true, node);
  EXPECT_EQ(lr.resources, json::parse(R"({"cpu":{"quota":-1},"memory":{"limit":33554432,"swap":33554432}})"));
  EXPECT_EQ(lr.oom_score_adj, 200);
  EXPECT_EQ(oci::ResourcesFromCri(r, false, node).oom_score_adj, -5);
  auto* hp = r.add_hugepage_limits();
  hp->set_page_size("huge");
  try {
    oci::ResourcesFromCri(r, false, node, "linux");
    ADD_FAILURE() << "bad page size accepted";
  } catch (const berth::Error& e) {
    EXPECT_EQ(std::string(e.what()), "linux.hugepage_limits[0].page_size: invalid \"huge\"");
    EXPECT_EQ(e.code(), berth::Code::kInvalidArgument);
  }
}

TEST(CgroupsPathTest, CgroupfsAndSystemd) {
  oci::NodeInfo node;
  EXPECT_EQ(oci::CgroupsPath("", "x", node), "/berth/berth-x");
  EXPECT_EQ(oci::CgroupsPath("/kubepods/", "x", node), "/kubepods/berth-x");
  EXPECT_EQ(oci::CgroupsPath("/", "x", node), "/berth-x");
  EXPECT_THROW(oci::CgroupsPath("/a/../b", "x", node), berth::Error);
  node.systemd_cgroup = true;
  EXPECT_EQ(oci::CgroupsPath("", "x", node), "system.slice:berth:x");
  EXPECT_THROW(oci::CgroupsPath("/kubepods", "x", node), berth::Error);
}

TEST_F(SpecTest, MissingMetadataAndIds) {
  config_.clear_metadata();
  EXPECT_EQ(ErrorOf(), "metadata.name: required");
  config_.mutable_metadata()->set_name("x");
  opts_.sandbox_pid = 0;
  EXPECT_EQ(ErrorOf(), "container c1: sandbox pid unknown");
}

TEST(SandboxSpecTest, Basics) {
  cri::PodSandboxConfig c;
  c.mutable_metadata()->set_name("pod");
  c.mutable_metadata()->set_namespace_("ns");
  c.set_hostname("h1");
  c.set_log_directory("/var/log/pods/x");
  c.mutable_linux()->set_cgroup_parent("/kubepods");
  (*c.mutable_linux()->mutable_sysctls())["kernel.shm_rmid_forced"] = "1";
  oci::SandboxSpecOptions o;
  o.id = "sb1";
  o.pause_rootfs = "/state/pause";
  o.netns_path = "/run/berth/netns/sb1";
  o.shm_path = "/state/sb1/shm";
  o.node.own_oom_score_adj = -100;
  json s = oci::SandboxSpec(c, o);
  EXPECT_EQ(s["root"], json({{"path", "/state/pause"}, {"readonly", true}}));
  EXPECT_EQ(s["process"]["args"], json({"/pause"}));
  EXPECT_EQ(s["hostname"], "h1");
  EXPECT_EQ(s["process"]["oomScoreAdj"], -998);
  EXPECT_EQ(s["linux"]["cgroupsPath"], "/kubepods/berth-sb1");
  EXPECT_EQ(s["linux"]["sysctl"]["kernel.shm_rmid_forced"], "1");
  EXPECT_EQ(s["linux"]["resources"]["cpu"]["shares"], 2);
  EXPECT_EQ(s["annotations"][oci::kAnnContainerType], "sandbox");
  EXPECT_EQ(s["annotations"][oci::kAnnSandboxLogDir], "/var/log/pods/x");
  bool net = false, uts = false;
  for (const auto& n : s["linux"]["namespaces"]) {
    if (n["type"] == "network") net = n["path"] == "/run/berth/netns/sb1";
    if (n["type"] == "uts") uts = true;
  }
  EXPECT_TRUE(net);
  EXPECT_TRUE(uts);
  o.restrict_oom_score_adj = true;
  EXPECT_EQ(oci::SandboxSpec(c, o)["process"]["oomScoreAdj"], -100);

  // A sandbox image: its entrypoint, env and working dir; a parsed base spec.
  o.pause_args = {"/bin/sleep", "1000"};
  o.pause_env = {"PATH=/bin", "PAUSE=1"};
  o.pause_cwd = "/tmp";
  o.base_spec = std::make_shared<const json>(json::parse(R"({"process":{"env":["PATH=/x","BASE=1"]}})"));
  s = oci::SandboxSpec(c, o);
  EXPECT_EQ(s["process"]["args"], json({"/bin/sleep", "1000"}));
  EXPECT_EQ(s["process"]["env"], json({"PATH=/bin", "BASE=1", "PAUSE=1"}));
  EXPECT_EQ(s["process"]["cwd"], "/tmp");
  EXPECT_EQ(s["process"]["user"], json::parse(R"({"uid":0,"gid":0})"));
  o.pause_user = oci::ResolvedUser{65535, 65535, {7}, ""};
  EXPECT_EQ(oci::SandboxSpec(c, o)["process"]["user"], json::parse(R"({"uid":65535,"gid":65535,"additionalGids":[7]})"));
  c.mutable_linux()->mutable_security_context()->mutable_run_as_user()->set_value(42);
  EXPECT_EQ(oci::SandboxSpec(c, o)["process"]["user"]["uid"], 42);  // the pod's wins
  c.mutable_linux()->mutable_security_context()->clear_run_as_user();
  o.pause_user.reset();
  o.pause_cwd = "tmp";
  EXPECT_THROW(oci::SandboxSpec(c, o), berth::Error);
  o.pause_cwd = "/";
  o.pause_args.clear();
  EXPECT_THROW(oci::SandboxSpec(c, o), berth::Error);
  o.pause_args = {"/pause"};
  o.base_spec = nullptr;

  auto* nso = c.mutable_linux()->mutable_security_context()->mutable_namespace_options();
  nso->set_network(cri::CONTAINER);
  try {
    oci::SandboxSpec(c, o);
    ADD_FAILURE() << "network mode CONTAINER accepted for a sandbox";
  } catch (const berth::Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "linux.security_context.namespace_options.network: mode CONTAINER is not allowed for a pod sandbox");
  }
  nso->set_network(cri::POD);
  nso->set_pid(cri::TARGET);
  EXPECT_THROW(oci::SandboxSpec(c, o), berth::Error);
  nso->set_pid(cri::CONTAINER);
  EXPECT_NO_THROW(oci::SandboxSpec(c, o));
  nso->set_pid(cri::POD);
  nso->mutable_userns_options()->set_mode(cri::CONTAINER);  // POD is the lifecycle's to add
  EXPECT_THROW(oci::SandboxSpec(c, o), berth::Error);
  nso->clear_userns_options();
  c.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_network(cri::NODE);
  s = oci::SandboxSpec(c, o);
  EXPECT_FALSE(s.contains("hostname"));
  for (const auto& n : s["linux"]["namespaces"]) {
    EXPECT_NE(n["type"], "network");
    EXPECT_NE(n["type"], "uts");
  }
  (*c.mutable_linux()->mutable_sysctls())["kernel.msgmax"] = std::string("1\n2", 3);
  try {
    oci::SandboxSpec(c, o);
    ADD_FAILURE() << "a sysctl value with a newline accepted";
  } catch (const berth::Error& e) {
    EXPECT_EQ(std::string(e.what()), "linux.sysctls: invalid value for \"kernel.msgmax\"");
  }
  c.mutable_linux()->mutable_sysctls()->erase("kernel.msgmax");
  (*c.mutable_linux()->mutable_sysctls())["../../etc"] = "1";
  EXPECT_THROW(oci::SandboxSpec(c, o), berth::Error);
  c.clear_metadata();
  EXPECT_THROW(oci::SandboxSpec(c, o), berth::Error);
}

TEST(ImageConfigTest, ParsesAndStopSignal) {
  auto ic = oci::ParseImageConfig(json::parse(R"({"config":{"Entrypoint":["/e"],"Cmd":["c"],
      "Env":["A=1"],"WorkingDir":"/w","User":"app","StopSignal":"SIGQUIT"}})"));
  EXPECT_EQ(ic.entrypoint, std::vector<std::string>{"/e"});
  EXPECT_EQ(ic.cmd, std::vector<std::string>{"c"});
  EXPECT_EQ(ic.env, std::vector<std::string>{"A=1"});
  EXPECT_EQ(ic.working_dir, "/w");
  EXPECT_EQ(ic.user, "app");
  EXPECT_EQ(oci::StopSignal(0, ic.stop_signal), SIGQUIT);
  EXPECT_EQ(oci::StopSignal(0, ""), SIGTERM);
  // The CRI stop_signal is a runtime.v1.Signal enum value, not a Linux signal number.
  EXPECT_EQ(oci::StopSignal(cri::Signal_descriptor()->FindValueByName("SIGKILL")->number(), "SIGQUIT"), SIGKILL);
  EXPECT_EQ(oci::StopSignal(cri::Signal_descriptor()->FindValueByName("SIGUSR1")->number(), ""), SIGUSR1);
  EXPECT_EQ(oci::StopSignal(cri::Signal_descriptor()->FindValueByName("SIGRTMINPLUS3")->number(), ""), 37);
  EXPECT_EQ(oci::StopSignal(cri::Signal_descriptor()->FindValueByName("SIGCLD")->number(), ""), SIGCHLD);
  EXPECT_THROW(oci::StopSignal(1000, ""), berth::Error);
  EXPECT_EQ(oci::StopSignal(0, "RTMIN+3"), 37);
  EXPECT_EQ(oci::StopSignal(0, "2"), 2);
  EXPECT_THROW(oci::StopSignal(0, "SIGNOPE"), berth::Error);
  EXPECT_THROW(oci::ParseImageConfig(json::parse(R"({"config":{"Cmd":"x"}})")), berth::Error);
  EXPECT_TRUE(oci::ParseImageConfig(json::parse(R"({"config":null})")).cmd.empty());
}

// The generated spec (RuntimeDefault seccomp, non-root user, dropped caps) runs under runc.
TEST_F(SpecTest, GeneratedSpecRunsWithRunc) {
  std::string why = bt::ContainerSkipReason("runc");
  if (!why.empty()) GTEST_SKIP() << why;
  auto* sc = config_.mutable_linux()->mutable_security_context();
  sc->mutable_namespace_options()->set_network(cri::NODE);
  sc->mutable_namespace_options()->set_ipc(cri::NODE);
  sc->mutable_namespace_options()->set_pid(cri::CONTAINER);
  sc->mutable_seccomp()->set_profile_type(cri::SecurityProfile::RuntimeDefault);
  sc->set_run_as_username("app");
  sc->set_no_new_privs(true);
  config_.clear_command();
  config_.add_command("/bin/sh");
  config_.add_args("-c");
  config_.add_args("id -u; id -G; echo ok > /dev/shm/out; cat /dev/shm/out");
  auto* r = config_.mutable_linux()->mutable_resources();
  r->set_memory_limit_in_bytes(64 << 20);
  r->set_cpu_shares(256);
  opts_.restrict_oom_score_adj = true;
  opts_.node = oci::HostNodeInfo();
  opts_.id = "berth-spec-" + std::to_string(::getpid());
  json s = Spec();
  std::string bundle = dir_ / "bundle";
  bt::WriteFile(bundle + "/config.json", s.dump());
  std::string root = dir_ / "runc-root";
  auto res = berth::exec::Run({"runc", "--root", root, "run", "--bundle", bundle, opts_.id});
  berth::exec::Run({"runc", "--root", root, "delete", "--force", opts_.id});
  ASSERT_EQ(res.exit_code, 0) << res.err << res.out;
  EXPECT_EQ(res.out, "1000\n1000 2000\nok\n");
}
