// A full disk, through a real berthd (runc, berth-monitor) whose directories the test puts on
// small tmpfs mounts of its own (below its temporary directory, unmounted with it):
// - the root on a tmpfs too small for an image: the pull fails with RESOURCE_EXHAUSTED naming
//   the lack of space and the layer, no image is listed, the space it took is given back (no
//   blob, partial download or staging snapshot left), and berthd keeps serving (a pull that
//   fits, a pod);
// - a container's log directory on a full tmpfs: the container keeps running, the log entries
//   berth-monitor drops are counted (ContainerStatus verbose info "logLost", `berthctl inspect`),
//   the log stays parseable, and logging resumes when space comes back.
// Needs root, runc and busybox-static (and Debian's docker-registry for the pull); skips otherwise.
#include "berthd_proc.h"  // first: its enum Signal names collide with <signal.h> macros

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/exec.h"
#include "image_support.h"
#include "monitor/crilog.h"
#include "support/support.h"

namespace {

namespace v1 = runtime::v1;
using berth::testing::Deadline;
using berth::testing::TempDir;

const char* kImage = "docker.io/test/busybox:fulldisk";

// Mounts a tmpfs of `size` bytes at `dir` (created); "" or why not.
std::string MountTmpfs(const std::string& dir, size_t size) {
  std::filesystem::create_directories(dir);
  std::string opts = "size=" + std::to_string(size) + ",mode=0755";
  if (::mount("berth-fulldisk", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0)
    return "mount tmpfs at " + dir + ": " + std::strerror(errno);
  return "";
}

int64_t UsedBytes(const std::string& dir) {
  struct statvfs s;
  if (::statvfs(dir.c_str(), &s) != 0) return -1;
  return static_cast<int64_t>(s.f_blocks - s.f_bfree) * static_cast<int64_t>(s.f_frsize);
}

// Writes zeros to `path` until the file system is full; returns the bytes written.
int64_t FillUp(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  std::vector<char> zeros(64 * 1024, 0);
  int64_t total = 0;
  for (size_t chunk = zeros.size(); chunk > 0;) {
    ssize_t n = ::write(fd, zeros.data(), chunk);
    if (n > 0) {
      total += n;
    } else if (n < 0 && errno == ENOSPC) {
      chunk /= 2;  // the last pages, a smaller write at a time
    } else if (n < 0 && errno != EINTR) {
      break;
    }
  }
  ::close(fd);
  return total;
}

// Every path below `dir` whose name contains one of `needles`.
std::vector<std::string> FindNamed(const std::string& dir,
                                   const std::vector<std::string>& needles) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(
           dir, std::filesystem::directory_options::skip_permission_denied, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    std::string name = it->path().filename().string();
    for (const auto& n : needles)
      if (name.find(n) != std::string::npos) out.push_back(it->path().string());
  }
  return out;
}

class FullDisk : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string reason = berth::testing::ContainerSkipReason("runc");
    if (!reason.empty()) GTEST_SKIP() << reason;
    if (berth::testing::BusyboxPath().empty()) GTEST_SKIP() << "busybox-static is not installed";
    dir_ = std::make_unique<TempDir>("berth-fulldisk");
  }
  void TearDown() override {
    if (d_ && d_->pid() > 0) {
      v1::ListPodSandboxResponse pods;
      if (d_->rt().ListPodSandbox(Deadline().get(), {}, &pods).ok()) {
        for (const auto& p : pods.items()) {
          v1::RemovePodSandboxRequest r;
          r.set_pod_sandbox_id(p.id());
          v1::RemovePodSandboxResponse rr;
          d_->rt().RemovePodSandbox(Deadline().get(), r, &rr);
        }
      }
    }
    d_.reset();  // berthd stopped before its directories are unmounted (by ~TempDir)
  }
  void StartBerthd() {
    const char* berthd =
        std::getenv("BERTH_TEST_BERTHD") ? std::getenv("BERTH_TEST_BERTHD") : BERTHD_PATH;
    d_ = std::make_unique<berth::testing::BerthdProc>(dir_->path(), berthd, BERTH_MONITOR_PATH,
                                                      BERTH_PAUSE_PATH);
    ASSERT_EQ(d_->Start(), "");
  }
  grpc::Status Pull(const std::string& ref, std::string* image_ref = nullptr) {
    v1::PullImageRequest req;
    req.mutable_image()->set_image(ref);
    v1::PullImageResponse resp;
    auto st = d_->img().PullImage(Deadline(120).get(), req, &resp);
    if (image_ref) *image_ref = resp.image_ref();
    return st;
  }
  std::set<std::string> ListedImages() {
    v1::ListImagesResponse resp;
    EXPECT_TRUE(d_->img().ListImages(Deadline().get(), {}, &resp).ok());
    std::set<std::string> out;
    for (const auto& i : resp.images()) {
      for (const auto& t : i.repo_tags()) out.insert(t);
      for (const auto& t : i.repo_digests()) out.insert(t);
    }
    return out;
  }
  v1::PodSandboxConfig Pod(const std::string& name, const std::string& log_dir) {
    v1::PodSandboxConfig c;
    c.mutable_metadata()->set_name(name);
    c.mutable_metadata()->set_namespace_("fulldisk");
    c.mutable_metadata()->set_uid("uid-" + name);
    c.set_log_directory(log_dir);
    return c;
  }
  std::string RunPod(const v1::PodSandboxConfig& c) {
    v1::RunPodSandboxRequest req;
    *req.mutable_config() = c;
    v1::RunPodSandboxResponse resp;
    auto st = d_->rt().RunPodSandbox(Deadline().get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.pod_sandbox_id();
  }
  void ImportBusybox() {
    berth::testing::TestImageOptions o;
    o.user = "";
    o.entrypoint = {};
    o.cmd = {"sh"};
    auto img = berth::testing::BuildTestImage(*dir_ / "oci", o);
    berth::testing::WriteOciArchive(img, *dir_ / "busybox.tar", kImage);
    berth::images::v1::ImportRequest req;
    req.set_path(*dir_ / "busybox.tar");
    berth::images::v1::ImportResponse resp;
    auto st = d_->admin().Import(Deadline().get(), req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  v1::ContainerStatusResponse Status(const std::string& id) {
    v1::ContainerStatusRequest r;
    r.set_container_id(id);
    r.set_verbose(true);
    v1::ContainerStatusResponse rr;
    auto st = d_->rt().ContainerStatus(Deadline().get(), r, &rr);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return rr;
  }
  nlohmann::json LogLost(const std::string& id) {
    auto rr = Status(id);
    auto it = rr.info().find("info");
    if (it == rr.info().end()) return nullptr;
    auto info = nlohmann::json::parse(it->second, nullptr, false);
    return info.is_object() ? info.value("logLost", nlohmann::json()) : nlohmann::json();
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<berth::testing::BerthdProc> d_;
};

TEST_F(FullDisk, PullThatDoesNotFitFailsLeavesNothingAndBerthdKeepsServing) {
  std::string reason = berth::testing::RegistrySkipReason();
  if (!reason.empty()) GTEST_SKIP() << reason;
  const std::string root = *dir_ / "root";
  std::string err = MountTmpfs(root, 24u << 20);
  if (!err.empty()) GTEST_SKIP() << err;
  berth::testing::LocalRegistry reg;
  berth::testing::TestImageOptions big_opts;
  big_opts.id = "too-big";
  big_opts.filler_bytes = 40u << 20;  // pseudo-random: no compression makes it fit
  auto big = berth::testing::BuildTestImage(*dir_ / "big", big_opts);
  berth::testing::PushImage(big, reg.host(), "test/big:v1");
  berth::testing::TestImageOptions small_opts;
  small_opts.id = "fits";
  auto small = berth::testing::BuildTestImage(*dir_ / "small", small_opts);
  berth::testing::PushImage(small, reg.host(), "test/small:v1");
  StartBerthd();
  int64_t used_before = UsedBytes(root);

  const std::string big_ref = reg.host() + "/test/big:v1";
  auto st = Pull(big_ref);
  ASSERT_FALSE(st.ok()) << "a 40 MiB image fit on a 24 MiB root";
  std::cout << "the pull answered: " << st.error_message() << "\n";
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_NE(st.error_message().find("No space left on device"), std::string::npos)
      << st.error_message();
  // Layers unpack in parallel: whichever of the image's layers meets the full disk is named.
  EXPECT_TRUE(std::any_of(
      big.layer_digests.begin(), big.layer_digests.end(),
      [&](const std::string& d) { return st.error_message().find(d) != std::string::npos; }))
      << "the message names the layer: " << st.error_message();

  // No half image: not listed, not found, and nothing of it stored.
  for (const auto& name : ListedImages())
    EXPECT_EQ(name.find("test/big"), std::string::npos) << name;
  v1::ImageStatusRequest isr;
  isr.mutable_image()->set_image(big_ref);
  v1::ImageStatusResponse isresp;
  ASSERT_TRUE(d_->img().ImageStatus(Deadline().get(), isr, &isresp).ok());
  EXPECT_FALSE(isresp.has_image());
  std::vector<std::string> needles = {"extract-"};
  for (const auto& [digest, type] : big.blobs)
    needles.push_back(digest.substr(digest.find(':') + 1));
  EXPECT_TRUE(berth::testing::Eventually([&] { return FindNamed(root, needles).empty(); },
                                         std::chrono::seconds(10)))
      << "left behind: " << ::testing::PrintToString(FindNamed(root, needles));
  EXPECT_TRUE(berth::testing::Eventually([&] { return UsedBytes(root) <= used_before + (1 << 20); },
                                         std::chrono::seconds(10)))
      << "used before the pull " << used_before << ", after " << UsedBytes(root);

  // berthd keeps serving: a pull that fits, a pod.
  v1::VersionResponse ver;
  EXPECT_TRUE(d_->rt().Version(Deadline().get(), {}, &ver).ok());
  std::string small_id;
  st = Pull(reg.host() + "/test/small:v1", &small_id);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_FALSE(small_id.empty());
  std::string pod = RunPod(Pod("after-full", *dir_ / "logs"));
  EXPECT_FALSE(pod.empty());
}

// The CRI log lines "line-<n>" of a log file: every line must parse (no torn entry).
std::vector<long> LoggedNumbers(const std::string& path, std::string* bad) {
  std::ifstream in(path);
  std::string line;
  std::vector<long> out;
  while (std::getline(in, line)) {
    berth::monitor::LogEntry e;
    std::string why = berth::monitor::ParseLogLine(line, &e);
    if (!why.empty() || e.partial || e.text.rfind("line-", 0) != 0) {
      *bad += "unexpected log line \"" + line + "\" " + why + "\n";
      continue;
    }
    out.push_back(std::stol(std::string(e.text.substr(5))));
  }
  return out;
}

TEST_F(FullDisk, ContainerWhoseLogCannotBeWrittenKeepsRunningAndLostEntriesAreCounted) {
  const std::string logs = *dir_ / "logs";
  std::string err = MountTmpfs(logs, 1u << 20);
  if (!err.empty()) GTEST_SKIP() << err;
  StartBerthd();
  ImportBusybox();
  std::string pod = RunPod(Pod("full-log", logs + "/pod"));
  ASSERT_FALSE(pod.empty());
  v1::CreateContainerRequest cr;
  cr.set_pod_sandbox_id(pod);
  *cr.mutable_sandbox_config() = Pod("full-log", logs + "/pod");
  auto* c = cr.mutable_config();
  c->mutable_metadata()->set_name("talker");
  c->mutable_image()->set_image(kImage);
  for (const char* a : {"sh", "-c", "i=0; while :; do echo line-$i; i=$((i+1)); sleep 0.01; done"})
    c->add_command(a);
  c->set_log_path("talker.log");
  v1::CreateContainerResponse cresp;
  auto st = d_->rt().CreateContainer(Deadline().get(), cr, &cresp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  const std::string id = cresp.container_id();
  v1::StartContainerRequest sr;
  sr.set_container_id(id);
  v1::StartContainerResponse sresp;
  st = d_->rt().StartContainer(Deadline().get(), sr, &sresp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  const std::string log = logs + "/pod/talker.log";
  std::string bad;
  ASSERT_TRUE(berth::testing::Eventually([&] { return LoggedNumbers(log, &bad).size() >= 5; }));
  EXPECT_EQ(LogLost(id), nlohmann::json({{"entries", 0}, {"bytes", 0}}));

  // The disk fills up: the container keeps running, the entries dropped are counted.
  ASSERT_GT(FillUp(logs + "/filler"), 0);
  ASSERT_TRUE(berth::testing::Eventually([&] { return LogLost(id).value("entries", 0) >= 20; },
                                         std::chrono::seconds(20)))
      << LogLost(id);
  EXPECT_EQ(Status(id).status().state(), v1::CONTAINER_RUNNING);
  auto lost = LogLost(id);
  EXPECT_GT(lost.value("bytes", 0), lost.value("entries", 0) * 30) << lost;  // whole CRI entries
  berth::exec::Options eo;
  eo.timeout = std::chrono::seconds(30);
  auto shown = berth::exec::Run({BERTHCTL_PATH, "-r", d_->socket(), "inspect", id}, eo);
  ASSERT_TRUE(shown.ok()) << shown.err;
  auto inspect = nlohmann::json::parse(shown.out, nullptr, false);
  ASSERT_TRUE(inspect.is_object()) << shown.out;
  EXPECT_GE(inspect["info"]["logLost"].value("entries", 0), 20) << shown.out;

  // Space comes back: logging resumes, and the count stops growing.
  std::filesystem::remove(logs + "/filler");
  size_t before = LoggedNumbers(log, &bad).size();
  ASSERT_TRUE(berth::testing::Eventually(
      [&] { return LoggedNumbers(log, &bad).size() >= before + 20; }, std::chrono::seconds(20)));
  lost = LogLost(id);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(LogLost(id), lost);
  EXPECT_EQ(Status(id).status().state(), v1::CONTAINER_RUNNING);

  // The log parses throughout, and what is missing from it is what was counted.
  bad.clear();
  auto numbers = LoggedNumbers(log, &bad);
  EXPECT_EQ(bad, "");
  ASSERT_FALSE(numbers.empty());
  long missing = 0;
  for (size_t i = 1; i < numbers.size(); ++i) {
    ASSERT_GT(numbers[i], numbers[i - 1]);
    missing += numbers[i] - numbers[i - 1] - 1;
  }
  EXPECT_EQ(numbers.front(), 0);
  EXPECT_EQ(missing, lost.value("entries", -1)) << lost;
}

}  // namespace
