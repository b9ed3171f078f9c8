// A pod for real: the sandbox spec runs berth-pause under berth-monitor and runc, and a
// container generated from a CRI config joins the sandbox's namespaces. Root and runc needed.
#include "runtime/v1/api.pb.h"

#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "monitor/client.h"
#include "oci/spec.h"
#include "runtime/cli.h"
#include "support/support.h"

namespace bt = berth::testing;
namespace mon = berth::monitor;
namespace oci = berth::oci;
namespace cri = runtime::v1;

TEST(PodTest, ContainerJoinsTheSandboxNamespaces) {
  std::string why = bt::ContainerSkipReason("runc");
  if (!why.empty()) GTEST_SKIP() << why;
  bt::TempDir dir("berth-pod");
  std::string suffix = std::to_string(::getpid());
  berth::runtime::CliOptions co;
  co.binary = "runc";
  co.root = dir / "runc-root";
  berth::runtime::Cli cli(co);
  oci::NodeInfo node = oci::HostNodeInfo();

  // Sandbox.
  cri::PodSandboxConfig pod;
  pod.mutable_metadata()->set_name("pod");
  pod.mutable_metadata()->set_namespace_("default");
  pod.mutable_metadata()->set_uid("uid-1");
  pod.set_hostname("podhost");
  pod.mutable_linux()->set_cgroup_parent("/berth-test");
  std::string pause_root = dir / "pause";
  berth::fs::MkdirAll(pause_root);
  ASSERT_TRUE(berth::exec::Run({"cp", BERTH_PAUSE_PATH, pause_root + "/pause"}).ok());
  oci::SandboxSpecOptions so;
  so.id = "sb-" + suffix;
  so.pause_rootfs = pause_root;
  so.restrict_oom_score_adj = true;
  so.node = node;
  std::string sb_bundle = dir / "sandbox";
  bt::WriteFile(sb_bundle + "/config.json", oci::SandboxSpec(pod, so).dump());
  mon::SpawnOptions sbo;
  sbo.monitor_path = BERTH_MONITOR_PATH;
  sbo.id = so.id;
  sbo.bundle = sb_bundle;
  sbo.runtime_log = sb_bundle + "/runtime.log";
  sbo.runtime_argv = cli.Argv({}, sbo.runtime_log);
  sbo.log_path = sb_bundle + "/pause.log";
  mon::Spawned sb;
  try {
    sb = mon::Spawn(sbo);
  } catch (const berth::Error& e) {
    FAIL() << e.what();
  }
  cli.Start(so.id);
  EXPECT_EQ(cli.GetState(so.id).status, "running");

  // Container in the pod.
  cri::ContainerConfig c;
  c.mutable_metadata()->set_name("app");
  c.add_command("/bin/sh");
  c.add_args("-c");
  c.add_args("hostname; cat /proc/1/cmdline; echo; id -u; exit 4");
  c.mutable_linux()->mutable_security_context()->mutable_seccomp()->set_profile_type(
      cri::SecurityProfile::RuntimeDefault);
  c.mutable_linux()->mutable_security_context()->set_run_as_username("app");
  oci::ContainerSpecOptions o;
  o.id = "ctr-" + suffix;
  o.sandbox_id = so.id;
  o.sandbox_pid = sb.container_pid;
  std::string bundle = dir / "ctr";
  o.rootfs = bundle + "/rootfs";
  bt::MakeBusyboxRootfs(o.rootfs);
  o.restrict_oom_score_adj = true;
  o.node = node;
  bt::WriteFile(bundle + "/config.json", oci::ContainerSpec(c, pod, o).dump());
  mon::SpawnOptions cso = sbo;
  cso.id = o.id;
  cso.bundle = bundle;
  cso.runtime_log = bundle + "/runtime.log";
  cso.runtime_argv = cli.Argv({}, cso.runtime_log);
  cso.log_path = bundle + "/ctr.log";
  mon::Spawned ct;
  try {
    ct = mon::Spawn(cso);
  } catch (const berth::Error& e) {
    cli.Delete(so.id, true);
    FAIL() << e.what();
  }
  cli.Start(o.id);
  ASSERT_TRUE(mon::WaitMonitor(ct.monitor_pid, o.id, std::chrono::minutes(2)));
  auto info = mon::ReadExitFile(bundle + "/exit");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->exit_code, 4);
  std::string log = berth::fs::ReadFile(cso.log_path);
  EXPECT_NE(log.find(" stdout F podhost\n"), std::string::npos) << log;
  EXPECT_NE(log.find(" stdout F /pause"), std::string::npos) << log;  // pid 1 is the sandbox's
  EXPECT_NE(log.find(" stdout F 1000\n"), std::string::npos) << log;
  cli.Delete(o.id, true);

  // Stopping the sandbox: berth-pause exits 0 on SIGTERM.
  cli.Kill(so.id, SIGTERM);
  ASSERT_TRUE(mon::WaitMonitor(sb.monitor_pid, so.id, std::chrono::minutes(2)));
  auto sbinfo = mon::ReadExitFile(sb_bundle + "/exit");
  ASSERT_TRUE(sbinfo);
  EXPECT_EQ(sbinfo->exit_code, 0);
  EXPECT_FALSE(sbinfo->oom_killed);
  cli.Delete(so.id, true);
}
