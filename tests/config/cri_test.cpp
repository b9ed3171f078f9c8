// Tests of the typed CRI plugin configs: decode, type errors, validation, durations.
#include <chrono>
#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "common/error.h"
#include "config/cri.h"

namespace berth::config {
namespace {

using Tree = nlohmann::ordered_json;
using std::chrono::nanoseconds;

std::string ErrorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    return e.what();
  }
  return "";
}

std::string Joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& e : v) s += e + "\n";
  return s;
}

// ---- durations ----

struct DurationCase {
  const char* in;
  bool ok;
  int64_t ns;
  const char* formatted;  // FormatDuration(ns), or nullptr to skip
};

class Durations : public ::testing::TestWithParam<DurationCase> {};

TEST_P(Durations, ParseAndFormat) {
  const auto& c = GetParam();
  nanoseconds d(-12345);
  EXPECT_EQ(ParseDuration(c.in, &d), c.ok) << c.in;
  if (c.ok) {
    EXPECT_EQ(d.count(), c.ns) << c.in;
    if (c.formatted) {
      EXPECT_EQ(FormatDuration(d), c.formatted) << c.in;
    }
  } else {
    EXPECT_EQ(d.count(), -12345) << "out must be untouched on error";
  }
}

constexpr int64_t kS = 1000000000;
INSTANTIATE_TEST_SUITE_P(
    Go, Durations,
    ::testing::Values(DurationCase{"0", true, 0, "0s"}, DurationCase{"0s", true, 0, "0s"},
                      DurationCase{"5m", true, 300 * kS, "5m0s"},
                      DurationCase{"5m0s", true, 300 * kS, "5m0s"},
                      DurationCase{"4h0m0s", true, 4 * 3600 * kS, "4h0m0s"},
                      DurationCase{"1h30m", true, 5400 * kS, "1h30m0s"},
                      DurationCase{"500ms", true, 500000000, "500ms"},
                      DurationCase{"1.5s", true, 1500000000, "1.5s"},
                      DurationCase{".5s", true, 500000000, "500ms"},
                      DurationCase{"1.s", true, kS, "1s"},
                      DurationCase{"-2m", true, -120 * kS, "-2m0s"},
                      DurationCase{"+3s", true, 3 * kS, "3s"},
                      DurationCase{"10us", true, 10000, "10\xC2\xB5s"},
                      DurationCase{"10\xC2\xB5s", true, 10000, nullptr},
                      DurationCase{"10\xCE\xBCs", true, 10000, nullptr},
                      DurationCase{"7ns", true, 7, "7ns"},
                      DurationCase{"1h1m1s1ms1us1ns", true, 3661001001001, "1h1m1.001001001s"},
                      DurationCase{"2562047h47m16.854775807s", true, INT64_MAX, nullptr},
                      DurationCase{"2562047h47m16.854775808s", false, 0, nullptr},
                      DurationCase{"9223372036854775808ns", false, 0, nullptr},
                      DurationCase{"", false, 0, nullptr}, DurationCase{"1", false, 0, nullptr},
                      DurationCase{"s", false, 0, nullptr}, DurationCase{".s", false, 0, nullptr},
                      DurationCase{"1x", false, 0, nullptr},
                      DurationCase{"1h 2m", false, 0, nullptr},
                      DurationCase{"-", false, 0, nullptr},
                      DurationCase{"1.2.3s", false, 0, nullptr},
                      DurationCase{"3d", false, 0, nullptr}));

// ---- decode ----

