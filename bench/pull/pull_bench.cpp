// Times pull + unpack from a local docker-registry, in one run, by:
//   - berth's ImageService (fetch -> verify -> decompress -> unpack pipelines, layers in parallel);
//   - containerd 1.6 (`ctr images pull`, which unpacks too) on its own root, state and socket,
//     when containerd and ctr are installed;
//   - the machine's limit: `skopeo copy` to an OCI directory, then `igzip -dc | tar -x` (or
//     `zstd -dc | tar -x`) of every layer in order.
// Images: the busybox test image, and images made of real files of this machine (about --mib MiB
// of /usr/lib and /usr/share) in one layer and in eight, gzip (gzip -6) and zstd (zstd -3).
// Runs alternate; medians and ratios are printed.
//
//   bench_pull [--runs N] [--mib M] [--only busybox|big] [--no-containerd]
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
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
#include "image/service.h"
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

// containerd on its own root, state and socket; stopped by pid.
class Containerd {
 public:
  explicit Containerd(const std::string& dir) : dir_(dir) {
    berth::fs::MkdirAll(dir);
    berth::fs::WriteFileAtomic(dir + "/config.toml",
                               "version = 2\n"
                               "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n");
    sock_ = dir + "/containerd.sock";
    pid_ = exec::Spawn({*exec::LookPath("containerd"), "--config", dir + "/config.toml", "--root",
                        dir + "/root", "--state", dir + "/state", "--address", sock_},
                       {}, true);
    for (int i = 0; i < 200 && !Ctr({"version"}).ok(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!Ctr({"version"}).ok()) throw std::runtime_error("containerd did not start");
  }
  ~Containerd() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    berth::testing::UnmountAllBelow(dir_);
    berth::fs::RemoveAll(dir_);
  }
  exec::Result Ctr(std::vector<std::string> args) {
    std::vector<std::string> argv = {*exec::LookPath("ctr"), "--address", sock_, "--namespace",
                                     "bench"};
    argv.insert(argv.end(), args.begin(), args.end());
    exec::Options o;
    o.timeout = std::chrono::milliseconds(1800000);
    return exec::Run(argv, o);
  }
  double Pull(const std::string& ref) {
    auto t0 = Clock::now();
    auto r = Ctr({"images", "pull", "--plain-http", ref});
    double ms = Ms(t0);
    if (!r.ok()) throw std::runtime_error("ctr pull " + ref + ": " + r.err.substr(0, 300));
    Ctr({"images", "rm", "--sync", ref});
    return ms;
  }

 private:
  std::string dir_, sock_;
  int pid_ = -1;
};

// skopeo copy + decompress | tar -x of each layer, in order.
double Limit(const std::string& ref, const std::string& dir) {
  berth::fs::MkdirAll(dir);
  auto t0 = Clock::now();
  ShOrDie("skopeo --insecure-policy copy --quiet --src-tls-verify=false docker://" + ref +
          " oci:" + Quote(dir + "/oci") + ":v1");
  json idx = json::parse(berth::fs::ReadFile(dir + "/oci/index.json"));
  std::string md = idx["manifests"][0]["digest"];
  json m = json::parse(berth::fs::ReadFile(dir + "/oci/blobs/sha256/" + md.substr(7)));
  berth::fs::MkdirAll(dir + "/rootfs");
  for (const auto& l : m["layers"]) {
    std::string mt = l["mediaType"], d = l["digest"];
    std::string blob = dir + "/oci/blobs/sha256/" + d.substr(7);
    std::string dec = mt.find("zstd") != std::string::npos ? "zstd -dc " : "igzip -dc ";
    ShOrDie(dec + Quote(blob) + " | tar -x -C " + Quote(dir + "/rootfs"));
  }
  double ms = Ms(t0);
  berth::fs::RemoveAll(dir);
  return ms;
}

