// End-to-end tests of running berth on a node: the quick start without CAP_SYS_RESOURCE, the
// Prometheus metrics (parsed by prometheus_client, not by berth), `berthd check` with faults
// injected, the systemd unit and sd_notify, JSON logs and the run-time log level, berthctl's
// output formats, and the commands of docs/kubernetes.md.
#include "runtime/v1/api.pb.h"  // first: its Signal enum collides with <signal.h> macros

#include "berth/admin/v1/admin.pb.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/exec.h"
#include "common/fs.h"
#include "image_support.h"
#include "support/support.h"

namespace {

using berth::testing::TempDir;
using nlohmann::json;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool HaveCapsh() { return access("/usr/sbin/capsh", X_OK) == 0; }

// A berthd on a temporary socket, root and state.
class Daemon {
 public:
  // `runtime_table`: lines of [plugins."io.containerd.cri.v1.runtime"]; `extra`: more tables.
  Daemon(const std::string& dir, const std::string& runtime_table, const std::string& extra = "")
      : dir_(dir) {
    socket_ = dir + "/berth.sock";
    config_ = dir + "/config.toml";
    log_ = dir + "/berthd.log";
    std::ostringstream c;
    c << "version = 3\nroot = \"" << dir << "/root\"\nstate = \"" << dir << "/state\"\n"
      << "[grpc]\naddress = \"" << socket_ << "\"\n"
      << extra << "\n"
      << "[plugins.\"io.containerd.cri.v1.runtime\"]\n"
      << runtime_table << "\n"
      << "[plugins.\"io.containerd.cri.v1.runtime\".containerd]\ndefault_runtime_name = \"runc\"\n"
      << "[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.runc]\nruntime_type = "
         "\"io.containerd.runc.v2\"\n";
    berth::testing::WriteFile(config_, c.str());
  }
  ~Daemon() { Stop(); }

  // Starts berthd (under `capsh --drop=CAP --` when drop_cap is set) and waits until it answers.
  std::string Start(const std::string& drop_cap = "") {
    pid_ = fork();
    if (pid_ < 0) return "fork failed";
    if (pid_ == 0) {
      int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      std::string cmd = std::string("exec ") + BERTHD_PATH + " --config " + config_;
      if (!drop_cap.empty()) {
        std::string drop = "--drop=" + drop_cap;
        execl("/usr/sbin/capsh", "capsh", drop.c_str(), "--", "-c", cmd.c_str(), nullptr);
      } else {
        execl(BERTHD_PATH, BERTHD_PATH, "--config", config_.c_str(), nullptr);
      }
      _exit(127);
    }
    for (int i = 0; i < 600; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return "berthd exited during startup:\n" + Log();
      }
      if (Log().find("berthd serving on") != std::string::npos && Ctl({"version"}).ok()) return "";
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return "berthd did not answer:\n" + Log();
  }
  void Stop() {
    if (pid_ > 0) berth::testing::StopChild(pid_, SIGTERM);
    pid_ = -1;
  }

  berth::exec::Result Ctl(std::vector<std::string> args, int timeout_s = 120) const {
    std::vector<std::string> argv = {BERTHCTL_PATH, "--runtime-endpoint", "unix://" + socket_};
    argv.insert(argv.end(), args.begin(), args.end());
    berth::exec::Options o;
    o.timeout = std::chrono::seconds(timeout_s);
    return berth::exec::Run(argv, o);
  }
  // `berthd check` with this config.
  berth::exec::Result Check(const std::string& drop_cap = "",
                            const std::string& output = "text") const {
    std::string cmd = std::string(BERTHD_PATH) + " --config " + config_ + " check -o " + output;
    if (drop_cap.empty()) return berth::exec::Run({"/bin/sh", "-c", cmd});
    return berth::exec::Run({"/usr/sbin/capsh", "--drop=" + drop_cap, "--", "-c", cmd});
  }
  int MetricsPort() const {
    std::smatch m;
    std::string log = Log();
    if (std::regex_search(log, m, std::regex("metrics on [^ ]+ \\(port ([0-9]+)\\)")))
      return std::stoi(m[1]);
    return 0;
  }
  std::string Log() const { return ReadAll(log_); }
  const std::string& socket() const { return socket_; }
  const std::string& config() const { return config_; }
  pid_t pid() const { return pid_; }

 private:
  std::string dir_, socket_, config_, log_;
  pid_t pid_ = -1;
};

// One HTTP/1.1 request to 127.0.0.1:port; the whole response (the server closes the connection).
std::string Http(int port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return "";
  }
  (void)!write(fd, request.data(), request.size());
  std::string out;
  char buf[65536];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) out.append(buf, size_t(n));
  close(fd);
  return out;
}

std::string Body(const std::string& response) {
  auto p = response.find("\r\n\r\n");
  return p == std::string::npos ? "" : response.substr(p + 4);
}

// The exposition parsed by prometheus_client: {"families": {...}, "samples": [[name, labels,
// value]]}.
json Parse(const std::string& text) {
  berth::exec::Options o;
  o.stdin_data = text;
  auto r = berth::exec::Run({"/usr/bin/python3", PROM_PARSE_PY}, o);
  EXPECT_TRUE(r.ok()) << r.err << "\n" << text.substr(0, 4000);
  return r.ok() ? json::parse(r.out) : json::object();
}

// The sum of the samples called `name` whose labels include `want`.
double Value(const json& parsed, const std::string& name,
             const std::map<std::string, std::string>& want = {}) {
  double sum = 0;
  for (const auto& s : parsed["samples"]) {
    if (s[0] != name) continue;
    bool match = true;
    for (const auto& [k, v] : want) match = match && s[1].contains(k) && s[1][k] == v;
    if (match) sum += s[2].get<double>();
  }
  return sum;
}