TEST(Decode, DefaultsMatchContainerd) {
  RuntimeConfig r = DefaultRuntimeConfig();
  EXPECT_EQ(r.containerd.default_runtime_name, "runc");
  ASSERT_EQ(r.containerd.runtimes.count("runc"), 1u);
  const Runtime& runc = r.containerd.runtimes.at("runc");
  EXPECT_EQ(runc.runtime_type, "io.containerd.runc.v2");
  EXPECT_EQ(runc.sandboxer, "podsandbox");
  EXPECT_EQ(runc.options["SystemdCgroup"], false);
  EXPECT_EQ(r.max_container_log_line_size, 16384);
  EXPECT_EQ(r.selinux_category_range, 1024);
  EXPECT_EQ(r.drain_exec_sync_io_timeout, "0s");
  EXPECT_TRUE(r.enable_unprivileged_ports);
  EXPECT_TRUE(r.enable_unprivileged_icmp);
  EXPECT_TRUE(r.enable_cdi);
  EXPECT_TRUE(r.tolerate_missing_hugetlb_controller);
  EXPECT_TRUE(r.disable_hugetlb_controller);
  EXPECT_FALSE(r.restrict_oom_score_adj.has_value());  // unset: decided by CAP_SYS_RESOURCE
  EXPECT_EQ(r.cdi_spec_dirs, (std::vector<std::string>{"/etc/cdi", "/var/run/cdi"}));
  EXPECT_EQ(r.cni.bin_dirs, (std::vector<std::string>{"/opt/cni/bin", "/usr/lib/cni"}));
  EXPECT_EQ(r.cni.conf_dir, "/etc/cni/net.d");
  EXPECT_EQ(r.cni.max_conf_num, 1);

  ImageConfig i = DefaultImageConfig();
  EXPECT_EQ(i.snapshotter, "overlayfs");
  EXPECT_TRUE(i.disable_snapshot_annotations);
  EXPECT_EQ(i.pinned_images.at("sandbox"), "registry.k8s.io/pause:3.10");
  EXPECT_EQ(i.max_concurrent_downloads, 3);
  EXPECT_EQ(i.image_pull_progress_timeout, "5m0s");
  EXPECT_EQ(i.stats_collect_period, 10);
  EXPECT_EQ(i.image_decryption.key_model, "node");

  ServerConfig s = DefaultServerConfig();
  EXPECT_TRUE(s.disable_tcp_service);
  EXPECT_EQ(s.stream_server_address, "127.0.0.1");
  EXPECT_EQ(s.stream_server_port, "0");
  EXPECT_EQ(s.stream_idle_timeout, "4h0m0s");
}

TEST(Decode, OverDefaults) {
  Tree t = Tree::parse(R"({
    "restrict_oom_score_adj": true,
    "containerd": {"runtimes": {
      "runc": {"options": {"SystemdCgroup": true, "BinaryName": "/usr/sbin/runc"}},
      "crun": {"options": {"BinaryName": "crun"}, "treat_ro_mounts_as_rro": "Enabled"}}},
    "cni": {"bin_dir": "/x"},
    "bogus": 1,
    "systemd_cgroup": true})");
  std::vector<std::string> unknown;
  RuntimeConfig c = DecodeRuntimeConfig(t, &unknown);
  EXPECT_EQ(c.restrict_oom_score_adj, std::optional<bool>(true));
  const Runtime& runc = c.containerd.runtimes.at("runc");
  EXPECT_TRUE(runc.SystemdCgroup());
  EXPECT_EQ(runc.BinaryName(), "/usr/sbin/runc");
  EXPECT_EQ(runc.options["NoNewKeyring"], false) << "default options kept";
  const Runtime& crun = c.containerd.runtimes.at("crun");
  EXPECT_EQ(crun.runtime_type, "io.containerd.runc.v2");
  EXPECT_EQ(crun.sandboxer, "podsandbox");
  EXPECT_EQ(crun.TreatRoMountsAsRro(), "Enabled");
  EXPECT_EQ(runc.TreatRoMountsAsRro(), "IfPossible");
  EXPECT_EQ(c.cni.bin_dir, "/x");
  EXPECT_TRUE(c.cni.bin_dirs.empty());
  EXPECT_EQ(Joined(unknown),
            "plugins.\"io.containerd.cri.v1.runtime\".bogus\n"
            "plugins.\"io.containerd.cri.v1.runtime\".systemd_cgroup (removed in containerd 2.0, "
            "ignored)\n");
  // Round trip through Encode.
  EXPECT_EQ(Encode(DecodeRuntimeConfig(Encode(c))), Encode(c));
}

