// Times berth's layer unpack (ApplyLayer: read -> decompress + DiffID hash -> tar extract, three
// threads) of one blob file against the same blob through `<igzip|zstd|cat> -dc | tar -x`, runs
// alternating, into fresh directories under --dir (default: beside the blob). The unpack half of
// bench_pull without the registry, for profiling (perf record -g -- bench_unpack BLOB).
//
//   bench_unpack BLOB [--runs N] [--dir DIR] [--no-limit]
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "common/exec.h"
#include "common/fs.h"
#include "image/unpack.h"

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

std::string Decoder(const std::string& blob) {
  std::string head(4, '\0');
  FILE* f = std::fopen(blob.c_str(), "rb");
  size_t n = f ? std::fread(head.data(), 1, 4, f) : 0;
  if (f) std::fclose(f);
  head.resize(n);
  if (head.size() >= 2 && static_cast<unsigned char>(head[0]) == 0x1f &&
      static_cast<unsigned char>(head[1]) == 0x8b)
    return "igzip -dc";
  if (head.size() >= 4 && head == std::string("\x28\xb5\x2f\xfd", 4)) return "zstd -dc";
  return "cat";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s BLOB [--runs N] [--dir DIR] [--no-limit]\n", argv[0]);
    return 2;
  }
  std::string blob = argv[1], dir = blob + ".unpack";
  int runs = 3;
  bool limit = true;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc)
      runs = std::max(1, atoi(argv[++i]));
    else if (a == "--dir" && i + 1 < argc)
      dir = argv[++i];
    else if (a == "--no-limit")
      limit = false;
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  std::string dec = Decoder(blob);
  std::vector<double> b, l;
  try {
    for (int r = 0; r < runs; ++r) {
      berth::fs::RemoveAll(dir);
      berth::fs::MkdirAll(dir);
      auto t0 = Clock::now();
      auto res = berth::image::ApplyLayer(blob, dir, true);
      b.push_back(Ms(t0));
      std::fprintf(stderr, "berth %.0f ms (%s, %lld bytes of tar)\n", b.back(), res.diff_id.c_str(),
                   static_cast<long long>(res.size));
      berth::fs::RemoveAll(dir);
      if (!limit) continue;
      berth::fs::MkdirAll(dir);
      t0 = Clock::now();
      berth::exec::Options o;
      o.timeout = std::chrono::minutes(30);
      auto x =
          berth::exec::Run({"/bin/sh", "-c", dec + " '" + blob + "' | tar -x -C '" + dir + "'"}, o);
      if (!x.ok()) throw std::runtime_error("limit: " + x.err);
      l.push_back(Ms(t0));
      std::fprintf(stderr, "limit %.0f ms (%s | tar -x)\n", l.back(), dec.c_str());
      berth::fs::RemoveAll(dir);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_unpack: %s\n", e.what());
    return 1;
  }
  std::printf("unpack of %s: berth %.0f ms", blob.c_str(), Median(b));
  if (limit)
    std::printf(", %s | tar -x %.0f ms, ratio %.2f", dec.c_str(), Median(l), Median(b) / Median(l));
  std::printf(" (medians of %d runs)\n", runs);
  return 0;
}
