// Measures berthd's start-up: fork/exec until the socket accepts a connection, and until a gRPC
// call (Admin.ListPlugins) answers; then its idle memory (VmRSS, RssAnon from /proc/PID/status).
// All runs share one --state directory, so the first run proves rro support and the others start
// with the on-disk probe caches (as a restart does); the first run is also reported on its own.
//
//   startup_bench [--berthd PATH] [--runs N] [--idle-ms MS] [-- extra berthd flags]
#include <fcntl.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "berth/admin/v1/admin.grpc.pb.h"
#include "support/support.h"

namespace {

using Clock = std::chrono::steady_clock;

long StatusKiB(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::strtol(line.c_str() + key.size() + 1, nullptr, 10);
  }
  return -1;
}

int Threads(pid_t pid) { return static_cast<int>(StatusKiB(pid, "Threads")); }

struct Stats {
  double min, median, p90, max;
};
Stats Summarise(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * (v.size() - 1) + 0.5))]; };
  return {v.front(), at(0.5), at(0.9), v.back()};
}

}  // namespace

int main(int argc, char** argv) {
  std::string berthd = BERTHD_PATH;
  int runs = 20;
  int idle_ms = 500;
  std::vector<std::string> extra;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--berthd" && i + 1 < argc) berthd = argv[++i];
    else if (a == "--runs" && i + 1 < argc) runs = std::max(1, std::atoi(argv[++i]));
    else if (a == "--idle-ms" && i + 1 < argc) idle_ms = std::atoi(argv[++i]);
    else if (a == "--") { for (++i; i < argc; ++i) extra.push_back(argv[i]); }
    else {
      std::fprintf(stderr, "usage: %s [--berthd PATH] [--runs N] [--idle-ms MS] [-- berthd flags]\n", argv[0]);
      return 2;
    }
  }

  char tmpl[] = "/tmp/berth-startup-XXXXXX";
  if (!::mkdtemp(tmpl)) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string dir = tmpl;
  ::chmod(tmpl, 0711);  // as /var/lib and /run are: user namespaces are proven, not ruled out
  const std::string sock = dir + "/berth.sock";
  const std::string cfg = dir + "/config.toml";
  std::ofstream(cfg) << "version = 3\n";

  std::vector<double> accept_ms, grpc_ms, rss_kib, anon_kib, threads;
  for (int run = 0; run < runs; ++run) {
    std::vector<std::string> args = {berthd, "-c", cfg, "--address", sock, "--root", dir + "/root",
                                     "--state", dir + "/state", "--log-level", "warn"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto t0 = Clock::now();
    pid_t pid = ::fork();
    if (pid == 0) {
      int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, 0);
      ::dup2(null, 1);
      ::dup2(null, 2);
      std::vector<char*> cargv;
      for (auto& s : args) cargv.push_back(s.data());
      cargv.push_back(nullptr);
      ::execv(cargv[0], cargv.data());
      ::_exit(127);
    }
    bool ok = false;
    for (;;) {
      if (berth::testing::UnixSocketAccepts(sock)) {
        ok = true;
        break;
      }
      int st;
      if (::waitpid(pid, &st, WNOHANG) == pid) break;
      if (Clock::now() - t0 > std::chrono::seconds(30)) break;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (!ok) {
      std::fprintf(stderr, "berthd did not serve on %s (run %d)\n", sock.c_str(), run);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      return 1;
    }
    auto t_accept = Clock::now();
    auto stub = berth::admin::v1::Admin::NewStub(
        grpc::CreateChannel("unix:" + sock, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    berth::admin::v1::ListPluginsResponse resp;
    auto status = stub->ListPlugins(&ctx, berth::admin::v1::ListPluginsRequest(), &resp);
    auto t_grpc = Clock::now();
    if (!status.ok()) {
      std::fprintf(stderr, "ListPlugins failed: %s\n", status.error_message().c_str());
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      return 1;
    }
    accept_ms.push_back(std::chrono::duration<double, std::milli>(t_accept - t0).count());
    grpc_ms.push_back(std::chrono::duration<double, std::milli>(t_grpc - t0).count());
    if (run == 0 || run == runs - 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(idle_ms));
    }
    rss_kib.push_back(static_cast<double>(StatusKiB(pid, "VmRSS")));
    anon_kib.push_back(static_cast<double>(StatusKiB(pid, "RssAnon")));
    threads.push_back(Threads(pid));
    ::kill(pid, SIGTERM);
    int st = 0;
    ::waitpid(pid, &st, 0);
  }
  std::string rm = "rm -rf " + dir;
  if (std::system(rm.c_str()) != 0) std::fprintf(stderr, "failed to remove %s\n", dir.c_str());

  auto a = Summarise(accept_ms), g = Summarise(grpc_ms), r = Summarise(rss_kib), n = Summarise(anon_kib),
       t = Summarise(threads);
  std::printf("berthd start-up over %d runs (%s)\n", runs, berthd.c_str());
  std::printf("  socket accepts   ms: min %.1f  median %.1f  p90 %.1f  max %.1f\n", a.min, a.median, a.p90, a.max);
  std::printf("  first gRPC call  ms: min %.1f  median %.1f  p90 %.1f  max %.1f\n", g.min, g.median, g.p90, g.max);
  std::printf("  idle VmRSS      MiB: median %.1f  max %.1f\n", r.median / 1024, r.max / 1024);
  std::printf("  idle RssAnon    MiB: median %.1f  max %.1f\n", n.median / 1024, n.max / 1024);
  std::printf("  threads            : median %.0f  max %.0f\n", t.median, t.max);
  // Run 0 starts with an empty state directory: it runs the kernel probe and `runc features`;
  // the others answer from the probe caches under --state, as a restarted berthd does.
  std::printf("  first run (cold probe caches) ms: socket %.1f  gRPC %.1f\n", accept_ms.front(), grpc_ms.front());
  std::string load;
  if (std::ifstream la("/proc/loadavg"); std::getline(la, load)) std::printf("  load average       : %s\n", load.c_str());
  return 0;
}
