// Times berth's Pull (resolve, download, verify, unpack into snapshots, record) of a 3-layer image
// from a local docker-registry and `skopeo copy` of the same image into an OCI layout directory
// (download and verify only), alternating runs, and prints medians and their ratio.
//
//   bench_pull [--runs N] [--filler-mib M] [--snapshotter overlayfs|native]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common/exec.h"
#include "common/fs.h"
#include "image/service.h"
#include "image_support.h"
#include "support/support.h"

using Clock = std::chrono::steady_clock;

namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 5;
  size_t filler_mib = 16;
  std::string snapshotter = "overlayfs";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) runs = std::max(1, atoi(argv[++i]));
    else if (a == "--filler-mib" && i + 1 < argc) filler_mib = static_cast<size_t>(atoi(argv[++i]));
    else if (a == "--snapshotter" && i + 1 < argc) snapshotter = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--runs N] [--filler-mib M] [--snapshotter overlayfs|native]\n", argv[0]);
      return 2;
    }
  }
  if (std::string why = berth::testing::RegistrySkipReason(); !why.empty()) {
    std::printf("SKIP: %s\n", why.c_str());
    return 0;
  }
  auto skopeo = berth::exec::LookPath("skopeo");
  try {
    berth::testing::TempDir tmp("berth-bench-pull");
    berth::testing::LocalRegistry registry;
    berth::testing::TestImageOptions o;
    o.id = "bench";
    o.filler_bytes = filler_mib << 20;
    auto img = berth::testing::BuildTestImage(tmp / "oci", o);
    berth::testing::PushImage(img, registry.host(), "bench/busybox:v1");
    const std::string ref = registry.host() + "/bench/busybox:v1";
    std::printf("image: %zu layers, %lld bytes compressed (config+layers), registry %s\n", img.layer_digests.size(),
                static_cast<long long>(img.size), registry.host().c_str());

    std::vector<double> berth_ms, skopeo_ms;
    for (int r = 0; r < runs; ++r) {
      {
        berth::image::ImageService::Options opts;
        opts.root = tmp / ("root-" + std::to_string(r));
        opts.snapshotter = snapshotter;
        berth::image::ImageService svc(opts);
        auto t0 = Clock::now();
        svc.Pull(ref, {});
        berth_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      }
      berth::testing::UnmountAllBelow(tmp / ("root-" + std::to_string(r)));
      berth::fs::RemoveAll(tmp / ("root-" + std::to_string(r)));
      if (skopeo) {
        std::string dest = tmp / ("skopeo-" + std::to_string(r));
        berth::exec::Options eo;
        eo.timeout = std::chrono::milliseconds(300000);
        auto t0 = Clock::now();
        auto res = berth::exec::Run({*skopeo, "--insecure-policy", "copy", "--quiet", "--src-tls-verify=false",
                                     "docker://" + ref, "oci:" + dest + ":v1"},
                                    eo);
        double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        if (!res.ok()) {
          std::fprintf(stderr, "skopeo copy failed: %s\n", berth::exec::Describe({"skopeo", "copy"}, res).c_str());
          skopeo.reset();
        } else {
          skopeo_ms.push_back(ms);
        }
        berth::fs::RemoveAll(dest);
      }
    }
    double b = Median(berth_ms);
    std::printf("berth pull+unpack (%s): median %.1f ms over %d runs\n", snapshotter.c_str(), b, runs);
    if (!skopeo_ms.empty()) {
      double s = Median(skopeo_ms);
      std::printf("skopeo copy to oci dir:     median %.1f ms over %zu runs\n", s, skopeo_ms.size());
      std::printf("ratio berth/skopeo: %.2f\n", s > 0 ? b / s : 0.0);
    } else {
      std::printf("skopeo not available: no comparison\n");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_pull: %s\n", e.what());
    return 1;
  }
  return 0;
}
