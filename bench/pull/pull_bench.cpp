// Times PullImage (fetch + verify + unpack) from a local docker-registry, in one run, by:
//   - berthd, started by the bench on its own root, state and socket, over its CRI socket;
//   - containerd 1.6 with its CRI plugin, started the same way on its own root, state and socket
//     (a hosts.toml makes the registry plain http), over its CRI socket, when it is installed;
//   - the machine's limit: `skopeo copy` to an OCI directory, then `igzip -dc | tar -x` (or
//     `zstd -dc | tar -x`) of every layer in order, into a new directory whose parent has
//     FS_TOPDIR_FL, as berth's snapshots directory has.
// Every pull is followed by RemoveImage (and the daemon's garbage collection), so each run pulls
// from scratch; both daemons stay up across runs, as on a node. Runs alternate; medians, the
// spread (min-max) and ratios are printed.
// Images: the busybox test image, and images made of real files of this machine (about --mib MiB
// of /usr/lib and /usr/share) in one layer and in eight, gzip (gzip -6) and zstd (zstd -3).
//
// --spread-containerd sets FS_TOPDIR_FL on containerd's overlayfs snapshots directory too, to
// show how much of the difference that placement makes on this file system.
//
//   bench_pull [--runs N] [--mib M] [--only busybox|big|big1|big8] [--no-containerd]
//              [--spread-containerd]
#include "berthd_proc.h"  // first: runtime/v1/api.grpc.pb.h names collide with <signal.h>

#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/exec.h"
#include "common/fs.h"
#include "content/store.h"
#include "image/manifest.h"
#include "image_support.h"
#include "support/support.h"

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
namespace exec = berth::exec;

namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double Ms(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

exec::Result Sh(const std::string& cmd, int timeout_s = 1800) {
  exec::Options o;
  o.timeout = std::chrono::milliseconds(timeout_s * 1000L);
  return exec::Run({"/bin/sh", "-c", cmd}, o);
}

void ShOrDie(const std::string& cmd) {
  auto r = Sh(cmd);
  if (!r.ok()) throw std::runtime_error("`" + cmd + "` failed: " + r.err.substr(0, 500));
}

std::string Quote(const std::string& s) { return "'" + s + "'"; }

std::string Sha256File(const std::string& path) {
  auto r = Sh("sha256sum " + Quote(path));
  if (!r.ok()) throw std::runtime_error("sha256sum " + path + ": " + r.err);
  return "sha256:" + r.out.substr(0, 64);
}

int64_t FileSize(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 ? st.st_size : 0;
}

// FS_TOPDIR_FL on dir (ext4): its subdirectories are placed in block groups of their own, as
// berth's snapshotter does for its snapshots. False where the file system has no such flag.
bool SpreadSubdirs(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  int flags = 0;
  bool ok = ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 &&
            (flags |= FS_TOPDIR_FL, ::ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0);
  ::close(fd);
  return ok;
}

// Regular files under /usr/lib and /usr/share, in path order, until `bytes`; split into `parts`
// lists of about equal size.
std::vector<std::vector<std::string>> PickFiles(int64_t bytes, int parts) {
  std::vector<std::pair<std::string, int64_t>> files;
  int64_t total = 0;
  for (const char* root : {"/usr/lib", "/usr/share"}) {
    std::vector<std::string> sorted;
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(
             root, std::filesystem::directory_options::skip_permission_denied, ec);
         it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      if (it->is_symlink() || !it->is_regular_file()) continue;
      sorted.push_back(it->path().string());
    }
    std::sort(sorted.begin(), sorted.end());
    for (const auto& p : sorted) {
      if (total >= bytes / 2 && std::string(root) == "/usr/lib") break;  // half from each
      if (total >= bytes) break;
      int64_t sz = FileSize(p);
      if (sz <= 0 || ::access(p.c_str(), R_OK) != 0) continue;
      files.emplace_back(p, sz);
      total += sz;
    }
  }
  std::vector<std::vector<std::string>> out(static_cast<size_t>(parts));
  int64_t acc = 0;
  for (const auto& [p, sz] : files) {
    size_t i = std::min(static_cast<size_t>(parts - 1),
                        static_cast<size_t>(acc * parts / std::max<int64_t>(1, total)));
    out[i].push_back(p.substr(1));  // relative to /
    acc += sz;
  }
  return out;
}