struct TypeErrorCase {
  const char* which;  // runtime, images, server
  const char* json;
  const char* error;
};

class DecodeTypeErrors : public ::testing::TestWithParam<TypeErrorCase> {};

TEST_P(DecodeTypeErrors, NameKeyAndTypes) {
  const auto& c = GetParam();
  Tree t = Tree::parse(c.json);
  std::string which = c.which;
  std::string err = ErrorOf([&] {
    if (which == "runtime") DecodeRuntimeConfig(t);
    if (which == "images") DecodeImageConfig(t);
    if (which == "server") DecodeServerConfig(t);
  });
  EXPECT_EQ(err, c.error);
}

INSTANTIATE_TEST_SUITE_P(
    Config, DecodeTypeErrors,
    ::testing::Values(
        TypeErrorCase{"runtime",
                      R"({"containerd": {"runtimes": {"runc": {"privileged_without_host_devices": "yes"}}}})",
                      "plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.runc."
                      "privileged_without_host_devices: expected boolean, got string"},
        TypeErrorCase{"runtime", R"({"containerd": {"runtimes": {"my.rt": 1}}})",
                      "plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.\"my.rt\": "
                      "expected table, got integer"},
        TypeErrorCase{"runtime", R"({"containerd": {"runtimes": {"r": {"options": []}}}})",
                      "plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.r.options: "
                      "expected table, got array"},
        TypeErrorCase{"runtime", R"({"cdi_spec_dirs": ["/a", 2]})",
                      "plugins.\"io.containerd.cri.v1.runtime\".cdi_spec_dirs[1]: expected string, "
                      "got integer"},
        TypeErrorCase{"runtime", R"({"max_container_log_line_size": 1.5})",
                      "plugins.\"io.containerd.cri.v1.runtime\".max_container_log_line_size: "
                      "expected integer, got float"},
        TypeErrorCase{"runtime", R"({"cni": "x"})",
                      "plugins.\"io.containerd.cri.v1.runtime\".cni: expected table, got string"},
        TypeErrorCase{"runtime", R"(5)",
                      "plugins.\"io.containerd.cri.v1.runtime\": expected table, got integer"},
        TypeErrorCase{"images", R"({"registry": {"mirrors": {"docker.io": {"endpoint": "x"}}}})",
                      "plugins.\"io.containerd.cri.v1.images\".registry.mirrors.\"docker.io\"."
                      "endpoint: expected array of strings, got string"},
        TypeErrorCase{"images", R"({"pinned_images": {"sandbox": true}})",
                      "plugins.\"io.containerd.cri.v1.images\".pinned_images.sandbox: expected "
                      "string, got boolean"},
        TypeErrorCase{"images", R"({"max_concurrent_downloads": "3"})",
                      "plugins.\"io.containerd.cri.v1.images\".max_concurrent_downloads: expected "
                      "integer, got string"},
        TypeErrorCase{"server", R"({"stream_server_port": 10010})",
                      "plugins.\"io.containerd.grpc.v1.cri\".stream_server_port: expected string, "
                      "got integer"},
        TypeErrorCase{"server", R"({"x509_key_pair_streaming": {"tls_key_file": false}})",
                      "plugins.\"io.containerd.grpc.v1.cri\".x509_key_pair_streaming.tls_key_file: "
                      "expected string, got boolean"}));

// ---- validation ----

struct ValidationCase {
  const char* name;
  const char* which;
  const char* json;   // decoded over defaults
  const char* error;  // substring of the joined errors, "" for none
  const char* deprecation;  // deprecation id expected, "" for none
};

class Validate : public ::testing::TestWithParam<ValidationCase> {};

