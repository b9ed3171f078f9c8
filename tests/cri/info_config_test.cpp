// Status info["config"] as containerd's CRI plugin writes it (cri/info_config.h).
#include "cri/info_config.h"

#include <gtest/gtest.h>

namespace {

using berth::cri::ContainerdInfoConfig;
using berth::cri::InfoConfigInput;

InfoConfigInput Input() {
  InfoConfigInput in;
  berth::config::Runtime runc;
  runc.options = {{"BinaryName", "/usr/bin/runc"}, {"SystemdCgroup", true}};
  runc.pod_annotations = {"io.kubernetes.cri.*"};
  in.runtime.containerd.runtimes["runc"] = runc;
  in.runtime.cni.bin_dirs = {"/opt/cni/bin", "/usr/lib/cni"};
  in.runtime.max_container_log_line_size = 8192;
  in.runtime.enable_selinux = true;
  in.images.pinned_images["sandbox"] = "registry.k8s.io/pause:3.9";
  in.images.registry.config_path = "/etc/berth/certs.d";
  in.containerd_root_dir = "/var/lib/berth";
  in.containerd_endpoint = "/run/berth/berth.sock";
  in.root_dir = "/var/lib/berth/io.containerd.grpc.v1.cri";
  in.state_dir = "/run/berth/io.containerd.grpc.v1.cri";
  return in;
}

TEST(ContainerdInfoConfig, FieldNamesAndNestingOfContainerd) {
  auto c = ContainerdInfoConfig(Input());
  EXPECT_EQ(c["containerd"]["snapshotter"], "overlayfs");
  EXPECT_EQ(c["containerd"]["defaultRuntimeName"], "runc");
  const auto& runc = c["containerd"]["runtimes"]["runc"];
  EXPECT_EQ(runc["runtimeType"], "io.containerd.runc.v2");
  EXPECT_EQ(runc["options"]["BinaryName"], "/usr/bin/runc");
  EXPECT_EQ(runc["options"]["SystemdCgroup"], true);
  EXPECT_EQ(runc["PodAnnotations"], nlohmann::ordered_json({"io.kubernetes.cri.*"}));
  EXPECT_TRUE(runc["ContainerAnnotations"].is_null());
  EXPECT_EQ(runc["sandboxMode"], "podsandbox");
  EXPECT_EQ(c["containerd"]["defaultRuntime"]["runtimeType"], "");
  EXPECT_EQ(c["cni"]["binDir"], "/opt/cni/bin");
  EXPECT_EQ(c["cni"]["confDir"], "/etc/cni/net.d");
  EXPECT_EQ(c["cni"]["maxConfNum"], 1);
  EXPECT_EQ(c["registry"]["configPath"], "/etc/berth/certs.d");
  EXPECT_TRUE(c["registry"]["mirrors"].is_null());
  EXPECT_EQ(c["enableSelinux"], true);
  EXPECT_EQ(c["sandboxImage"], "registry.k8s.io/pause:3.9");
  EXPECT_EQ(c["maxContainerLogSize"], 8192);
  EXPECT_EQ(c["cdiSpecDirs"], nlohmann::ordered_json({"/etc/cdi", "/var/run/cdi"}));
  EXPECT_EQ(c["containerdRootDir"], "/var/lib/berth");
  EXPECT_EQ(c["containerdEndpoint"], "/run/berth/berth.sock");
  EXPECT_EQ(c["rootDir"], "/var/lib/berth/io.containerd.grpc.v1.cri");
  EXPECT_EQ(c["stateDir"], "/run/berth/io.containerd.grpc.v1.cri");
  EXPECT_EQ(c["streamServerAddress"], "127.0.0.1");
  // The keys of containerd 1.7's Config, in its order.
  std::vector<std::string> keys;
  for (auto it = c.begin(); it != c.end(); ++it) keys.push_back(it.key());
  std::vector<std::string> want = {"containerd",
                                   "cni",
                                   "registry",
                                   "imageDecryption",
                                   "disableTCPService",
                                   "streamServerAddress",
                                   "streamServerPort",
                                   "streamIdleTimeout",
                                   "enableSelinux",
                                   "selinuxCategoryRange",
                                   "sandboxImage",
                                   "statsCollectPeriod",
                                   "systemdCgroup",
                                   "enableTLSStreaming",
                                   "x509KeyPairStreaming",
                                   "maxContainerLogSize",
                                   "disableCgroup",
                                   "disableApparmor",
                                   "restrictOOMScoreAdj",
                                   "maxConcurrentDownloads",
                                   "disableProcMount",
                                   "unsetSeccompProfile",
                                   "tolerateMissingHugetlbController",
                                   "disableHugetlbController",
                                   "device_ownership_from_security_context",
                                   "ignoreImageDefinedVolumes",
                                   "netnsMountsUnderStateDir",
                                   "enableUnprivilegedPorts",
                                   "enableUnprivilegedICMP",
                                   "enableCDI",
                                   "cdiSpecDirs",
                                   "imagePullProgressTimeout",
                                   "drainExecSyncIOTimeout",
                                   "imagePullWithSyncFs",
                                   "ignoreDeprecationWarnings",
                                   "containerdRootDir",
                                   "containerdEndpoint",
                                   "rootDir",
                                   "stateDir"};
  EXPECT_EQ(keys, want);
}

TEST(ContainerdInfoConfig, RegistryTables) {
  auto in = Input();
  in.images.registry.mirrors["docker.io"].endpoint = {"https://mirror.example"};
  berth::config::RegistryConfig rc;
  rc.tls = berth::config::TLSConfig{true, "/ca.pem", "", ""};
  in.images.registry.configs["r.example"] = rc;
  auto c = ContainerdInfoConfig(in);
  EXPECT_EQ(c["registry"]["mirrors"]["docker.io"]["endpoint"],
            nlohmann::ordered_json({"https://mirror.example"}));
  EXPECT_EQ(c["registry"]["configs"]["r.example"]["tls"]["insecure_skip_verify"], true);
  EXPECT_EQ(c["registry"]["configs"]["r.example"]["tls"]["caFile"], "/ca.pem");
  EXPECT_TRUE(c["registry"]["configs"]["r.example"]["auth"].is_null());
}

}  // namespace