json Scrape(const Daemon& d) {
  std::string resp = Http(d.MetricsPort(), "GET /v1/metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
  EXPECT_EQ(resp.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << resp.substr(0, 200);
  EXPECT_NE(resp.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  return Parse(Body(resp));
}

// Imports the busybox test image as `ref` through berthctl.
std::string ImportImage(const Daemon& d, const std::string& work, const std::string& ref) {
  auto img = berth::testing::BuildTestImage(work + "/oci", {});
  berth::testing::WriteOciArchive(img, work + "/img.tar", ref);
  auto r = d.Ctl({"images", "import", work + "/img.tar"});
  return r.ok() ? "" : r.out + r.err;
}

std::string ContainerSkip() {
  if (!berth::testing::IsRoot()) return "needs root";
  if (auto why = berth::testing::ContainerSkipReason(); !why.empty()) return why;
  return berth::testing::RegistrySkipReason();
}

// Runs `berthctl run IMAGE -- CMD` and waits for the container to exit; returns its log.
std::string RunToCompletion(const Daemon& d, const std::string& ref, const std::string& name,
                            std::string* error) {
  // berthctl run logs under /var/log/berth/pods/<name>: a name of this run only, removed after.
  const std::string unique = name + "-" + std::to_string(getpid());
  auto r = d.Ctl({"run", "--name", unique, ref, "--", "echo", "hello from " + name});
  if (!r.ok()) {
    *error = "berthctl run: " + r.out + r.err;
    return "";
  }
  std::string id = r.out.substr(0, r.out.find('\n'));
  bool exited = berth::testing::Eventually(
      [&] {
        return d.Ctl({"inspect", id}).out.find("CONTAINER_EXITED") != std::string::npos;
      },
      std::chrono::seconds(30));
  if (!exited) *error = "container " + id + " did not exit";
  std::string log = d.Ctl({"logs", id}).out;
  berth::exec::Run({"/bin/rm", "-rf", "/var/log/berth/pods/" + unique});
  return log;
}

// Removes every pod of the daemon (so that the temporary directories can go).
void RemovePods(const Daemon& d) {
  auto r = d.Ctl({"pods", "-q"});
  std::istringstream in(r.out);
  for (std::string id; std::getline(in, id);) {
    if (id.empty()) continue;
    d.Ctl({"stopp", id});
    d.Ctl({"rmp", id});
  }
}

// ---- quick start without CAP_SYS_RESOURCE
// --------------------------------------------------------

TEST(QuickStart, RunWorksWithoutCapSysResource) {
  if (auto why = ContainerSkip(); !why.empty()) GTEST_SKIP() << why;
  if (!HaveCapsh()) GTEST_SKIP() << "capsh is not installed";
  TempDir dir("berth-ops-quick");
  Daemon d(dir.path(), "");  // restrict_oom_score_adj unset, as a new user's config
  ASSERT_EQ(d.Start("cap_sys_resource"), "");
  ASSERT_EQ(ImportImage(d, dir.path(), "docker.io/library/busybox:quick"), "");
  std::string error;
  std::string log = RunToCompletion(d, "docker.io/library/busybox:quick", "quick", &error);
  EXPECT_EQ(error, "");
  EXPECT_NE(log.find("hello from quick"), std::string::npos) << log;
  // Said once, through the warning service.
  auto w = d.Ctl({"warnings"});
  EXPECT_NE(w.out.find("io.berth.warning/restrict-oom-score-adj"), std::string::npos) << w.out;
  EXPECT_NE(w.out.find("lacks CAP_SYS_RESOURCE"), std::string::npos) << w.out;
  // And in the check, through the daemon.
  auto c = d.Ctl({"check"});
  EXPECT_NE(c.out.find("warn caps.CAP_SYS_RESOURCE: missing: oom_score_adj of pods is clamped"),
            std::string::npos)
      << c.out;
  RemovePods(d);
}

TEST(QuickStart, ExplicitFalseStillForcesNoClamp) {
  if (!berth::testing::IsRoot()) GTEST_SKIP() << "needs root";
  if (!HaveCapsh()) GTEST_SKIP() << "capsh is not installed";
  TempDir dir("berth-ops-forced");
  Daemon off(dir.path(), "restrict_oom_score_adj = false");
  auto r = off.Check("cap_sys_resource");
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("fail caps.CAP_SYS_RESOURCE: missing, and restrict_oom_score_adj = false"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("fix: remove restrict_oom_score_adj"), std::string::npos) << r.out;
  Daemon on(dir.path(), "restrict_oom_score_adj = true");
  r = on.Check("cap_sys_resource");
  EXPECT_NE(r.out.find("ok   caps.CAP_SYS_RESOURCE: missing; restrict_oom_score_adj = true clamps"),
            std::string::npos)
      << r.out;
}

// ---- metrics
// -------------------------------------------------------------------------------------

TEST(Metrics, SeriesMoveWithPodsPullsAndFailures) {
  if (auto why = ContainerSkip(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir("berth-ops-metrics");
  Daemon d(dir.path(), "restrict_oom_score_adj = true",
           "[metrics]\naddress = \"127.0.0.1:0\"\ngrpc_histogram = true\n");
  ASSERT_EQ(d.Start(), "");
  ASSERT_GT(d.MetricsPort(), 0) << d.Log();

  json before = Scrape(d);
  EXPECT_EQ(before["families"]["berth_grpc_server_handled"], "counter");
  EXPECT_EQ(before["families"]["berth_process_resident_memory_bytes"], "gauge");
  EXPECT_GT(Value(before, "berth_process_resident_memory_bytes"), 1 << 20);
  EXPECT_GT(Value(before, "berth_process_open_fds"), 2);
  EXPECT_GE(Value(before, "berth_process_threads"), 2);
  double now = double(std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count());
  EXPECT_NEAR(Value(before, "berth_process_start_time_seconds"), now, 120);
  EXPECT_EQ(Value(before, "berth_rro_handler_info", {{"runtime_handler", "runc"}}), 1);
  EXPECT_EQ(Value(before, "berth_container_starts_total"), 0);

  // Pods and containers.
  ASSERT_EQ(ImportImage(d, dir.path(), "docker.io/library/busybox:metrics"), "");
  std::string error;
  RunToCompletion(d, "docker.io/library/busybox:metrics", "m1", &error);
  EXPECT_EQ(error, "");
  json after = Scrape(d);
  EXPECT_EQ(Value(after, "berth_container_starts_total"), 1);
  EXPECT_EQ(Value(after, "berth_container_exits_total"), 1);
  EXPECT_EQ(Value(after, "berth_container_oom_kills_total"), 0);
  EXPECT_EQ(Value(after, "berth_pods", {{"state", "ready"}}), 1) << after["samples"].dump();
  for (const auto& sample : after["samples"]) {
    if (sample[0] == "berth_pods" || sample[0] == "berth_containers") {
      EXPECT_FALSE(sample[1].value("runtime_handler", "").empty()) << sample.dump();
    }
  }
  EXPECT_EQ(Value(after, "berth_containers", {{"state", "exited"}}), 1);
  EXPECT_EQ(Value(after, "berth_grpc_server_handled_total",
                  {{"grpc_method", "RunPodSandbox"},
                   {"grpc_code", "ok"},
                   {"grpc_service", "runtime.v1.RuntimeService"}}),
            1);
  EXPECT_EQ(
      Value(after, "berth_grpc_server_handling_seconds_count", {{"grpc_method", "RunPodSandbox"}}),
      1);
  EXPECT_EQ(Value(after, "berth_grpc_server_handling_seconds_bucket",
                  {{"grpc_method", "RunPodSandbox"}, {"le", "+Inf"}}),
            1);

  // A failing call.
  EXPECT_FALSE(d.Ctl({"inspect", "no-such-container"}).ok());
  json failed = Scrape(d);
  EXPECT_EQ(Value(failed, "berth_grpc_server_handled_total",
                  {{"grpc_method", "ContainerStatus"}, {"grpc_code", "not_found"}}),
            1);

  // A pull from a real registry, and a failed one.
  berth::testing::LocalRegistry reg;
  berth::testing::TestImageOptions pull_opts;
  pull_opts.id = "pull";
  auto img = berth::testing::BuildTestImage(dir / "pull-oci", pull_opts);
  berth::testing::PushImage(img, reg.host(), "test/busybox:v1");
  auto p = d.Ctl({"pull", reg.host() + "/test/busybox:v1"});
  ASSERT_TRUE(p.ok()) << p.out << p.err;
  EXPECT_FALSE(d.Ctl({"pull", reg.host() + "/test/busybox:absent"}).ok());
  json pulled = Scrape(d);
  EXPECT_EQ(Value(pulled, "berth_image_pulls_total"), 1);
  EXPECT_EQ(Value(pulled, "berth_image_pull_bytes_total"), double(img.size));
  EXPECT_EQ(Value(pulled, "berth_image_pull_duration_seconds_count"), 1);
  EXPECT_EQ(Value(pulled, "berth_image_pull_failures_total", {{"reason", "not_found"}}), 1)
      << pulled["samples"].dump();

  // Only /v1/metrics, only GET and HEAD.
  EXPECT_EQ(Http(d.MetricsPort(), "GET /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(Http(d.MetricsPort(), "POST /v1/metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0),
            0u);
  EXPECT_EQ(Http(d.MetricsPort(), "GARBAGE\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_EQ(Http(d.MetricsPort(), std::string(10000, 'a')).rfind("HTTP/1.1 431", 0), 0u);
  EXPECT_TRUE(d.Ctl({"version"}).ok());
  RemovePods(d);
}

TEST(Metrics, OffWhenAddressEmptyAndHistogramOnlyWhenAsked) {
  if (!berth::testing::IsRoot()) GTEST_SKIP() << "berthd's CRI plugins need root";
  TempDir dir("berth-ops-metrics-off");
  {
    Daemon d(dir / "a", "restrict_oom_score_adj = true", "[metrics]\naddress = \"\"\n");
    ASSERT_EQ(d.Start(), "");
    EXPECT_EQ(d.MetricsPort(), 0);
    EXPECT_EQ(d.Log().find("metrics on"), std::string::npos);
  }
  Daemon d(dir / "b", "restrict_oom_score_adj = true", "[metrics]\naddress = \"127.0.0.1:0\"\n");
  ASSERT_EQ(d.Start(), "");
  json m = Scrape(d);
  EXPECT_GE(Value(m, "berth_grpc_server_handled_total", {{"grpc_method", "Version"}}), 1);
  EXPECT_FALSE(m["families"].contains("berth_grpc_server_handling_seconds"));
}

TEST(Metrics, BadConfigIsRefusedNamingTheKey) {
  TempDir dir("berth-ops-metrics-bad");
  Daemon d(dir.path(), "", "[metrics]\naddress = 1338\n");
  auto r = berth::exec::Run({BERTHD_PATH, "--config", d.config()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("metrics.address: expected a string"), std::string::npos) << r.err;
}

// ---- berthd check
// ----------------------------------------------------------------------------------

TEST(Check, ThisHostAndThroughTheDaemon) {
  if (!berth::testing::IsRoot()) GTEST_SKIP() << "needs root";
  TempDir dir("berth-ops-check");
  Daemon d(dir.path(), "restrict_oom_score_adj = true");
  auto r = d.Check();
  for (const char* name :
       {"kernel.overlayfs", "kernel.mount_setattr", "kernel.idmapped_mounts", "cgroup.version",
        "cgroup.controllers", "kernel.seccomp", "runtime.runc", "cni.config", "cni.plugins",
        "caps.CAP_SYS_ADMIN", "caps.CAP_SYS_RESOURCE", "caps.CAP_NET_ADMIN", "disk.root",
        "disk.state", "socket"}) {
    EXPECT_TRUE(
        std::regex_search(r.out, std::regex(std::string("(^|\n)(ok|warn|fail) +") + name + ": ")))
        << name << "\n"
        << r.out;
  }
  // Every line is one check: status, name, detail (and a fix when not ok).
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    EXPECT_TRUE(
        std::regex_match(line, std::regex("(ok   |warn |fail )[a-zA-Z_.]+(\\.[A-Z_]+)?: .+")))
        << line;
    if (line.rfind("ok", 0) != 0) {
      EXPECT_NE(line.find("; fix: "), std::string::npos) << line;
    }
  }
  EXPECT_EQ(r.exit_code, r.out.find("[fatal]") == std::string::npos ? 0 : 1) << r.out;
  auto j = json::parse(d.Check("", "json").out);
  ASSERT_TRUE(j.is_array());
  EXPECT_EQ(j[0]["name"], "kernel.overlayfs");

  ASSERT_EQ(d.Start(), "");
  auto c = d.Ctl({"check"});
  EXPECT_NE(c.out.find("runtime.runc"), std::string::npos) << c.out;
  EXPECT_TRUE(std::regex_search(c.out, std::regex("ok   socket: .*berth.sock: mode 0660")))
      << c.out;
  auto cj = d.Ctl({"-o", "json", "check"});
  EXPECT_TRUE(json::parse(cj.out).is_array()) << cj.out;
}

TEST(Check, MissingRuntimeIsFatal) {
  TempDir dir("berth-ops-check-rt");
  Daemon d(dir.path(), "");
  std::string cfg = ReadAll(d.config());
  cfg +=
      "[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.runc.options]\nBinaryName = "
      "\"/nonexistent/runc\"\n";
  berth::testing::WriteFile(d.config(), cfg);
  auto r = d.Check();
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(std::regex_search(
      r.out,
      std::regex(
          "fail runtime.runc: .*/nonexistent/runc.* \\[fatal\\]; fix: install the OCI runtime")))
      << r.out;
}

TEST(Check, EmptyCniDir) {
  TempDir dir("berth-ops-check-cni");
  berth::testing::WriteFile(dir / "cni/.keep", "");
  Daemon d(dir.path(), "[plugins.\"io.containerd.cri.v1.runtime\".cni]\nconf_dir = \"" +
                           dir / "cni" + "\"\nbin_dirs = [\"" + dir / "bin" + "\"]");
  // The test config puts the runtime table first; the cni table must follow it.
  std::string cfg = ReadAll(d.config());
  auto r = d.Check();
  EXPECT_NE(r.out.find("fail cni.config: no network config (*.conf, *.conflist, *.json) in " +
                       dir / "cni"),
            std::string::npos)
      << cfg << r.out;
  EXPECT_NE(r.out.find("fail cni.plugins: not found in bin_dirs [" + dir / "bin" + "]: loopback"),
            std::string::npos)
      << r.out;
}

TEST(Check, FullDiskIsFatal) {
  if (!berth::testing::IsRoot()) GTEST_SKIP() << "mounting a tmpfs needs root";
  TempDir dir("berth-ops-check-disk");
  std::string small = dir / "small";
  berth::testing::WriteFile(small + "/.keep", "");
  ASSERT_EQ(mount("tmpfs", small.c_str(), "tmpfs", 0, "size=4m"), 0) << strerror(errno);
  berth::exec::Run({"/bin/dd", "if=/dev/zero", "of=" + small + "/fill", "bs=1M", "count=8"});
  Daemon d(dir.path(), "");
  std::string cfg = ReadAll(d.config());
  const std::string from = "root = \"" + dir.path() + "/root\"";
  cfg.replace(cfg.find(from), from.size(), "root = \"" + small + "/root\"");
  berth::testing::WriteFile(d.config(), cfg);
  auto r = d.Check();
  umount2(small.c_str(), MNT_DETACH);
  EXPECT_EQ(r.exit_code, 1) << cfg << r.out;
  EXPECT_TRUE(std::regex_search(
      r.out,
      std::regex("fail disk.root: " + small + "/root: 0 MiB free of 4 MiB.*\\[fatal\\]; fix: ")))
      << r.out;
}

TEST(Check, NoCapSysResourceWarns) {
  if (!berth::testing::IsRoot()) GTEST_SKIP() << "needs root";
  if (!HaveCapsh()) GTEST_SKIP() << "capsh is not installed";
  TempDir dir("berth-ops-check-caps");
  Daemon d(dir.path(), "");
  auto r = d.Check("cap_sys_resource");
  EXPECT_NE(
      r.out.find(
          "warn caps.CAP_SYS_RESOURCE: missing: oom_score_adj of pods is clamped to berthd's own"),
      std::string::npos)
      << r.out;
  r = d.Check("cap_sys_admin");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("fail caps.CAP_SYS_ADMIN: missing"), std::string::npos) << r.out;
}

// ---- systemd
// ---------------------------------------------------------------------------------------

TEST(Systemd, UnitVerifies) {
  if (access("/usr/bin/systemd-analyze", X_OK) != 0)
    GTEST_SKIP() << "systemd-analyze is not installed";
  TempDir dir("berth-ops-unit");
  // The unit names /usr/local/bin/berthd; verify it against the built binary.
  std::string unit = ReadAll(std::string(BERTH_SOURCE_DIR) + "/contrib/systemd/berthd.service");
  ASSERT_NE(unit.find("ExecStart=/usr/local/bin/berthd"), std::string::npos);
  for (const char* key :
       {"Type=notify", "Delegate=yes", "KillMode=process", "LimitNOFILE=", "OOMScoreAdjust=-999"}) {
    EXPECT_NE(unit.find(key), std::string::npos) << key;
  }
  unit.replace(unit.find("/usr/local/bin/berthd"), std::string("/usr/local/bin/berthd").size(),
               BERTHD_PATH);
  berth::testing::WriteFile(dir / "berthd.service", unit);
  auto r =
      berth::exec::Run({"/usr/bin/systemd-analyze", "verify", "--man=no", dir / "berthd.service"});
  EXPECT_TRUE(r.ok()) << r.out << r.err;
  EXPECT_EQ(r.err.find("berthd.service"), std::string::npos) << r.err;
}

TEST(Systemd, NotifiesReadiness) {
  if (!berth::testing::IsRoot()) GTEST_SKIP() << "berthd's CRI plugins need root";
  TempDir dir("berth-ops-notify");
  std::string path = dir / "notify.sock";
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  setenv("NOTIFY_SOCKET", path.c_str(), 1);
  Daemon d(dir.path(), "restrict_oom_score_adj = true");
  std::string err = d.Start();
  unsetenv("NOTIFY_SOCKET");
  ASSERT_EQ(err, "");
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[512] = {};
  ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
  ASSERT_GT(n, 0);
  std::string msg(buf, size_t(n));
  EXPECT_NE(msg.find("READY=1\n"), std::string::npos) << msg;
  EXPECT_NE(msg.find("MAINPID=" + std::to_string(d.pid())), std::string::npos) << msg;
  d.Stop();
  n = recv(fd, buf, sizeof buf - 1, 0);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, size_t(n)), "STOPPING=1");
  close(fd);
}

TEST(Socket, GroupFromGrpcGid) {
  if (!berth::testing::IsRoot()) GTEST_SKIP() << "chown needs root";
  TempDir dir("berth-ops-gid");
  Daemon d(dir.path(), "restrict_oom_score_adj = true");
  std::string cfg = ReadAll(d.config());
  cfg.replace(cfg.find("[grpc]\n"), 7, "[grpc]\ngid = 4242\n");
  berth::testing::WriteFile(d.config(), cfg);
  ASSERT_EQ(d.Start(), "");
  struct stat st {};
  ASSERT_EQ(stat(d.socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, 4242u);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

// ---- logs
// ------------------------------------------------------------------------------------------

TEST(Logs, JsonLinesAndLevelAtRunTime) {
  if (!berth::testing::IsRoot()) GTEST_SKIP() << "berthd's CRI plugins need root";
  TempDir dir("berth-ops-logs");
  Daemon d(dir.path(), "restrict_oom_score_adj = true",
           "[debug]\nformat = \"json\"\nlevel = \"info\"\n");
  ASSERT_EQ(d.Start(), "");
  EXPECT_EQ(d.Ctl({"log-level"}).out, "info\n");
  auto w = d.Ctl({"log-level", "warn"});
  EXPECT_EQ(w.out, "warn (was info)\n") << w.err;
  auto i = d.Ctl({"log-level", "info"});
  EXPECT_EQ(i.out, "info (was warn)\n") << i.err;
  auto bad = d.Ctl({"log-level", "loud"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("InvalidArgument: invalid log level \"loud\""), std::string::npos)
      << bad.err;
  d.Stop();
  std::istringstream in(d.Log());
  int lines = 0;
  bool saw_serving = false, saw_warn_set = false, saw_info_set = false;
  for (std::string line; std::getline(in, line);) {
    auto j = json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << line;
    ASSERT_TRUE(j["time"].is_string() && j["level"].is_string() && j["msg"].is_string()) << line;
    EXPECT_TRUE(std::regex_match(j["time"].get<std::string>(),
                                 std::regex("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{9}Z")))
        << line;
    saw_serving = saw_serving || j["msg"].get<std::string>().find("berthd serving on") == 0;
    // Logged at info: not written while the level was warn.
    saw_warn_set = saw_warn_set || j["msg"] == "log level set to warn (was info)";
    saw_info_set = saw_info_set || j["msg"] == "log level set to info (was warn)";
    ++lines;
  }
  EXPECT_GT(lines, 3);
  EXPECT_TRUE(saw_serving);
  EXPECT_FALSE(saw_warn_set);
  EXPECT_TRUE(saw_info_set);
}

TEST(Logs, UnknownFormatIsRefused) {
  TempDir dir("berth-ops-logs-bad");
  Daemon d(dir.path(), "", "[debug]\nformat = \"xml\"\n");
  auto r = berth::exec::Run({BERTHD_PATH, "--config", d.config()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("[debug] format \"xml\": must be \"text\" or \"json\""), std::string::npos)
      << r.err;
}

// ---- docs/kubernetes.md
// ------------------------------------------------------------------------------

// The `sh` blocks of a Markdown file, in order.
std::vector<std::string> ShellBlocks(const std::string& markdown) {
  std::vector<std::string> blocks;
  std::istringstream in(markdown);
  std::string line, block;
  bool inside = false;
  while (std::getline(in, line)) {
    if (!inside && line == "```sh") {
      inside = true;
      block.clear();
    } else if (inside && line == "```") {
      inside = false;
      blocks.push_back(block);
    } else if (inside) {
      block += line + "\n";
    }
  }
  return blocks;
}

// Runs every `sh` block of docs/kubernetes.md, in order, as root in a private mount namespace
// whose /etc, /usr/local, /var/lib and /run are overlays on directories of this test (nothing
// reaches the host). The node being migrated runs a real containerd (started here with the
// config the doc migrates, on this test's root and state) holding a real image. systemctl is
// a shell function that does what systemd would: `daemon-reload` verifies the installed unit,
// `disable --now containerd` stops that containerd, `enable --now berthd` starts the unit's
// ExecStart and waits until it answers, `restart kubelet` does nothing (kubelet is not
// installed: its configuration is checked against the running berthd afterwards instead).
TEST(KubernetesDoc, EveryCommandRuns) {
  if (!berth::testing::IsRoot()) GTEST_SKIP() << "needs root (mount namespaces, overlays)";
  if (auto why = berth::testing::RegistrySkipReason(); !why.empty()) GTEST_SKIP() << why;
  for (const char* tool :
       {"/usr/bin/unshare", "/usr/bin/containerd", "/usr/bin/ctr", "/usr/bin/systemd-analyze"}) {
    if (access(tool, X_OK) != 0) GTEST_SKIP() << tool << " is not installed";
  }
  TempDir dir("berth-ops-k8sdoc");
  const std::string t = dir.path();
  berth::testing::TestImageOptions migrate_opts;
  migrate_opts.id = "migrate";
  auto img = berth::testing::BuildTestImage(t + "/oci", migrate_opts);
  berth::testing::WriteOciArchive(img, t + "/busybox.tar", "docker.io/library/busybox:migrate");
  berth::fs::MkdirAll(t + "/work");
  ASSERT_EQ(symlink(BERTH_BUILD_DIR, (t + "/work/build").c_str()), 0);
  ASSERT_EQ(
      symlink((std::string(BERTH_SOURCE_DIR) + "/contrib").c_str(), (t + "/work/contrib").c_str()),
      0);

  std::ostringstream sh;
  sh << "set -euo pipefail\nT=" << t << "\n"
     << "for d in etc usr/local var/lib run; do\n"
     << "  mkdir -p $T/ov/$d/upper $T/ov/$d/work\n"
     << "  mount -t overlay overlay -o lowerdir=/$d,upperdir=$T/ov/$d/upper,workdir=$T/ov/$d/work "
        "/$d\n"
     << "done\n"
     << "export PATH=/usr/local/bin:$PATH\n"
     // The node before the migration: containerd with its default config, holding an image.
     << "mkdir -p /etc/containerd && containerd config default > /etc/containerd/config.toml\n"
     << "containerd --config /etc/containerd/config.toml --root $T/ctd/root --state $T/ctd/state > "
        "$T/containerd.log 2>&1 &\n"
     << "CTD=$!\n"
     << "for i in $(seq 100); do ctr --address /run/containerd/containerd.sock version > /dev/null "
        "2>&1 && break; sleep 0.1; done\n"
     << "ctr --address /run/containerd/containerd.sock -n k8s.io images import --no-unpack "
        "--base-name docker.io/library/busybox $T/busybox.tar\n"
     << "BERTHD=\n"
     << "systemctl() {\n"
     << "  case \"$*\" in\n"
     << "    'daemon-reload') systemd-analyze verify --man=no /etc/systemd/system/berthd.service "
        ";;\n"
     << "    'disable --now containerd') kill $CTD; wait $CTD || true ;;\n"
     << "    'enable --now berthd')\n"
     << "      $(sed -n 's/^ExecStart=//p' /etc/systemd/system/berthd.service) > $T/berthd.log "
        "2>&1 &\n"
     << "      BERTHD=$!\n"
     << "      for i in $(seq 300); do berthctl version > /dev/null 2>&1 && return 0; sleep 0.1; "
        "done\n"
     << "      cat $T/berthd.log; return 1 ;;\n"
     << "    'restart kubelet') ;;\n"
     << "    *) echo \"systemctl $*: not handled by the test\"; return 1 ;;\n"
     << "  esac\n"
     << "}\n"
     << "stop_berthd() { if [ -n \"$BERTHD\" ]; then kill $BERTHD; wait $BERTHD || true; fi; }\n"
     << "trap 'stop_berthd; kill $CTD 2>/dev/null || true' EXIT\n"
     << "cd $T/work\n";
  auto blocks = ShellBlocks(ReadAll(std::string(BERTH_SOURCE_DIR) + "/docs/kubernetes.md"));
  ASSERT_GE(blocks.size(), 7u);
  for (size_t i = 0; i < blocks.size(); ++i)
    sh << "echo '--- block " << i + 1 << "'\n" << blocks[i];
  // The files the doc wrote, against the running berthd.
  sh << "echo '--- checks'\n"
     << "python3 - <<'END'\n"
     << "import subprocess, yaml\n"
     << "def ok(endpoint):\n"
     << "    subprocess.run(['berthctl', '--runtime-endpoint', endpoint, 'version'], check=True, "
        "stdout=subprocess.DEVNULL)\n"
     << "k = yaml.safe_load(open('/var/lib/kubelet/config.yaml'))\n"
     << "assert k['kind'] == 'KubeletConfiguration'\n"
     << "ok(k['containerRuntimeEndpoint'])\n"
     << "assert k['cgroupDriver'] == 'systemd'\n"
     << "assert 'SystemdCgroup = true' in open('/etc/berth/config.toml').read()\n"
     << "c = yaml.safe_load(open('/etc/crictl.yaml'))\n"
     << "ok(c['runtime-endpoint']); ok(c['image-endpoint'])\n"
     << "flag = "
        "open('/etc/default/kubelet').read().split('--container-runtime-endpoint=')[1].split()[0]\n"
     << "ok(flag)\n"
     << "print('checks ok')\n"
     << "END\n";
  berth::testing::WriteFile(t + "/doc.sh", sh.str());
  berth::exec::Options o;
  o.timeout = std::chrono::seconds(300);
  auto r = berth::exec::Run(
      {"/usr/bin/unshare", "-m", "--propagation", "private", "/bin/bash", t + "/doc.sh"}, o);
  EXPECT_TRUE(r.ok()) << "exit " << r.exit_code << "\n"
                      << r.out << "\n"
                      << r.err << "\n"
                      << ReadAll(t + "/berthd.log")
                      << ReadAll(t + "/containerd.log").substr(0, 3000);
  EXPECT_NE(r.out.find("checks ok"), std::string::npos) << r.out;
}

// ---- berthctl output formats
// ---------------------------------------------------------------------

// `text` parsed as the proto3 JSON of message M, unknown fields refused: the output is the struct.
template <typename M>
M AsMessage(const std::string& text) {
  M msg;
  google::protobuf::util::JsonParseOptions o;
  o.ignore_unknown_fields = false;
  auto st = google::protobuf::util::JsonStringToMessage(text, &msg, o);
  EXPECT_TRUE(st.ok()) << st.ToString() << "\n" << text;
  return msg;
}

// Drops every "timestamp" member (two calls of a stats listing differ only there).
json WithoutTimestamps(json j) {
  if (j.is_object()) {
    j.erase("timestamp");
    for (auto& [k, v] : j.items()) v = WithoutTimestamps(v);
  } else if (j.is_array()) {
    for (auto& v : j) v = WithoutTimestamps(v);
  }
  return j;
}

// YAML output read by PyYAML equals the JSON output (of another call; with drop_times, up to the
// sample times).
void ExpectYamlEqualsJson(const std::string& yaml_text, const std::string& json_text,
                          bool drop_times = false) {
  berth::exec::Options o;
  o.stdin_data = yaml_text;
  auto r =
      berth::exec::Run({"/usr/bin/python3", "-c",
                        "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"},
                       o);
  ASSERT_TRUE(r.ok()) << r.err << yaml_text;
  json from_yaml = json::parse(r.out), from_json = json::parse(json_text);
  if (drop_times) {
    from_yaml = WithoutTimestamps(from_yaml);
    from_json = WithoutTimestamps(from_json);
  }
  EXPECT_EQ(from_yaml, from_json) << yaml_text;
}

std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// The "status" of an inspect output is the CRI status message; the other keys are the verbose
// info, parsed. yaml is the same document as json.
template <typename M>
M StatusOf(const std::string& text) {
  auto j = json::parse(text, nullptr, false);
  EXPECT_TRUE(j.is_object() && j.contains("status")) << text;
  return AsMessage<M>(j.is_object() ? j.value("status", json::object()).dump() : "{}");
}

void ExpectInspectsMatchTheirStructs(const Daemon& d, const std::string& pod,
                                     const std::string& cid, const std::string& ref) {
  auto c = d.Ctl({"inspect", cid});
  EXPECT_EQ(StatusOf<runtime::v1::ContainerStatus>(c.out).id(), cid);
  auto p = d.Ctl({"inspectp", pod});
  EXPECT_EQ(StatusOf<runtime::v1::PodSandboxStatus>(p.out).id(), pod);
  auto ij = d.Ctl({"inspecti", "-o", "json", ref});
  auto img = StatusOf<runtime::v1::Image>(ij.out);
  EXPECT_EQ(img.repo_tags(0), ref);
  ExpectYamlEqualsJson(d.Ctl({"inspecti", "-o", "yaml", ref}).out, ij.out);
  auto it = Lines(d.Ctl({"inspecti", "-o", "table", ref}).out);
  ASSERT_GE(it.size(), 2u);
  EXPECT_EQ(it[0], "ID: " + img.id());
  EXPECT_EQ(it[1], "Tag: " + ref);
  auto fj = d.Ctl({"-o", "json", "imagefsinfo"});
  auto fs = AsMessage<runtime::v1::ImageFsInfoResponse>(fj.out);
  ASSERT_GE(fs.image_filesystems_size(), 1);
  ExpectYamlEqualsJson(d.Ctl({"-o", "yaml", "imagefsinfo"}).out, fj.out, /*drop_times=*/true);
  auto ft = Lines(d.Ctl({"imagefsinfo"}).out);
  ASSERT_EQ(ft.size(), 1u + fs.image_filesystems_size());
  EXPECT_NE(ft[1].find(fs.image_filesystems(0).fs_id().mountpoint()), std::string::npos);
  // info: the RuntimeStatus, the handlers and the features of the Status response.
  auto inf = d.Ctl({"info", "-o", "json"});
  auto j = json::parse(inf.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << inf.out;
  auto rs = AsMessage<runtime::v1::RuntimeStatus>(j["status"].dump());
  EXPECT_GE(rs.conditions_size(), 2);
  ASSERT_TRUE(j["runtimeHandlers"].is_array());
  for (const auto& h : j["runtimeHandlers"]) AsMessage<runtime::v1::RuntimeHandler>(h.dump());
  if (j.contains("features")) AsMessage<runtime::v1::RuntimeFeatures>(j["features"].dump());
  auto iy = d.Ctl({"info", "-o", "yaml"});
  ExpectYamlEqualsJson(iy.out, inf.out);
  // version: the fields of VersionResponse, one per line.
  auto v = Lines(d.Ctl({"version"}).out);
  ASSERT_EQ(v.size(), 4u);
  EXPECT_TRUE(std::regex_match(v[0], std::regex("Version:  \\S+")));
  EXPECT_EQ(v[1], "RuntimeName:  berth");
  EXPECT_TRUE(std::regex_match(v[2], std::regex("RuntimeVersion:  \\S+")));
  EXPECT_EQ(v[3], "RuntimeApiVersion:  v1");
}

// check, plugins and warnings: json elements are the admin messages (plugins name requires_types
// "requires", and warnings print the time rather than nanoseconds), yaml the same document, and
// the table one line each.
void ExpectAdminListingsMatchTheirStructs(const Daemon& d) {
  auto cj = d.Ctl({"-o", "json", "check"});
  auto checks = json::parse(cj.out, nullptr, false);
  ASSERT_TRUE(checks.is_array() && !checks.empty()) << cj.out;
  for (const auto& c : checks) AsMessage<berth::admin::v1::CheckResult>(c.dump());
  // The same document, but for the free space and inodes, which move between the two calls.
  auto without_disk = [](json j) {
    for (auto& c : j)
      if (c.value("name", "").rfind("disk.", 0) == 0) c.erase("detail");
    return j.dump();
  };
  berth::exec::Options yo;
  yo.stdin_data = d.Ctl({"-o", "yaml", "check"}).out;
  auto cy =
      berth::exec::Run({"/usr/bin/python3", "-c",
                        "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"},
                       yo);
  ASSERT_TRUE(cy.ok()) << cy.err;
  EXPECT_EQ(without_disk(json::parse(cy.out)), without_disk(checks)) << yo.stdin_data;
  EXPECT_EQ(Lines(d.Ctl({"check"}).out).size(), checks.size());
  auto pj = d.Ctl({"-o", "json", "plugins"});
  auto plugins = json::parse(pj.out, nullptr, false);
  ASSERT_TRUE(plugins.is_array() && !plugins.empty()) << pj.out;
  for (auto p : plugins) {
    p["requiresTypes"] = p["requires"];
    p.erase("requires");
    AsMessage<berth::admin::v1::Plugin>(p.dump());
  }
  ExpectYamlEqualsJson(d.Ctl({"-o", "yaml", "plugins"}).out, pj.out);
  EXPECT_EQ(Lines(d.Ctl({"plugins"}).out).size(), 1 + plugins.size());
  auto wj = d.Ctl({"-o", "json", "warnings"});
  auto warnings = json::parse(wj.out, nullptr, false);
  ASSERT_TRUE(warnings.is_array()) << wj.out;
  for (auto w : warnings) {
    EXPECT_TRUE(std::regex_match(w.value("last_occurrence", ""),
                                 std::regex("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ")))
        << w;
    w.erase("last_occurrence");
    AsMessage<berth::admin::v1::Warning>(w.dump());
  }
  ExpectYamlEqualsJson(d.Ctl({"-o", "yaml", "warnings"}).out, wj.out);
  EXPECT_EQ(Lines(d.Ctl({"warnings"}).out).size(), 1 + warnings.size());
}

TEST(BerthctlFormats, ListingsMatchTheirStructs) {
  if (auto why = ContainerSkip(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir("berth-ops-fmt");
  Daemon d(dir.path(), "restrict_oom_score_adj = true");
  ASSERT_EQ(d.Start(), "");
  ASSERT_EQ(ImportImage(d, dir.path(), "docker.io/library/busybox:fmt"), "");
  for (const char* name : {"fmt-a", "fmt-b"}) {
    json pod = {{"metadata", {{"name", name}, {"namespace", "default"}, {"uid", name}}},
                {"labels", {{"app", name}}},
                {"log_directory", dir / name}};
    berth::testing::WriteFile(dir / (std::string(name) + ".json"), pod.dump());
    auto r = d.Ctl({"runp", dir / (std::string(name) + ".json")});
    ASSERT_TRUE(r.ok()) << r.out << r.err;
  }
  // pods: json is a ListPodSandboxResponse, yaml the same document, table and filters.
  auto pj = d.Ctl({"-o", "json", "pods"});
  auto pods = AsMessage<runtime::v1::ListPodSandboxResponse>(pj.out);
  ASSERT_EQ(pods.items_size(), 2);
  ExpectYamlEqualsJson(d.Ctl({"-o", "yaml", "pods"}).out, pj.out);
  auto ids = Lines(d.Ctl({"pods", "-q"}).out);
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[0].size(), 64u);
  auto table = Lines(d.Ctl({"pods"}).out);
  ASSERT_EQ(table.size(), 3u);
  EXPECT_EQ(table[0].rfind("POD ID", 0), 0u);
  EXPECT_EQ(table[1].find(' '), 13u);  // truncated id
  EXPECT_EQ(Lines(d.Ctl({"pods", "--no-trunc"}).out)[1].find(' '), 64u);
  auto a = Lines(d.Ctl({"pods", "-q", "--label", "app=fmt-a"}).out);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(AsMessage<runtime::v1::ListPodSandboxResponse>(
                d.Ctl({"-o", "json", "pods", "--name", "^fmt-b$"}).out)
                .items(0)
                .metadata()
                .name(),
            "fmt-b");
  EXPECT_TRUE(d.Ctl({"pods", "-q", "--state", "notready"}).out.empty());
  EXPECT_EQ(d.Ctl({"pods", "--state", "sleepy"}).exit_code, 1);
  EXPECT_EQ(d.Ctl({"pods", "--label", "novalue"}).exit_code, 1);

  // ps and logs.
  // berthctl run logs under /var/log/berth/pods/<name>: a name of this run only, removed after.
  const std::string cname = "fmt-c-" + std::to_string(getpid());
  auto run = d.Ctl({"run", "--name", cname, "docker.io/library/busybox:fmt", "--", "sh", "-c",
                    "echo one; echo two; echo three"});
  ASSERT_TRUE(run.ok()) << run.out << run.err;
  std::string cid = Lines(run.out)[0];
  ASSERT_TRUE(berth::testing::Eventually(
      [&] {
        return !d.Ctl({"ps", "-q", "--state", "exited"}).out.empty();
      },
      std::chrono::seconds(30)));
  auto cj = d.Ctl({"-o", "json", "ps", "-a"});
  auto ctrs = AsMessage<runtime::v1::ListContainersResponse>(cj.out);
  ASSERT_EQ(ctrs.containers_size(), 1);
  EXPECT_EQ(ctrs.containers(0).id(), cid);
  ExpectYamlEqualsJson(d.Ctl({"-o", "yaml", "ps", "-a"}).out, cj.out);
  EXPECT_EQ(Lines(d.Ctl({"ps", "-a", "-q", "--name", cname}).out), std::vector<std::string>{cid});
  EXPECT_TRUE(d.Ctl({"ps", "-a", "-q", "--name", "^nothing$"}).out.empty());
  EXPECT_TRUE(d.Ctl({"ps", "-q"}).out.empty());  // default: running only
  EXPECT_EQ(Lines(d.Ctl({"ps", "-a", "--no-trunc"}).out)[1].substr(0, 64), cid);
  EXPECT_EQ(d.Ctl({"logs", cid}).out, "one\ntwo\nthree\n");
  EXPECT_EQ(d.Ctl({"logs", "--tail", "1", cid}).out, "three\n");
  EXPECT_EQ(d.Ctl({"logs", "--since", "1h", cid}).out, "one\ntwo\nthree\n");
  EXPECT_EQ(d.Ctl({"logs", "--since", "2099-01-01T00:00:00Z", cid}).out, "");
  EXPECT_TRUE(std::regex_match(Lines(d.Ctl({"logs", "-t", "--tail", "1", cid}).out)[0],
                               std::regex("\\d{4}-\\d\\d-\\d\\dT\\S+ three")));
  EXPECT_EQ(d.Ctl({"logs", "--since", "yesterday", cid}).exit_code, 1);

  // images and stats.
  auto ij = d.Ctl({"-o", "json", "images"});
  auto imgs = AsMessage<runtime::v1::ListImagesResponse>(ij.out);
  ASSERT_GE(imgs.images_size(), 1);
  ExpectYamlEqualsJson(d.Ctl({"-o", "yaml", "images"}).out, ij.out);
  EXPECT_NE(d.Ctl({"images", "--no-trunc"}).out.find(imgs.images(0).id()), std::string::npos);
  EXPECT_EQ(Lines(d.Ctl({"images", "-q", "--name", "busybox:fmt$"}).out).size(), 1u);
  EXPECT_TRUE(d.Ctl({"images", "-q", "--name", "nginx"}).out.empty());
  auto sj = d.Ctl({"-o", "json", "stats"});
  AsMessage<runtime::v1::ListContainerStatsResponse>(sj.out);
  ExpectYamlEqualsJson(d.Ctl({"-o", "yaml", "stats"}).out, sj.out, /*drop_times=*/true);
  auto stable = Lines(d.Ctl({"stats"}).out);
  ASSERT_EQ(stable.size(), 1u + json::parse(sj.out).value("stats", json::array()).size());
  EXPECT_EQ(stable[0].rfind("CONTAINER", 0), 0u);
  ExpectInspectsMatchTheirStructs(d, ids[0], cid, "docker.io/library/busybox:fmt");
  ExpectAdminListingsMatchTheirStructs(d);
  RemovePods(d);
  berth::exec::Run({"/bin/rm", "-rf", "/var/log/berth/pods/" + cname});
}

// `berthctl logs -f` prints the lines a running container writes after it started, and returns by
// itself when the container exits. The container writes each line when the test tells it to
// (a file made with `berthctl exec`), so no line can be written before the follower runs.
TEST(BerthctlLogs, FollowPrintsNewLinesAndStopsWhenTheContainerExits) {
  if (auto why = ContainerSkip(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir("berth-ops-follow");
  Daemon d(dir.path(), "restrict_oom_score_adj = true");
  ASSERT_EQ(d.Start(), "");
  ASSERT_EQ(ImportImage(d, dir.path(), "docker.io/library/busybox:follow"), "");
  const std::string name = "follow-" + std::to_string(getpid());
  auto run = d.Ctl({"run", "--name", name, "docker.io/library/busybox:follow", "--", "sh", "-c",
                    "echo one; while [ ! -e /tmp/two ]; do sleep 0.1; done; echo two; "
                    "while [ ! -e /tmp/three ]; do sleep 0.1; done; echo three"});
  ASSERT_TRUE(run.ok()) << run.out << run.err;
  const std::string cid = Lines(run.out)[0];
  ASSERT_TRUE(berth::testing::Eventually(
      [&] {
        return d.Ctl({"logs", cid}).out == "one\n";
      },
      std::chrono::seconds(30)))
      << d.Ctl({"logs", cid}).out;

  int out[2];
  ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(out[1], 1);
    std::string ep = "unix://" + d.socket();
    execl(BERTHCTL_PATH, BERTHCTL_PATH, "--runtime-endpoint", ep.c_str(), "logs", "-f", cid.c_str(),
          nullptr);
    _exit(127);
  }
  close(out[1]);
  std::string got;
  // Reads the follower's output until it holds `want` (or 60 s pass: then the test fails).
  auto read_until = [&](const std::string& want) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (got != want && std::chrono::steady_clock::now() < deadline) {
      struct pollfd p = {out[0], POLLIN, 0};
      if (poll(&p, 1, 200) <= 0) continue;
      char buf[256];
      ssize_t n = read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      got.append(buf, size_t(n));
    }
    return got;
  };
  EXPECT_EQ(read_until("one\n"), "one\n");
  EXPECT_TRUE(d.Ctl({"exec", cid, "--", "touch", "/tmp/two"}).ok());
  EXPECT_EQ(read_until("one\ntwo\n"), "one\ntwo\n") << "a line written after -f started";
  int status = -1;
  EXPECT_EQ(waitpid(pid, &status, WNOHANG), 0) << "logs -f returned while the container runs";
  EXPECT_TRUE(d.Ctl({"exec", cid, "--", "touch", "/tmp/three"}).ok());
  EXPECT_EQ(read_until("one\ntwo\nthree\n"), "one\ntwo\nthree\n");
  // The container exits after its last line: the follower returns by itself.
  bool returned = berth::testing::Eventually([&] { return waitpid(pid, &status, WNOHANG) == pid; },
                                             std::chrono::seconds(60));
  if (!returned) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  EXPECT_TRUE(returned) << "logs -f still runs after the container exited";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  char rest[64];
  EXPECT_EQ(read(out[0], rest, sizeof rest), 0) << "nothing more after the last line";
  close(out[0]);
  EXPECT_NE(d.Ctl({"inspect", cid}).out.find("CONTAINER_EXITED"), std::string::npos);
  RemovePods(d);
  berth::exec::Run({"/bin/rm", "-rf", "/var/log/berth/pods/" + name});
}

}  // namespace
