// Times berth's layer unpack (ApplyLayer: read -> decompress + DiffID hash -> tar extract, three
// threads) of one blob file against the same blob through `<igzip|zstd|cat> -dc | tar -x`, runs
// alternating, each into a new directory under --dir (default: beside the blob), which gets
// FS_TOPDIR_FL as berth's snapshots directory has (--no-spread: not). The unpack half of
// bench_pull without the registry, for profiling (perf record -g -- bench_unpack BLOB).
//
//   bench_unpack BLOB [--runs N] [--dir DIR] [--no-limit] [--no-spread]
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <unistd.h>
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

// CPU seconds (user + system) of this process's threads so far, finished ones included.
double CpuSeconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
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

bool SpreadSubdirs(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  int flags = 0;
  bool ok = ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 &&
            (flags |= FS_TOPDIR_FL, ::ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0);
  ::close(fd);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s BLOB [--runs N] [--dir DIR] [--no-limit] [--no-spread]\n",
                 argv[0]);
    return 2;
  }
  std::string blob = argv[1], parent = blob + ".unpack";
  int runs = 3;
  bool limit = true, spread = true;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc)
      runs = std::max(1, atoi(argv[++i]));
    else if (a == "--dir" && i + 1 < argc)
      parent = argv[++i];
    else if (a == "--no-limit")
      limit = false;
    else if (a == "--no-spread")
      spread = false;
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  std::string dec = Decoder(blob);
  std::vector<double> b, l;
  try {
    berth::fs::MkdirAll(parent);
    if (spread) SpreadSubdirs(parent);
    for (int r = 0; r < runs; ++r) {
      std::string dir = parent + "/" + std::to_string(::getpid()) + "-" + std::to_string(r);
      berth::fs::MkdirAll(dir);
      double cpu0 = CpuSeconds();
      auto t0 = Clock::now();
      auto res = berth::image::ApplyLayer(blob, dir, true);
      b.push_back(Ms(t0));
      std::fprintf(stderr, "berth %.0f ms, %.0f ms of CPU (%s, %lld bytes of tar)\n", b.back(),
                   (CpuSeconds() - cpu0) * 1000, res.diff_id.c_str(),
                   static_cast<long long>(res.size));
      berth::fs::RemoveAll(dir);
      if (!limit) continue;
      dir += "-limit";
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