double BerthPull(const std::string& ref, const std::string& root) {
  double ms;
  {
    berth::image::ImageService::Options opts;
    opts.root = root;
    berth::image::ImageService svc(opts);
    auto t0 = Clock::now();
    svc.Pull(ref, {});
    ms = Ms(t0);
  }
  berth::testing::UnmountAllBelow(root);
  berth::fs::RemoveAll(root);
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 3;
  int64_t mib = 1024;
  std::string only;
  bool use_containerd = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) runs = std::max(1, atoi(argv[++i]));
    else if (a == "--mib" && i + 1 < argc)
      mib = std::max(1, atoi(argv[++i]));
    else if (a == "--only" && i + 1 < argc)
      only = argv[++i];
    else if (a == "--no-containerd")
      use_containerd = false;
    else {
      std::fprintf(stderr,
                   "usage: %s [--runs N] [--mib M] [--only busybox|big] [--no-containerd]\n",
                   argv[0]);
      return 2;
    }
  }
  if (std::string why = berth::testing::RegistrySkipReason(); !why.empty()) {
    std::printf("SKIP: %s\n", why.c_str());
    return 0;
  }
  spdlog::set_level(spdlog::level::warn);
  bool have_skopeo = exec::LookPath("skopeo").has_value();
  bool have_limit = have_skopeo && exec::LookPath("igzip") && exec::LookPath("zstd");
  if (!have_skopeo && only != "busybox") {
    std::printf("SKIP: the big images are pushed with skopeo, which is not installed\n");
    only = "busybox";
  }
  use_containerd =
      use_containerd && exec::LookPath("containerd") && exec::LookPath("ctr") && ::geteuid() == 0;
  std::printf(
      "machine: %u cores (shared with other work); containerd: %s; limit (skopeo + igzip/zstd + "
      "tar): %s\n",
      std::thread::hardware_concurrency(), use_containerd ? "yes" : "skipped",
      have_limit ? "yes" : "skipped");
  try {
    berth::testing::TempDir tmp("berth-bench-pull");
    berth::testing::LocalRegistry registry;
    struct Case {
      std::string name, ref;
      int64_t size;
    };
    std::vector<Case> cases;
    if (only.empty() || only == "busybox") {
      auto img = berth::testing::BuildTestImage(tmp / "busybox", {});
      berth::testing::PushImage(img, registry.host(), "bench/busybox:v1");
      cases.push_back(
          {"busybox (3 layers, gzip)", registry.host() + "/bench/busybox:v1", img.size});
    }
    if (only.empty() || only == "big") {
      for (int parts : {1, 8}) {
        auto lists = PickFiles(mib << 20, parts);
        for (std::string codec : {"gzip", "zstd"}) {
          std::string name = "big-" + std::to_string(parts) + "-" + codec;
          auto t0 = Clock::now();
          auto img = MakeImage(tmp / name, lists, codec);
          SkopeoPush(tmp / name, registry.host() + "/bench/" + name + ":v1");
          berth::fs::RemoveAll(tmp / name);
          std::fprintf(stderr, "built %s in %.0f s\n", name.c_str(), Ms(t0) / 1000);
          cases.push_back({std::to_string(mib) + " MiB of /usr, " + std::to_string(parts) +
                               " layer(s), " + codec,
                           registry.host() + "/bench/" + name + ":v1", img.size});
        }
      }
    }
    std::unique_ptr<Containerd> ctd;
    if (use_containerd) ctd = std::make_unique<Containerd>(tmp / "containerd");
    std::printf(
        "\n| image | compressed MiB | berth ms | containerd ms | limit ms | berth/containerd | "
        "berth/limit |\n");
    std::printf("|---|---|---|---|---|---|---|\n");
    for (const auto& c : cases) {
      std::vector<double> b, k, l;
      for (int r = 0; r < runs; ++r) {
        b.push_back(BerthPull(c.ref, tmp / "berth-root"));
        if (ctd) k.push_back(ctd->Pull(c.ref));
        if (have_limit) l.push_back(Limit(c.ref, tmp / "limit"));
      }
      double mb = Median(b), mk = Median(k), ml = Median(l);
      auto cell = [](double v) {
        return v > 0 ? std::to_string(static_cast<long>(v + 0.5)) : std::string("-");
      };
      auto ratio = [](double a, double d) {
        char s[32];
        std::snprintf(s, sizeof s, "%.2f", d > 0 ? a / d : 0.0);
        return d > 0 ? std::string(s) : std::string("-");
      };
      std::printf("| %s | %.1f | %s | %s | %s | %s | %s |\n", c.name.c_str(),
                  static_cast<double>(c.size) / (1 << 20), cell(mb).c_str(), cell(mk).c_str(),
                  cell(ml).c_str(), ratio(mb, mk).c_str(), ratio(mb, ml).c_str());
      std::fflush(stdout);
    }
    std::printf("\nmedians of %d runs each, alternating\n", runs);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_pull: %s\n", e.what());
    return 1;
  }
  return 0;
}