TEST_P(Validate, Table) {
  const auto& c = GetParam();
  Tree t = Tree::parse(c.json);
  std::string which = c.which;
  Validation v;
  if (which == "runtime") {
    RuntimeConfig rc = DecodeRuntimeConfig(t);
    v = ValidateRuntimeConfig(rc);
  } else if (which == "images") {
    ImageConfig ic = DecodeImageConfig(t);
    v = ValidateImageConfig(ic);
  } else {
    ServerConfig sc = DecodeServerConfig(t);
    v = ValidateServerConfig(sc);
  }
  std::string errors = Joined(v.errors);
  if (std::string(c.error).empty()) {
    EXPECT_EQ(errors, "") << c.name;
  } else {
    EXPECT_NE(errors.find(c.error), std::string::npos) << c.name << ": " << errors;
  }
  std::string ids;
  for (const auto& [id, msg] : v.deprecations) {
    ids += id + "\n";
    EXPECT_FALSE(msg.empty());
  }
  if (std::string(c.deprecation).empty()) {
    EXPECT_EQ(ids, "") << c.name;
  } else {
    EXPECT_NE(ids.find(c.deprecation), std::string::npos) << c.name << ": " << ids;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Config, Validate,
    ::testing::Values(
        ValidationCase{"defaults", "runtime", "{}", "", ""},
        ValidationCase{"empty default runtime", "runtime",
                       R"({"containerd": {"default_runtime_name": ""}})",
                       "plugins.\"io.containerd.cri.v1.runtime\".containerd.default_runtime_name "
                       "is empty",
                       ""},
        ValidationCase{"unknown default runtime", "runtime",
                       R"({"containerd": {"default_runtime_name": "kata"}})",
                       "containerd.default_runtime_name = \"kata\": no such runtime in "
                       "plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes (configured: "
                       "runc)",
                       ""},
        ValidationCase{"bad drain timeout", "runtime", R"({"drain_exec_sync_io_timeout": "10"})",
                       "plugins.\"io.containerd.cri.v1.runtime\".drain_exec_sync_io_timeout = "
                       "\"10\": invalid duration",
                       ""},
        ValidationCase{"bad rro", "runtime",
                       R"({"containerd": {"runtimes": {"runc": {"treat_ro_mounts_as_rro": "Always"}}}})",
                       "runtimes.runc.treat_ro_mounts_as_rro = \"Always\": must be one of "
                       "\"Enabled\", \"IfPossible\", \"Disabled\" (\"\" means \"IfPossible\")",
                       ""},
        ValidationCase{"rro ok", "runtime",
                       R"({"containerd": {"runtimes": {"runc": {"treat_ro_mounts_as_rro": "Disabled"}}}})",
                       "", ""},
        ValidationCase{"bad io_type", "runtime",
                       R"({"containerd": {"runtimes": {"runc": {"io_type": "named_pipe"}}}})",
                       "runtimes.runc.io_type = \"named_pipe\": must be \"fifo\", \"streaming\" or "
                       "empty",
                       ""},
        ValidationCase{"streaming io_type", "runtime",
                       R"({"containerd": {"runtimes": {"runc": {"io_type": "streaming"}}}})", "", ""},
        ValidationCase{"all devices without privileged", "runtime",
                       R"({"containerd": {"runtimes": {"runc": {"privileged_without_host_devices_all_devices_allowed": true}}}})",
                       "privileged_without_host_devices_all_devices_allowed = true requires", ""},
        ValidationCase{"bin_dir alone", "runtime", R"({"cni": {"bin_dir": "/x"}})", "",
                       "io.containerd.deprecation/cri-cni-bin-dir"},
        ValidationCase{"bin_dir with bin_dirs", "runtime",
                       R"({"cni": {"bin_dir": "/x", "bin_dirs": ["/y"]}})",
                       "cni.bin_dir = \"/x\" and plugins.\"io.containerd.cri.v1.runtime\".cni.bin_dirs "
                       "cannot be set at the same time",
                       "io.containerd.deprecation/cri-cni-bin-dir"},
        ValidationCase{"bad SystemdCgroup", "runtime",
                       R"({"containerd": {"runtimes": {"runc": {"options": {"SystemdCgroup": "true"}}}}})",
                       "runtimes.runc.options.SystemdCgroup: expected boolean, got string", ""},
        ValidationCase{"relative runtime_path", "runtime",
                       R"({"containerd": {"runtimes": {"runc": {"runtime_path": "shim"}}}})",
                       "runtimes.runc.runtime_path = \"shim\": must be an absolute path", ""},
        ValidationCase{"image defaults", "images", "{}", "", ""},
        ValidationCase{"mirrors", "images",
                       R"({"registry": {"mirrors": {"docker.io": {"endpoint": ["https://m"]}}}})", "",
                       "io.containerd.deprecation/cri-registry-mirrors"},
        ValidationCase{"mirrors with config_path", "images",
                       R"({"registry": {"config_path": "/etc/certs.d", "mirrors": {"docker.io": {"endpoint": []}}}})",
                       "registry.mirrors (docker.io) cannot be set when "
                       "plugins.\"io.containerd.cri.v1.images\".registry.config_path is set "
                       "(config_path = \"/etc/certs.d\")",
                       "io.containerd.deprecation/cri-registry-mirrors"},
        ValidationCase{"configs", "images",
                       R"({"registry": {"configs": {"r.io": {"tls": {"insecure_skip_verify": true}}}}})",
                       "", "io.containerd.deprecation/cri-registry-configs"},
        ValidationCase{"auths", "images",
                       R"({"registry": {"auths": {"https://r.io/v2": {"username": "u"}}}})", "",
                       "io.containerd.deprecation/cri-registry-auths"},
        ValidationCase{"bad pull timeout", "images", R"({"image_pull_progress_timeout": "5 minutes"})",
                       "plugins.\"io.containerd.cri.v1.images\".image_pull_progress_timeout = \"5 "
                       "minutes\": invalid duration",
                       ""},
        ValidationCase{"server defaults", "server", "{}", "", ""},
        ValidationCase{"bad idle timeout", "server", R"({"stream_idle_timeout": "forever"})",
                       "plugins.\"io.containerd.grpc.v1.cri\".stream_idle_timeout = \"forever\": "
                       "invalid duration",
                       ""},
        ValidationCase{"bad port", "server", R"({"stream_server_port": "70000"})",
                       "stream_server_port = \"70000\": must be a port number", ""},
        ValidationCase{"tls half", "server",
                       R"({"enable_tls_streaming": true, "x509_key_pair_streaming": {"tls_cert_file": "/c"}})",
                       "tls_cert_file (\"/c\") and tls_key_file (\"\") must be set together", ""}),
    [](const auto& info) {
      std::string n = info.param.name;
      for (auto& ch : n)
        if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return n;
    });

TEST(Validate, FillsDefaults) {
  RuntimeConfig c = DecodeRuntimeConfig(
      Tree::parse(R"({"containerd": {"runtimes": {"runc": {"sandboxer": ""}}}, "cni": {"bin_dir": "/x"}})"));
  Validation v = ValidateRuntimeConfig(c);
  EXPECT_TRUE(v.ok()) << Joined(v.errors);
  EXPECT_EQ(c.containerd.runtimes.at("runc").sandboxer, "podsandbox");
  EXPECT_EQ(c.cni.bin_dirs, (std::vector<std::string>{"/x"}));
  EXPECT_EQ(c.cni.bin_dir, "");

  ImageConfig i = DecodeImageConfig(
      Tree::parse(R"({"registry": {"auths": {"https://r.io/v2": {"username": "u"}, "plain.io": {"auth": "a"}}}})"));
  v = ValidateImageConfig(i);
  EXPECT_TRUE(v.ok());
  ASSERT_TRUE(i.registry.configs.at("r.io").auth.has_value());
  EXPECT_EQ(i.registry.configs.at("r.io").auth->username, "u");
  EXPECT_EQ(i.registry.configs.at("plain.io").auth->auth, "a");
}

TEST(Validate, ErrorsAccumulate) {
  RuntimeConfig c = DecodeRuntimeConfig(Tree::parse(
      R"({"containerd": {"default_runtime_name": "x", "runtimes": {"runc": {"io_type": "y"}}}, "drain_exec_sync_io_timeout": "z"})"));
  Validation v = ValidateRuntimeConfig(c);
  EXPECT_EQ(v.errors.size(), 3u) << Joined(v.errors);
}

}  // namespace
}  // namespace berth::config