// An OCI layout of the given file lists, one layer each, compressed with `codec` (gzip|zstd).
berth::testing::TestImage MakeImage(const std::string& dir,
                                    const std::vector<std::vector<std::string>>& lists,
                                    const std::string& codec) {
  berth::testing::TestImage img;
  img.oci_dir = dir;
  berth::fs::MkdirAll(dir + "/blobs/sha256");
  json diff_ids = json::array(), layers = json::array();
  const std::string mt = "application/vnd.oci.image.layer.v1.tar+" + codec;
  std::vector<std::string> tars, blobs;
  for (size_t i = 0; i < lists.size(); ++i) {
    std::string list = dir + "/list-" + std::to_string(i),
                tar = dir + "/layer-" + std::to_string(i) + ".tar";
    std::ofstream(list) << [&] {
      std::string s;
      for (const auto& f : lists[i]) s += f + "\n";
      return s;
    }();
    ShOrDie("tar -cf " + Quote(tar) + " -C / --no-recursion -T " + Quote(list));
    tars.push_back(tar);
  }
  // Compress two at a time.
  std::vector<std::thread> th;
  std::vector<std::string> errors(tars.size());
  for (size_t start = 0; start < tars.size(); start += 2) {
    for (size_t i = start; i < std::min(tars.size(), start + 2); ++i)
      th.emplace_back([&, i] {
        std::string cmd = codec == "gzip" ? "gzip -6 -n -c " : "zstd -3 -q -c ";
        auto r = Sh(cmd + Quote(tars[i]) + " > " + Quote(tars[i] + "." + codec));
        if (!r.ok()) errors[i] = r.err;
      });
    for (auto& t : th) t.join();
    th.clear();
  }
  for (const auto& e : errors)
    if (!e.empty()) throw std::runtime_error("compress: " + e);
  for (const auto& tar : tars) {
    std::string blob = tar + "." + codec, digest = Sha256File(blob);
    diff_ids.push_back(Sha256File(tar));
    std::filesystem::rename(blob, dir + "/blobs/sha256/" + digest.substr(7));
    std::filesystem::remove(tar);
    int64_t sz = FileSize(dir + "/blobs/sha256/" + digest.substr(7));
    layers.push_back({{"mediaType", mt}, {"digest", digest}, {"size", sz}});
    img.layer_digests.push_back(digest);
    img.blobs[digest] = mt;
    img.size += sz;
  }
  auto plat = berth::image::HostPlatform();
  json cfg = {{"architecture", plat.architecture},
              {"os", "linux"},
              {"config", {{"Cmd", {"/bin/sh"}}}},
              {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
  auto write = [&](const std::string& s) {
    std::string d = berth::content::Sha256Digest(s);
    berth::fs::WriteFileAtomic(dir + "/blobs/sha256/" + d.substr(7), s);
    return d;
  };
  std::string c = cfg.dump();
  img.config_digest = write(c);
  json m = {{"schemaVersion", 2},
            {"mediaType", std::string(berth::image::mediatype::kOciManifest)},
            {"config",
             {{"mediaType", std::string(berth::image::mediatype::kOciConfig)},
              {"digest", img.config_digest},
              {"size", c.size()}}},
            {"layers", layers}};
  std::string ms = m.dump();
  img.manifest_digest = img.top_digest = write(ms);
  img.top_media_type = std::string(berth::image::mediatype::kOciManifest);
  berth::fs::WriteFileAtomic(dir + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  json idx = {{"schemaVersion", 2},
              {"manifests",
               json::array({{{"mediaType", img.top_media_type},
                             {"digest", img.top_digest},
                             {"size", ms.size()},
                             {"annotations", {{"org.opencontainers.image.ref.name", "v1"}}}}})}};
  berth::fs::WriteFileAtomic(dir + "/index.json", idx.dump());
  return img;
}

void SkopeoPush(const std::string& oci_dir, const std::string& ref) {
  ShOrDie("skopeo --insecure-policy copy --quiet --dest-tls-verify=false oci:" + Quote(oci_dir) +
          ":v1 docker://" + ref);
}

// PullImage then RemoveImage over a CRI socket; the pull's wall time in ms.
double CriPull(::runtime::v1::ImageService::Stub& img, const std::string& ref, const char* who) {
  ::runtime::v1::PullImageRequest req;
  req.mutable_image()->set_image(ref);
  ::runtime::v1::PullImageResponse resp;
  auto t0 = Clock::now();
  auto st = img.PullImage(berth::testing::Deadline(3600).get(), req, &resp);
  double ms = Ms(t0);
  if (!st.ok())
    throw std::runtime_error(std::string(who) + " PullImage " + ref + ": " + st.error_message());
  ::runtime::v1::RemoveImageRequest rm;
  rm.mutable_image()->set_image(ref);
  ::runtime::v1::RemoveImageResponse rmr;
  st = img.RemoveImage(berth::testing::Deadline(600).get(), rm, &rmr);
  if (!st.ok())
    throw std::runtime_error(std::string(who) + " RemoveImage " + ref + ": " + st.error_message());
  return ms;
}

// containerd with its CRI plugin on its own root, state and socket (and CNI/opt directories, so
// that nothing of the host's is used); the registry is plain http through a hosts.toml. Stopped
// by pid.
class Containerd {
 public:
  Containerd(const std::string& dir, const std::string& registry, bool spread) : dir_(dir) {
    berth::fs::MkdirAll(dir + "/certs.d/" + registry);
    berth::fs::WriteFileAtomic(dir + "/certs.d/" + registry + "/hosts.toml",
                               "server = \"http://" + registry + "\"\n[host.\"http://" + registry +
                                   "\"]\ncapabilities = [\"pull\", \"resolve\"]\n");
    sock_ = dir + "/containerd.sock";
    const std::string cri = "[plugins.\"io.containerd.grpc.v1.cri\"";
    berth::fs::WriteFileAtomic(dir + "/config.toml",
                               "version = 2\nroot = \"" + dir + "/root\"\nstate = \"" + dir +
                                   "/state\"\n[grpc]\naddress = \"" + sock_ +
                                   "\"\n[plugins.\"io.containerd.internal.v1.opt\"]\npath = \"" +
                                   dir + "/opt\"\n" + cri + "]\nenable_cdi = false\n" + cri +
                                   ".cni]\nbin_dir = \"" + dir + "/cni/bin\"\nconf_dir = \"" + dir +
                                   "/cni/conf\"\n" + cri + ".registry]\nconfig_path = \"" + dir +
                                   "/certs.d\"\n");
    log_ = dir + "/containerd.log";
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      std::string bin = *exec::LookPath("containerd"), cfg = dir + "/config.toml";
      ::execl(bin.c_str(), bin.c_str(), "--config", cfg.c_str(), nullptr);
      ::_exit(127);
    }
    for (int i = 0; i < 600 && !berth::testing::UnixSocketAccepts(sock_); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto ch = grpc::CreateChannel("unix:" + sock_, grpc::InsecureChannelCredentials());
    img_ = ::runtime::v1::ImageService::NewStub(ch);
    rt_ = ::runtime::v1::RuntimeService::NewStub(ch);
    for (int i = 0; i < 600; ++i) {
      ::runtime::v1::VersionResponse v;
      if (rt_->Version(berth::testing::Deadline(2).get(), {}, &v).ok()) {
        if (spread &&
            !SpreadSubdirs(dir + "/root/io.containerd.snapshotter.v1.overlayfs/snapshots"))
          throw std::runtime_error("--spread-containerd: cannot set FS_TOPDIR_FL");
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    throw std::runtime_error("containerd's CRI did not answer on " + sock_ + ":\n" +
                             berth::fs::ReadFile(log_).substr(0, 2000));
  }
  ~Containerd() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    berth::testing::UnmountAllBelow(dir_);
    berth::fs::RemoveAll(dir_);
  }
  double Pull(const std::string& ref) { return CriPull(*img_, ref, "containerd"); }

 private:
  std::string dir_, sock_, log_;
  pid_t pid_ = -1;
  std::unique_ptr<::runtime::v1::ImageService::Stub> img_;
  std::unique_ptr<::runtime::v1::RuntimeService::Stub> rt_;
};

// skopeo copy + decompress | tar -x of each layer, in order, into a new directory of a spread
// parent: like berth's snapshots, the limit does not create its files among the inodes that the
// last removed tree has just freed (ext4 without a journal scans past those for minutes).
double Limit(const std::string& ref, const std::string& dir) {
  static int n = 0;
  berth::fs::MkdirAll(dir);
  SpreadSubdirs(dir);
  std::string oci = dir + "/oci-" + std::to_string(n),
              rootfs = dir + "/rootfs-" + std::to_string(n);
  ++n;
  auto t0 = Clock::now();
  ShOrDie("skopeo --insecure-policy copy --quiet --src-tls-verify=false docker://" + ref +
          " oci:" + Quote(oci) + ":v1");
  json idx = json::parse(berth::fs::ReadFile(oci + "/index.json"));
  std::string md = idx["manifests"][0]["digest"];
  json m = json::parse(berth::fs::ReadFile(oci + "/blobs/sha256/" + md.substr(7)));
  berth::fs::MkdirAll(rootfs);
  for (const auto& l : m["layers"]) {
    std::string mt = l["mediaType"], d = l["digest"];
    std::string blob = oci + "/blobs/sha256/" + d.substr(7);
    std::string dec = mt.find("zstd") != std::string::npos ? "zstd -dc " : "igzip -dc ";
    ShOrDie(dec + Quote(blob) + " | tar -x -C " + Quote(rootfs));
  }
  double ms = Ms(t0);
  berth::fs::RemoveAll(oci);
  berth::fs::RemoveAll(rootfs);
  return ms;
}

std::string LoadAverage() {
  std::string l = berth::fs::ReadFile("/proc/loadavg");
  return l.substr(0, l.find(' ', l.find(' ', l.find(' ') + 1) + 1));
}

std::string Cell(const std::vector<double>& v) {
  if (v.empty()) return "-";
  char s[96];
  auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  if (v.size() == 1)
    std::snprintf(s, sizeof s, "%.0f", v[0]);
  else
    std::snprintf(s, sizeof s, "%.0f (%.0f-%.0f)", Median(v), *lo, *hi);
  return s;
}

std::string Ratio(double a, double d) {
  if (a <= 0 || d <= 0) return "-";
  char s[32];
  std::snprintf(s, sizeof s, "%.2f", a / d);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 5, small_runs = 20;
  int64_t mib = 1024;
  std::string only;
  bool use_containerd = true, spread_containerd = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc)
      runs = std::max(1, atoi(argv[++i]));
    else if (a == "--small-runs" && i + 1 < argc)
      small_runs = std::max(1, atoi(argv[++i]));
    else if (a == "--mib" && i + 1 < argc)
      mib = std::max(1, atoi(argv[++i]));
    else if (a == "--only" && i + 1 < argc)
      only = argv[++i];
    else if (a == "--no-containerd")
      use_containerd = false;
    else if (a == "--spread-containerd")
      spread_containerd = true;
    else {
      std::fprintf(stderr,
                   "usage: %s [--runs N] [--small-runs N] [--mib M] [--only busybox|big|big1|big8] "
                   "[--no-containerd] [--spread-containerd]\n",
                   argv[0]);
      return 2;
    }
  }
  if (std::string why = berth::testing::RegistrySkipReason(); !why.empty()) {
    std::printf("SKIP: %s\n", why.c_str());
    return 0;
  }
  bool have_skopeo = exec::LookPath("skopeo").has_value();
  bool have_limit = have_skopeo && exec::LookPath("igzip") && exec::LookPath("zstd");
  if (!have_skopeo && only != "busybox") {
    std::printf("SKIP: the big images are pushed with skopeo, which is not installed\n");
    only = "busybox";
  }
  use_containerd = use_containerd && exec::LookPath("containerd") && ::geteuid() == 0;
  std::printf(
      "machine: %u cores (shared with other work), load average %s; containerd: %s; limit "
      "(skopeo + igzip/zstd + tar): %s\n",
      std::thread::hardware_concurrency(), LoadAverage().c_str(),
      !use_containerd     ? "skipped"
      : spread_containerd ? "yes, its snapshots directory spread (FS_TOPDIR_FL) like berth's"
                          : "yes",
      have_limit ? "yes" : "skipped");
  try {
    berth::testing::TempDir tmp("berth-bench-pull");
    berth::testing::LocalRegistry registry;
    struct Case {
      std::string name, ref;
      int64_t size;
      int runs;
    };
    std::vector<Case> cases;
    if (only.empty() || only == "busybox") {
      auto img = berth::testing::BuildTestImage(tmp / "busybox", {});
      berth::testing::PushImage(img, registry.host(), "bench/busybox:v1");
      cases.push_back({"busybox (3 layers, gzip)", registry.host() + "/bench/busybox:v1", img.size,
                       small_runs});
    }
    for (int parts : {1, 8}) {
      if (!(only.empty() || only == "big" || only == "big" + std::to_string(parts))) continue;
      auto lists = PickFiles(mib << 20, parts);
      for (std::string codec : {"gzip", "zstd"}) {
        std::string name = "big-" + std::to_string(parts) + "-" + codec;
        auto t0 = Clock::now();
        auto img = MakeImage(tmp / name, lists, codec);
        SkopeoPush(tmp / name, registry.host() + "/bench/" + name + ":v1");
        berth::fs::RemoveAll(tmp / name);
        std::fprintf(stderr, "built %s in %.0f s\n", name.c_str(), Ms(t0) / 1000);
        cases.push_back(
            {std::to_string(mib) + " MiB of /usr, " + std::to_string(parts) + " layer(s), " + codec,
             registry.host() + "/bench/" + name + ":v1", img.size, runs});
      }
    }
    berth::testing::BerthdProc berthd(tmp / "berthd", BERTHD_PATH, BERTH_MONITOR_PATH,
                                      BERTH_PAUSE_PATH);
    if (std::string why = berthd.Start(); !why.empty()) throw std::runtime_error(why);
    std::unique_ptr<Containerd> ctd;
    if (use_containerd)
      ctd = std::make_unique<Containerd>(tmp / "containerd", registry.host(), spread_containerd);
    std::printf(
        "\n| image | compressed MiB | berth ms | containerd ms | limit ms | berth/containerd | "
        "berth/limit |\n");
    std::printf("|---|---|---|---|---|---|---|\n");
    for (const auto& c : cases) {
      if (c.size < (64 << 20)) {  // a first pull (not counted): connections, caches, page cache
        CriPull(berthd.img(), c.ref, "berthd");
        if (ctd) ctd->Pull(c.ref);
      }
      std::vector<double> b, k, l;
      // Each timed pull starts with no dirty pages left by the one before (sync, not timed), so
      // that none pays for another's writeback.
      for (int r = 0; r < c.runs; ++r) {
        ::sync();
        b.push_back(CriPull(berthd.img(), c.ref, "berthd"));
        ::sync();
        if (ctd) k.push_back(ctd->Pull(c.ref));
        ::sync();
        if (have_limit && (r < runs || r % 5 == 0)) l.push_back(Limit(c.ref, tmp / "limit"));
      }
      std::printf("| %s | %.1f | %s | %s | %s | %s | %s |\n", c.name.c_str(),
                  static_cast<double>(c.size) / (1 << 20), Cell(b).c_str(), Cell(k).c_str(),
                  Cell(l).c_str(), Ratio(Median(b), Median(k)).c_str(),
                  Ratio(Median(b), Median(l)).c_str());
      std::fflush(stdout);
    }
    std::printf(
        "\nmedian (min-max) of %d runs each (busybox: %d), alternating; load average at the end "
        "%s\n",
        runs, small_runs, LoadAverage().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_pull: %s\n", e.what());
    return 1;
  }
  return 0;
}
