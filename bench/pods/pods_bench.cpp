// Pods and containers through the real berthd: per-pod cost of a pod sandbox + one container
// (RunPodSandbox, CreateContainer, StartContainer, [exit], StopPodSandbox, RemovePodSandbox) over
// the CRI socket, against the same container through a bare `runc run` in the same run; berthd
// VmRSS/RssAnon idle and with running containers; berth-monitor RSS; ListContainers and
// ListPodSandbox round trips with many containers. Needs root, runc and busybox-static.
//
// berthd runs from this build tree (or --berthd) with a temporary root, state, socket and config
// (restrict_oom_score_adj = true); the busybox test image is imported from an OCI archive.
//
//   pods_bench [--pods N] [--running N] [--list N] [--list-calls N] [--warmup N]
//              [--runtime runc|crun] [--berthd PATH] [--monitor PATH] [--pause PATH]
//              [--log-level LEVEL] [--strace FILE] [--keep] [--metrics | --metrics-pair]
//
// --metrics turns berthd's [metrics] endpoint on (with grpc_histogram) and times scrapes of
// /v1/metrics with the `--list` containers present; compare the other figures with a run without.
// --metrics-pair measures only what metrics cost, both sides in one run: two berthds, [metrics]
// off and on, the same `true` pods alternating between them, and their idle VmRSS.
//
// --strace FILE runs berthd under `strace -f --seccomp-bpf` (execve, clone, fsync, mount, umount2,
// unshare, setns) and prints, for the `true` pods, which runtime and monitor processes and which
// slow syscalls each CRI call waited for; tracing inflates these timings, so compare them with
// each other, not with an untraced run.
#include "runtime/v1/api.grpc.pb.h"  // first: its enum Signal names collide with <signal.h> macros

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "berth/images/v1/images.grpc.pb.h"
#include "common/exec.h"
#include "image_support.h"
#include "runtime/hostcompat.h"
#include "support/support.h"

namespace v1 = runtime::v1;
using Clock = std::chrono::steady_clock;

namespace {

const char* kImage = "docker.io/bench/busybox:pods";

volatile sig_atomic_t g_interrupted = 0;
void OnSignal(int) { g_interrupted = 1; }
void CheckInterrupted() {
  if (g_interrupted) throw std::runtime_error("interrupted");
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Wall clock in seconds (strace -ttt and CRI timestamps are wall clock).
double WallNow() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

struct Stats {
  size_t n = 0;
  double min = 0, median = 0, p90 = 0, max = 0;
};
Stats Summarise(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    return v[std::min(v.size() - 1,
                      static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5))];
  };
  s.n = v.size();
  s.min = v.front();
  s.median = at(0.5);
  s.p90 = at(0.9);
  s.max = v.back();
  return s;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A "Key:   N kB" field of /proc/PID/status (or smaps_rollup), in KiB; -1 when absent.
long ProcKiB(int pid, const std::string& key, const char* file = "status") {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0)
      return std::strtol(line.c_str() + key.size() + 1, nullptr, 10);
  }
  return -1;
}

// CPU time of a process in ms: its own threads (utime+stime) and its reaped children
// (cutime+cstime).
std::pair<double, double> CpuMs(int pid) {
  std::string st = ReadAll("/proc/" + std::to_string(pid) + "/stat");
  size_t rp = st.rfind(')');
  if (rp == std::string::npos) return {0, 0};
  std::istringstream in(st.substr(rp + 2));
  std::vector<std::string> f;
  std::string x;
  while (in >> x) f.push_back(x);
  if (f.size() < 15) return {0, 0};
  // f[0] is field 3 (state): utime = field 14, stime 15, cutime 16, cstime 17.
  double tick = 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
  return {(std::stod(f[11]) + std::stod(f[12])) * tick,
          (std::stod(f[13]) + std::stod(f[14])) * tick};
}

// Major page faults (pages read back from disk): of the process, and of the whole machine.
long MajorFaults(int pid) {
  std::string st = ReadAll("/proc/" + std::to_string(pid) + "/stat");
  size_t rp = st.rfind(')');
  if (rp == std::string::npos) return 0;
  std::istringstream in(st.substr(rp + 2));
  std::vector<std::string> f;
  std::string x;
  while (in >> x) f.push_back(x);
  return f.size() > 9 ? std::stol(f[9]) : 0;  // field 12: majflt
}
long MachineMajorFaults() {
  std::istringstream in(ReadAll("/proc/vmstat"));
  std::string k;
  long v = 0;
  while (in >> k >> v) {
    if (k == "pgmajfault") return v;
  }
  return 0;
}

std::string Cmdline(int pid) {
  std::string s = ReadAll("/proc/" + std::to_string(pid) + "/cmdline");
  std::replace(s.begin(), s.end(), '\0', ' ');
  return s;
}

std::string Mib(long kib) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(kib) / 1024.0);
  return buf;
}

std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

// Runs a command with stdio on /dev/null (stderr into `err_file` when given) and waits for it;
// returns its exit status (128+signal when killed).
// A runtime command line goes through berth's host workaround (crun on hybrid cgroup hosts runs
// in a private mount namespace without /sys/fs/cgroup/unified), as berthd runs it.
int RunQuiet(const std::vector<std::string>& cmd, const std::string& err_file = "") {
  std::vector<std::string> argv = berth::runtime::RuntimeArgv(cmd);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork: " + std::string(strerror(errno)));
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    int err = err_file.empty() ? null : open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(null, 0);
    dup2(null, 1);
    dup2(err >= 0 ? err : null, 2);
    execvp(args[0], args.data());
    _exit(127);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// Waits until process `pid` (not necessarily a child) has exited; false on timeout.
bool WaitExit(int pid, int timeout_ms = 30000) {
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return true;  // already gone
  struct pollfd p = {fd, POLLIN, 0};
  int rc;
  do {
    rc = poll(&p, 1, timeout_ms);
  } while (rc < 0 && errno == EINTR);
  close(fd);
  return rc > 0;
}

int ReadPid(const std::string& file) { return std::atoi(ReadAll(file).c_str()); }

std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 120) {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return c;
}

void Check(const grpc::Status& st, const std::string& what) {
  if (!st.ok()) {
    throw std::runtime_error(what + ": " + std::to_string(st.error_code()) + ": " +
                             st.error_message());
  }
}

// ---------------------------------------------------------------------------------------------

struct Config {
  int pods = 20, running = 100, list = 1000, list_calls = 50, warmup = 2, per_list_pod = 50;
  std::string runtime = "runc";
  std::string berthd = BERTHD_PATH, monitor = BERTH_MONITOR_PATH, pause = BERTH_PAUSE_PATH;
  std::string log_level = "info";
  std::string strace_file;
  bool keep = false;
  bool metrics = false;  // [metrics] on (grpc_histogram too); scrapes timed with `list` containers
  bool metrics_pair = false;  // only the cost of [metrics]: two berthds, off and on, side by side
};

class Berthd {
 public:
  Berthd(const Config& cfg, const std::string& dir) : cfg_(cfg), dir_(dir) {
    socket_ = dir + "/berth.sock";
    config_ = dir + "/config.toml";
    log_ = dir + "/berthd.log";
    const std::string p = "[plugins.\"io.containerd.cri.v1.runtime\"";
    std::ostringstream c;
    c << "version = 3\n"
      << "root = \"" << dir << "/root\"\n"
      << "state = \"" << dir << "/state\"\n"
      << "[grpc]\n"
      << "address = \"" << socket_ << "\"\n"
      << p << "]\n"
      << "restrict_oom_score_adj = true\n"
      << p << ".containerd]\n"
      << "default_runtime_name = \"" << cfg.runtime << "\"\n"
      << p << ".containerd.runtimes." << cfg.runtime << "]\n"
      << "runtime_type = \"io.containerd.runc.v2\"\n"
      << p << ".containerd.runtimes." << cfg.runtime << ".options]\n"
      << "BinaryName = \"" << cfg.runtime << "\"\n";
    if (cfg.metrics) c << "[metrics]\naddress = \"127.0.0.1:0\"\ngrpc_histogram = true\n";
    berth::testing::WriteFile(config_, c.str());
  }
  ~Berthd() { Stop(); }

  void Start() {
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork: " + std::string(strerror(errno)));
    if (pid_ == 0) {
      int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      if (!cfg_.monitor.empty()) setenv("BERTH_MONITOR_PATH", cfg_.monitor.c_str(), 1);
      if (!cfg_.pause.empty()) setenv("BERTH_PAUSE_PATH", cfg_.pause.c_str(), 1);
      if (!cfg_.strace_file.empty()) {
        // --seccomp-bpf only works for a tracee started by strace (not with -p): far less overhead.
        execlp("strace", "strace", "-f", "-ttt", "-T", "-s", "256", "--seccomp-bpf", "-e",
               "trace=execve,clone,clone3,fork,vfork,fsync,fdatasync,mount,umount2,unshare,setns",
               "-o", cfg_.strace_file.c_str(), cfg_.berthd.c_str(), "--config", config_.c_str(),
               "--log-level", cfg_.log_level.c_str(), nullptr);
        _exit(127);
      }
      execl(cfg_.berthd.c_str(), cfg_.berthd.c_str(), "--config", config_.c_str(), "--log-level",
            cfg_.log_level.c_str(), nullptr);
      _exit(127);
    }
    channel_ = grpc::CreateChannel("unix:" + socket_, grpc::InsecureChannelCredentials());
    rt_ = v1::RuntimeService::NewStub(channel_);
    images_ = berth::images::v1::Images::NewStub(channel_);
    for (int i = 0; i < 600; ++i) {
      CheckInterrupted();
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("berthd exited during start-up:\n" + ReadAll(log_));
      }
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
      v1::VersionResponse resp;
      if (access(socket_.c_str(), F_OK) == 0 && rt_->Version(&ctx, {}, &resp).ok()) {
        daemon_pid_ = pid_;
        if (!cfg_.strace_file.empty()) {  // berthd is strace's child
          std::istringstream kids(ReadAll("/proc/" + std::to_string(pid_) + "/task/" +
                                          std::to_string(pid_) + "/children"));
          kids >> daemon_pid_;
        }
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    throw std::runtime_error("berthd did not answer on " + socket_ + ":\n" + ReadAll(log_));
  }

  void Stop() {
    if (pid_ <= 0) return;
    berth::testing::StopChild(pid_, SIGTERM, daemon_pid_);
    pid_ = daemon_pid_ = -1;
  }

  int pid() const { return daemon_pid_; }  // berthd itself (pid_ is strace with --strace)
  const std::string& log() const { return log_; }
  v1::RuntimeService::Stub& rt() { return *rt_; }
  const std::string& socket() const { return socket_; }
  // The metrics port berthd logged ("metrics on ... (port N)"); 0 when metrics are off.
  int MetricsPort() const {
    std::string log = ReadAll(log_);
    auto at = log.find("metrics on ");
    if (at == std::string::npos) return 0;
    auto p = log.find("(port ", at);
    return p == std::string::npos ? 0 : std::atoi(log.c_str() + p + 6);
  }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  berth::images::v1::Images::Stub& images() { return *images_; }

 private:
  const Config& cfg_;
  std::string dir_, socket_, config_, log_;
  pid_t pid_ = -1, daemon_pid_ = -1;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::RuntimeService::Stub> rt_;
  std::unique_ptr<berth::images::v1::Images::Stub> images_;
};

// CONTAINER_STOPPED events from GetContainerEvents, with the wall time each arrived.
class ExitEvents {
 public:
  explicit ExitEvents(v1::RuntimeService::Stub& rt) : rt_(rt) {
    reader_ = rt_.GetContainerEvents(&ctx_, v1::GetEventsRequest());
    thread_ = std::thread([this] {
      v1::ContainerEventResponse ev;
      while (reader_->Read(&ev)) {
        if (ev.container_event_type() != v1::CONTAINER_STOPPED_EVENT) continue;
        std::lock_guard<std::mutex> l(mu_);
        stopped_.emplace(ev.container_id(), WallNow());
        cv_.notify_all();
      }
    });
  }
  ~ExitEvents() {
    ctx_.TryCancel();
    if (thread_.joinable()) thread_.join();
  }
  // Waits until the container is reported stopped (by an event, or by ContainerStatus, asked
  // every 100 ms in case the stream missed it); returns the wall time berthd's answer arrived.
  double Wait(const std::string& id, std::chrono::seconds timeout = std::chrono::seconds(60)) {
    auto deadline = Clock::now() + timeout;
    for (;;) {
      CheckInterrupted();
      {
        std::unique_lock<std::mutex> l(mu_);
        if (cv_.wait_for(l, std::chrono::milliseconds(100),
                         [&] { return stopped_.count(id) > 0; })) {
          return stopped_[id];
        }
      }
      v1::ContainerStatusRequest r;
      r.set_container_id(id);
      v1::ContainerStatusResponse s;
      Check(rt_.ContainerStatus(Ctx().get(), r, &s), "ContainerStatus " + id);
      if (s.status().state() == v1::CONTAINER_EXITED) return WallNow();
      if (Clock::now() > deadline) throw std::runtime_error("container " + id + " did not exit");
    }
  }

 private:
  v1::RuntimeService::Stub& rt_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<v1::ContainerEventResponse>> reader_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, double> stopped_;
};

// --- strace of berthd: which child processes each CRI call waited for --------------------------

struct Phase {
  std::string name;
  double start, end;  // wall clock
};

struct ExecSpan {
  int pid;
  std::string what;  // "runc create", "berth-monitor", "netns helper" ...
  double start = 0, end = 0;
};

// Reads the output of `strace -f -ttt -T` run on berthd (see Berthd::Start).
class StraceLog {
 public:
  explicit StraceLog(std::string path) : out_(std::move(path)) {}

  // Spans of processes that execve'd (from execve to "+++ exited"), and of forked children
  // that never exec'd (from clone to exit; berthd's network namespace helper).
  std::vector<ExecSpan> Spans(const std::string& runtime, std::vector<ExecSpan>* syscalls) const {
    std::ifstream in(out_);
    std::string line;
    std::map<int, ExecSpan> open;
    std::map<int, std::pair<double, std::string>> forked;  // child -> fork time, parent's name
    std::map<int, bool> pending_thread;
    std::map<int, int> thread_owner;  // thread id -> the process (pid) it belongs to
    std::map<int, std::pair<double, std::string>>
        pending_exec;  // pid -> time, unfinished execve line
    std::pair<double, std::string> last_exec;
    std::vector<ExecSpan> out;
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      int pid = 0;
      double t = 0;
      if (!(ls >> pid >> t)) continue;
      std::string rest;
      std::getline(ls, rest);
      rest.erase(0, rest.find_first_not_of(' '));
      for (const char* sc : {"fsync(", "fdatasync(", "mount(", "umount2(", "unshare(", "setns("}) {
        int owner = thread_owner.count(pid) ? thread_owner[pid] : pid;
        if (rest.rfind(sc, 0) != 0) continue;
        // berthd's threads and the children it or a monitor forked without exec; not the runtime's.
        std::string who;
        if (open.count(owner) && open[owner].what == "berthd")
          who = "berthd";
        else if (!open.count(owner) && forked.count(owner))
          who = forked[owner].second + " child";
        if (who.empty() || who.find(runtime) != std::string::npos) continue;
        size_t lt = rest.rfind('<');
        if (lt == std::string::npos || rest.back() != '>') continue;
        double dur = std::atof(rest.c_str() + lt + 1);
        std::string name = std::string(sc, strlen(sc) - 1) + " (" + who + ")";
        syscalls->push_back({pid, name, t, t + dur});
      }
      if (rest.find("execve(") != std::string::npos &&
          rest.find("<unfinished") != std::string::npos) {
        pending_exec[pid] = {t, rest};
        last_exec = {t, rest};
        continue;
      }
      if (rest.find("execve resumed>") != std::string::npos) {
        if (rest.find(" = 0") == std::string::npos) {
          pending_exec.erase(pid);
          continue;
        }
        // A thread other than the leader exec'd: strace reports it under the leader's pid.
        auto pe = pending_exec.count(pid) ? pending_exec[pid] : last_exec;
        pending_exec.erase(pid);
        t = pe.first;
        rest = pe.second + " = 0";
      }
      if (rest.find("execve(") != std::string::npos && rest.find(" = 0") != std::string::npos) {
        // argv: execve("path", ["a", "b", ...], ...
        std::vector<std::string> argv;
        size_t b = rest.find('['), e = rest.find(']', b);
        if (b != std::string::npos && e != std::string::npos) {
          std::string list = rest.substr(b + 1, e - b - 1);
          size_t q = 0;
          while ((q = list.find('"', q)) != std::string::npos) {
            size_t q2 = list.find('"', q + 1);
            if (q2 == std::string::npos) break;
            argv.push_back(list.substr(q + 1, q2 - q - 1));
            q = q2 + 1;
          }
        }
        if (argv.empty()) continue;
        forked.erase(pid);
        std::string bin = argv[0].substr(argv[0].rfind('/') + 1);
        std::string what = bin;
        if (bin == runtime || bin == "exe") {
          static const std::set<std::string> cmds = {"create", "start",    "delete", "kill",
                                                     "state",  "run",      "init",   "exec",
                                                     "update", "features", "list",   "ps"};
          for (size_t i = 1; i < argv.size(); ++i) {
            if (cmds.count(argv[i])) {
              what = runtime + " " + argv[i];
              break;
            }
          }
        }
        if (open.count(pid)) {
          // A process exec'ing again (runc init -> the container's command): close the first.
          open[pid].end = t;
          out.push_back(open[pid]);
        }
        open[pid] = {pid, what, t, 0};
        continue;
      }
      // clone()/clone3()/fork() = CHILD in the parent: a new process (threads are left out); an
      // exec may follow. A call interrupted by another thread's line ends in a "resumed" line.
      if (rest.find("clone") != std::string::npos || rest.find("fork(") != std::string::npos ||
          rest.find("fork resumed>") != std::string::npos) {
        bool thread = rest.find("CLONE_THREAD") != std::string::npos;
        if (rest.find("<unfinished") != std::string::npos) {
          pending_thread[pid] = thread;
          continue;
        }
        if (rest.find("resumed>") != std::string::npos) {
          thread = pending_thread[pid];
          pending_thread.erase(pid);
        }
        size_t eq = rest.rfind(" = ");
        int owner = thread_owner.count(pid) ? thread_owner[pid] : pid;
        int child = eq == std::string::npos ? 0 : std::atoi(rest.c_str() + eq + 3);
        if (child > 0 && thread) thread_owner[child] = owner;
        if (child > 0 && !thread) {
          forked[child] = {t, open.count(owner)     ? open[owner].what
                              : forked.count(owner) ? forked[owner].second + " child"
                                                    : "berthd"};
        }
        continue;
      }
      if (rest.find("+++ exited with") != std::string::npos ||
          rest.find("+++ killed by") != std::string::npos) {
        auto it = open.find(pid);
        if (it != open.end()) {
          it->second.end = t;
          out.push_back(it->second);
          open.erase(it);
        } else if (auto f = forked.find(pid); f != forked.end()) {
          out.push_back({pid, f->second.second + " child (no exec)", f->second.first, t});
          forked.erase(f);
        }
      }
    }
    return out;
  }

 private:
  std::string out_;
};

// Which processes ran inside each phase of the traced pods: count per pod and time per pod.
void PrintProfile(const std::vector<Phase>& phases, std::vector<ExecSpan> spans,
                  const std::vector<ExecSpan>& syscalls, int pods) {
  std::printf(
      "\nprofile of the `true` pods under strace (%d pods; per pod; processes from exec to exit, "
      "syscalls of\n"
      "berthd's own threads; all inflated by tracing):\n",
      pods);
  for (const auto& sc : syscalls) spans.push_back({sc.pid, "syscall " + sc.what, sc.start, sc.end});
  std::vector<std::string> order;
  std::map<std::string, std::vector<Phase>> by_name;
  for (const auto& p : phases) {
    if (!by_name.count(p.name)) order.push_back(p.name);
    by_name[p.name].push_back(p);
  }
  for (const auto& name : order) {
    double phase_ms = 0;
    for (const auto& p : by_name[name]) phase_ms += (p.end - p.start) * 1000;
    std::map<std::string, std::pair<int, double>> what;  // count, total ms (clipped to the phase)
    std::map<std::string, std::vector<double>> each;
    for (const auto& p : by_name[name]) {
      for (const auto& s : spans) {
        if (s.start < p.start || s.start >= p.end) continue;
        double ms = (std::min(s.end, p.end) - s.start) * 1000;
        what[s.what].first++;
        what[s.what].second += ms;
        each[s.what].push_back((s.end - s.start) * 1000);
      }
    }
    std::printf("  %-22s %8.1f ms\n", name.c_str(), phase_ms / pods);
    for (const auto& [w, cm] : what) {
      auto st = Summarise(each[w]);
      std::printf(
          "      %-26s %5.2f x  %7.1f ms within the call  (each: median %.1f ms, max %.1f ms)\n",
          w.c_str(), static_cast<double>(cm.first) / pods, cm.second / pods, st.median, st.max);
    }
  }
}

// ---------------------------------------------------------------------------------------------

// GET /v1/metrics on 127.0.0.1:port; the whole response.
std::string Scrape(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const char req[] = "GET /v1/metrics HTTP/1.1\r\nHost: localhost\r\n\r\n";
    if (write(fd, req, sizeof req - 1) == ssize_t(sizeof req - 1)) {
      char buf[65536];
      for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) out.append(buf, size_t(n));
    }
  }
  close(fd);
  return out;
}

class Bench {
 public:
  explicit Bench(Config cfg) : cfg_(std::move(cfg)), dir_("berth-pods-bench") {}

  void Run();
  // --metrics-pair: what [metrics] (with grpc_histogram) costs, both sides in one run.
  void RunMetricsPair();
  void Cleanup();

 private:
  v1::PodSandboxConfig PodConfig(const std::string& name);
  std::string RunPod(const v1::PodSandboxConfig& pc);
  std::string CreateCtr(const std::string& pod, const v1::PodSandboxConfig& pc,
                        const std::string& name, const std::vector<std::string>& cmd);
  void StartCtr(const std::string& id);
  void StopPod(const std::string& id);
  void RemovePod(const std::string& id);
  std::string MakeBundle(const std::string& name, const std::vector<std::string>& args);
  std::string BareRoot() const { return dir_ / "bare-root"; }
  void PrintRss(const char* when);
  nlohmann::json Info(const google::protobuf::Map<std::string, std::string>& info);

  Config cfg_;
  // With --metrics: the time of a whole scrape (connect, exposition, transfer) with `n` containers.
  void TimeScrapes(int n) {
    const int port = d_->MetricsPort();
    if (port == 0) throw std::runtime_error("--metrics: berthd logged no metrics port");
    std::vector<double> t;
    size_t bytes = 0;
    for (int i = -3; i < cfg_.list_calls; ++i) {
      auto t0 = Clock::now();
      std::string r = Scrape(port);
      auto t1 = Clock::now();
      if (r.rfind("HTTP/1.1 200", 0) != 0)
        throw std::runtime_error("scrape failed: " + r.substr(0, 200));
      bytes = r.size();
      if (i >= 0) t.push_back(Ms(t1 - t0));
    }
    Stats s = Summarise(t);
    std::printf(
        "  metrics scrape with %d containers: median %.2f ms, p90 %.2f ms, min %.2f ms (%zu "
        "bytes)\n",
        n, s.median, s.p90, s.min, bytes);
  }
  berth::testing::TempDir dir_;
  std::unique_ptr<Berthd> d_;
  std::unique_ptr<Berthd> dm_;  // --metrics-pair: the berthd with metrics on
  Config metrics_on_;
  int seq_ = 0;
  std::map<std::string, std::pair<long, long>> rss_;  // when -> VmRSS, RssAnon (KiB)
  std::vector<std::string> rss_order_;
};

v1::PodSandboxConfig Bench::PodConfig(const std::string& name) {
  v1::PodSandboxConfig c;
  c.mutable_metadata()->set_name(name);
  c.mutable_metadata()->set_namespace_("bench");
  c.mutable_metadata()->set_uid("uid-" + name);
  c.set_hostname(name.substr(0, 63));
  c.set_log_directory(dir_ / ("logs/" + name));
  return c;
}

std::string Bench::RunPod(const v1::PodSandboxConfig& pc) {
  v1::RunPodSandboxRequest req;
  *req.mutable_config() = pc;
  v1::RunPodSandboxResponse resp;
  Check(d_->rt().RunPodSandbox(Ctx().get(), req, &resp), "RunPodSandbox " + pc.metadata().name());
  return resp.pod_sandbox_id();
}

std::string Bench::CreateCtr(const std::string& pod, const v1::PodSandboxConfig& pc,
                             const std::string& name, const std::vector<std::string>& cmd) {
  v1::CreateContainerRequest req;
  req.set_pod_sandbox_id(pod);
  *req.mutable_sandbox_config() = pc;
  auto* c = req.mutable_config();
  c->mutable_metadata()->set_name(name);
  c->mutable_image()->set_image(kImage);
  for (const auto& a : cmd) c->add_command(a);
  c->set_log_path(name + ".log");
  v1::CreateContainerResponse resp;
  Check(d_->rt().CreateContainer(Ctx().get(), req, &resp), "CreateContainer " + name);
  return resp.container_id();
}

void Bench::StartCtr(const std::string& id) {
  v1::StartContainerRequest r;
  r.set_container_id(id);
  v1::StartContainerResponse rr;
  Check(d_->rt().StartContainer(Ctx().get(), r, &rr), "StartContainer " + id);
}

void Bench::StopPod(const std::string& id) {
  v1::StopPodSandboxRequest r;
  r.set_pod_sandbox_id(id);
  v1::StopPodSandboxResponse rr;
  Check(d_->rt().StopPodSandbox(Ctx().get(), r, &rr), "StopPodSandbox " + id);
}

void Bench::RemovePod(const std::string& id) {
  v1::RemovePodSandboxRequest r;
  r.set_pod_sandbox_id(id);
  v1::RemovePodSandboxResponse rr;
  Check(d_->rt().RemovePodSandbox(Ctx(600).get(), r, &rr), "RemovePodSandbox " + id);
}

nlohmann::json Bench::Info(const google::protobuf::Map<std::string, std::string>& info) {
  auto it = info.find("info");
  if (it == info.end()) return nlohmann::json::object();
  auto j = nlohmann::json::parse(it->second, nullptr, false);
  return j.is_object() ? j : nlohmann::json::object();
}

// A bundle for bare runc: the busybox root file system and `runc spec` with stdio off the
// terminal and the process `args`.
std::string Bench::MakeBundle(const std::string& name, const std::vector<std::string>& args) {
  std::string bundle = dir_ / name;
  berth::testing::MakeBusyboxRootfs(bundle + "/rootfs");
  auto spec = berth::exec::Run({cfg_.runtime, "spec", "--bundle", bundle});
  if (spec.exit_code != 0) throw std::runtime_error(cfg_.runtime + " spec failed: " + spec.err);
  auto j = nlohmann::json::parse(ReadAll(bundle + "/config.json"));
  j["process"]["terminal"] = false;
  j["process"]["args"] = args;
  j["process"]["env"] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  j["process"]["oomScoreAdj"] = std::atoi(ReadAll("/proc/self/oom_score_adj").c_str());
  j["root"]["readonly"] = false;
  berth::testing::WriteFile(bundle + "/config.json", j.dump(2));
  return bundle;
}

void Bench::PrintRss(const char* when) {
  long rss = ProcKiB(d_->pid(), "VmRSS"), anon = ProcKiB(d_->pid(), "RssAnon");
  long file = ProcKiB(d_->pid(), "RssFile"), pss = ProcKiB(d_->pid(), "Pss", "smaps_rollup");
  long threads = ProcKiB(d_->pid(), "Threads");
  rss_[when] = {rss, anon};
  rss_order_.push_back(when);
  std::printf("  berthd %-40s VmRSS %s (RssAnon %s, RssFile %s), Pss %s, %ld threads\n", when,
              Mib(rss).c_str(), Mib(anon).c_str(), Mib(file).c_str(), Mib(pss).c_str(), threads);
  std::fflush(stdout);
}

void Bench::Run() {
  struct utsname u;
  uname(&u);
  auto rv = berth::exec::Run({cfg_.runtime, "--version"});
  std::printf("pods bench: %s %s, %ld CPUs, %s, load %s\n", u.sysname, u.release,
              sysconf(_SC_NPROCESSORS_ONLN), FirstLine(rv.out).c_str(),
              FirstLine(ReadAll("/proc/loadavg")).c_str());
  std::printf("  berthd %s\n  dir %s\n", cfg_.berthd.c_str(), dir_.path().c_str());

  d_ = std::make_unique<Berthd>(cfg_, dir_.path());
  auto t_start = Clock::now();
  d_->Start();
  std::printf("  berthd pid %d answered after %.0f ms\n", d_->pid(), Ms(Clock::now() - t_start));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  {
    // The floor under every CRI call: a Version round trip over the socket.
    std::vector<double> v;
    for (int i = 0; i < 200; ++i) {
      v1::VersionResponse resp;
      auto c0 = Clock::now();
      Check(d_->rt().Version(Ctx().get(), {}, &resp), "Version");
      v.push_back(Ms(Clock::now() - c0));
    }
    auto s = Summarise(v);
    std::printf("  Version round trip %.2f ms median, %.2f p90, %.2f min (200 calls)\n", s.median,
                s.p90, s.min);
  }
  std::printf("\nmemory:\n");
  PrintRss("idle after start");

  // The image: busybox-static in an OCI archive, imported through berth's Images service.
  {
    berth::testing::TestImageOptions opts;
    opts.user = "";
    opts.entrypoint = {};
    opts.cmd = {"sh"};
    opts.id = "pods-bench";
    auto img = berth::testing::BuildTestImage(dir_ / "oci", opts);
    berth::testing::WriteOciArchive(img, dir_ / "busybox.tar", kImage);
    berth::images::v1::ImportRequest req;
    req.set_path(dir_ / "busybox.tar");
    berth::images::v1::ImportResponse resp;
    Check(d_->images().Import(Ctx().get(), req, &resp), "Import");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    PrintRss("idle with the image imported");
    // The same image pulled over the CRI from a local docker-registry (when there is one).
    if (std::string why = berth::testing::RegistrySkipReason(); !why.empty()) {
      std::printf("  (no pull: %s)\n", why.c_str());
    } else {
      berth::testing::LocalRegistry reg;
      berth::testing::PushImage(img, reg.host(), "bench/pods:v1");
      auto cri_images = v1::ImageService::NewStub(
          grpc::CreateChannel("unix:" + d_->socket(), grpc::InsecureChannelCredentials()));
      v1::PullImageRequest preq;
      preq.mutable_image()->set_image(reg.host() + "/bench/pods:v1");
      v1::PullImageResponse presp;
      Check(cri_images->PullImage(Ctx(120).get(), preq, &presp), "PullImage");
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      PrintRss("idle with the image pulled too");
    }
  }

  ExitEvents events(d_->rt());
  std::fprintf(stderr, "[pods_bench] %d+%d `true` pods, alternating with bare %s\n", cfg_.warmup,
               cfg_.pods, cfg_.runtime.c_str());
  std::string bundle_true = MakeBundle("bare-true", {"true"});
  std::string bundle_long = MakeBundle("bare-sleep", {"sleep", "100000"});
  std::filesystem::create_directories(BareRoot());

  // 1. `true`: pod + container to exited and removed, against `runc run` of the same command.
  struct PodTimes {
    double run, create, start, exit, stop, remove, total;
  };
  std::vector<PodTimes> berth_true;
  std::vector<double> bare_true, step_create, step_start, step_wait, step_delete, step_delete_gone;
  std::vector<Phase> phases;
  std::pair<double, double> cpu0, cpu1;
  long majflt0 = 0, majflt1 = 0, machine_majflt0 = 0, machine_majflt1 = 0;
  for (int i = -cfg_.warmup; i < cfg_.pods; ++i) {
    CheckInterrupted();
    if (i == 0) {
      cpu0 = CpuMs(d_->pid());
      majflt0 = MajorFaults(d_->pid());
      machine_majflt0 = MachineMajorFaults();
    }
    bool measured = i >= 0;
    PodTimes t{};
    auto pc = PodConfig("true-" + std::to_string(seq_++));
    double w0 = WallNow();
    auto t0 = Clock::now();
    std::string pod = RunPod(pc);
    auto t1 = Clock::now();
    double w1 = WallNow();
    std::string cid = CreateCtr(pod, pc, "c", {"true"});
    auto t2 = Clock::now();
    double w2 = WallNow();
    StartCtr(cid);
    auto t3 = Clock::now();
    double w3 = WallNow();
    events.Wait(cid);
    auto t4 = Clock::now();
    double w4 = WallNow();
    StopPod(pod);
    auto t5 = Clock::now();
    double w5 = WallNow();
    RemovePod(pod);
    auto t6 = Clock::now();
    double w6 = WallNow();
    t = {Ms(t1 - t0), Ms(t2 - t1), Ms(t3 - t2), Ms(t4 - t3), Ms(t5 - t4), Ms(t6 - t5), Ms(t6 - t0)};
    if (measured) {
      berth_true.push_back(t);
      if (!cfg_.strace_file.empty()) {
        phases.push_back({"RunPodSandbox", w0, w1});
        phases.push_back({"CreateContainer", w1, w2});
        phases.push_back({"StartContainer", w2, w3});
        phases.push_back({"exit seen", w3, w4});
        phases.push_back({"StopPodSandbox", w4, w5});
        phases.push_back({"RemovePodSandbox", w5, w6});
      }
    }
    std::string id = "bare-true-" + std::to_string(i + cfg_.warmup);
    if (i == cfg_.pods - 1) {
      cpu1 = CpuMs(d_->pid());
      majflt1 = MajorFaults(d_->pid());
      machine_majflt1 = MachineMajorFaults();
    }
    auto b0 = Clock::now();
    int rc = RunQuiet({cfg_.runtime, "--root", BareRoot(), "run", "--bundle", bundle_true, id},
                      dir_ / "bare.err");
    auto b1 = Clock::now();
    if (rc != 0)
      throw std::runtime_error("bare " + cfg_.runtime + " run failed (" + std::to_string(rc) +
                               "): " + ReadAll(dir_ / "bare.err"));
    if (measured) bare_true.push_back(Ms(b1 - b0));
    // The same container with the separate commands berthd runs (create, start, delete), and a
    // delete of a container that is already gone (as RemovePodSandbox repeats it).
    std::string sid = "bare-steps-" + std::to_string(i + cfg_.warmup);
    std::string pidf = dir_ / "bare-steps.pid";
    std::vector<std::string> r = {cfg_.runtime, "--root", BareRoot()};
    auto cmd = [&](std::vector<std::string> args) {
      std::vector<std::string> a = r;
      a.insert(a.end(), args.begin(), args.end());
      return a;
    };
    auto s0 = Clock::now();
    rc = RunQuiet(cmd({"create", "--bundle", bundle_true, "--pid-file", pidf, sid}),
                  dir_ / "bare.err");
    auto s1 = Clock::now();
    if (rc != 0)
      throw std::runtime_error("bare " + cfg_.runtime +
                               " create failed: " + ReadAll(dir_ / "bare.err"));
    int init = ReadPid(pidf);
    RunQuiet(cmd({"start", sid}));
    auto s2 = Clock::now();
    WaitExit(init);
    auto s3 = Clock::now();
    RunQuiet(cmd({"delete", "--force", sid}));
    auto s4 = Clock::now();
    RunQuiet(cmd({"delete", "--force", sid}));
    auto s5 = Clock::now();
    if (measured) {
      step_create.push_back(Ms(s1 - s0));
      step_start.push_back(Ms(s2 - s1));
      step_wait.push_back(Ms(s3 - s2));
      step_delete.push_back(Ms(s4 - s3));
      step_delete_gone.push_back(Ms(s5 - s4));
    }
  }

  // Exit detection lag, measured apart: a `true` container whose status is read right after the
  // exit is seen (finished_at = the monitor's clock when the container exited).
  std::vector<double> lags;
  for (int i = 0; i < std::min(cfg_.pods, 10); ++i) {
    CheckInterrupted();
    auto pc = PodConfig("lag-" + std::to_string(seq_++));
    std::string pod = RunPod(pc);
    std::string cid = CreateCtr(pod, pc, "c", {"true"});
    StartCtr(cid);
    double seen = events.Wait(cid);
    v1::ContainerStatusRequest r;
    r.set_container_id(cid);
    v1::ContainerStatusResponse s;
    Check(d_->rt().ContainerStatus(Ctx().get(), r, &s), "ContainerStatus");
    if (s.status().finished_at() > 0)
      lags.push_back((seen - static_cast<double>(s.status().finished_at()) / 1e9) * 1000);
    RemovePod(pod);
  }

  auto col = [&](double PodTimes::*m) {
    std::vector<double> v;
    for (const auto& t : berth_true) v.push_back(t.*m);
    return Summarise(v);
  };
  auto bt = col(&PodTimes::total);
  auto rt = Summarise(bare_true);
  std::printf(
      "\n`true` pods (%d measured after %d warm-up, alternating with bare %s; ms, median / p90):\n",
      cfg_.pods, cfg_.warmup, cfg_.runtime.c_str());
  std::printf("  RunPodSandbox                        %8.1f / %8.1f\n", col(&PodTimes::run).median,
              col(&PodTimes::run).p90);
  std::printf("  CreateContainer                      %8.1f / %8.1f\n",
              col(&PodTimes::create).median, col(&PodTimes::create).p90);
  std::printf("  StartContainer                       %8.1f / %8.1f\n",
              col(&PodTimes::start).median, col(&PodTimes::start).p90);
  std::printf("  Start returned -> exit reported      %8.1f / %8.1f\n", col(&PodTimes::exit).median,
              col(&PodTimes::exit).p90);
  std::printf("  StopPodSandbox                       %8.1f / %8.1f\n", col(&PodTimes::stop).median,
              col(&PodTimes::stop).p90);
  std::printf("  RemovePodSandbox                     %8.1f / %8.1f\n",
              col(&PodTimes::remove).median, col(&PodTimes::remove).p90);
  std::printf("  whole pod via berthd                 %8.1f / %8.1f\n", bt.median, bt.p90);
  std::printf("  bare `%s run`                      %8.1f / %8.1f\n", cfg_.runtime.c_str(),
              rt.median, rt.p90);
  std::printf("  added per pod by berthd              %8.1f ms  (ratio %.2fx)   goal < 15 ms: %s\n",
              bt.median - rt.median, rt.median > 0 ? bt.median / rt.median : 0.0,
              bt.median - rt.median < 15 ? "met" : "NOT met");
  std::printf(
      "  bare step by step: create %.1f, start %.1f, exit seen %.1f, delete %.1f, delete again "
      "%.1f (sum %.1f)\n",
      Summarise(step_create).median, Summarise(step_start).median, Summarise(step_wait).median,
      Summarise(step_delete).median, Summarise(step_delete_gone).median,
      Summarise(step_create).median + Summarise(step_start).median + Summarise(step_wait).median +
          Summarise(step_delete).median);
  std::printf(
      "  berthd CPU per pod: own threads %.1f ms, reaped children (berth-monitor with its %s, "
      "berth-pause, %s kill/delete) %.1f ms\n",
      (cpu1.first - cpu0.first) / cfg_.pods, cfg_.runtime.c_str(), cfg_.runtime.c_str(),
      (cpu1.second - cpu0.second) / cfg_.pods);
  // Pages the machine had reclaimed and reads back: latency that neither side controls.
  std::printf("  major page faults during the `true` pods: berthd %ld, the machine %ld\n",
              majflt1 - majflt0, machine_majflt1 - machine_majflt0);
  if (!lags.empty()) {
    auto ls = Summarise(lags);
    std::printf(
        "  container exit -> exit reported      %8.1f / %8.1f  (%zu pods, monitor's exit time to "
        "event)\n",
        ls.median, ls.p90, ls.n);
  }
  std::fflush(stdout);
  if (!phases.empty()) {
    std::vector<ExecSpan> syscalls;
    auto spans = StraceLog(cfg_.strace_file).Spans(cfg_.runtime, &syscalls);
    PrintProfile(phases, spans, syscalls, cfg_.pods);
  }
  PrintRss("idle after the `true` pods");

  // 2. Long-running containers: pod + `sleep` to running; they stay up for the memory figures.
  if (cfg_.running > 0) std::fprintf(stderr, "[pods_bench] %d long-running pods\n", cfg_.running);
  std::vector<double> long_run, long_create, long_start;
  std::vector<double> berth_long, bare_long, bare_long_kill, bare_long_del, bare_long_down;
  std::vector<std::pair<std::string, std::string>> long_pods;  // pod, container
  for (int i = 0; i < cfg_.running; ++i) {
    CheckInterrupted();
    auto pc = PodConfig("sleep-" + std::to_string(seq_++));
    auto t0 = Clock::now();
    std::string pod = RunPod(pc);
    auto t1 = Clock::now();
    std::string cid = CreateCtr(pod, pc, "c", {"sleep", "100000"});
    auto t2 = Clock::now();
    StartCtr(cid);
    auto t3 = Clock::now();
    berth_long.push_back(Ms(t3 - t0));
    long_run.push_back(Ms(t1 - t0));
    long_create.push_back(Ms(t2 - t1));
    long_start.push_back(Ms(t3 - t2));
    long_pods.emplace_back(pod, cid);
    std::string id = "bare-sleep-" + std::to_string(i);
    auto b0 = Clock::now();
    int rc =
        RunQuiet({cfg_.runtime, "--root", BareRoot(), "run", "-d", "--bundle", bundle_long, id},
                 dir_ / "bare.err");
    auto b1 = Clock::now();
    if (rc != 0)
      throw std::runtime_error("bare " + cfg_.runtime +
                               " run -d failed: " + ReadAll(dir_ / "bare.err"));
    int init = 0;
    {
      auto st = berth::exec::Run(
          berth::runtime::RuntimeArgv({cfg_.runtime, "--root", BareRoot(), "state", id}));
      auto j = nlohmann::json::parse(st.out, nullptr, false);
      if (j.is_object()) init = j.value("pid", 0);
    }
    auto k0 = Clock::now();
    RunQuiet({cfg_.runtime, "--root", BareRoot(), "kill", "--all", id, "9"});
    auto k1 = Clock::now();
    if (init > 0) WaitExit(init);
    auto k2 = Clock::now();
    RunQuiet({cfg_.runtime, "--root", BareRoot(), "delete", "--force", id});
    auto k3 = Clock::now();
    bare_long.push_back(Ms(b1 - b0));
    bare_long_kill.push_back(Ms(k1 - k0));
    bare_long_del.push_back(Ms(k3 - k2));
    bare_long_down.push_back(Ms(k3 - k0));
  }
  std::vector<long> mon_rss, mon_anon, mon_pss, pause_rss, pause_anon, pause_pss;
  int parent_ok = 0;
  if (!long_pods.empty()) {
    auto bl = Summarise(berth_long), rl = Summarise(bare_long);
    std::printf("\nlong-running pods (%d; ms, median / p90):\n", cfg_.running);
    std::printf("  RunPodSandbox                        %8.1f / %8.1f\n",
                Summarise(long_run).median, Summarise(long_run).p90);
    std::printf("  CreateContainer                      %8.1f / %8.1f\n",
                Summarise(long_create).median, Summarise(long_create).p90);
    std::printf("  StartContainer                       %8.1f / %8.1f\n",
                Summarise(long_start).median, Summarise(long_start).p90);
    std::printf("  pod + `sleep` to running via berthd  %8.1f / %8.1f\n", bl.median, bl.p90);
    std::printf("  bare `%s run -d`                   %8.1f / %8.1f\n", cfg_.runtime.c_str(),
                rl.median, rl.p90);
    std::printf("  added per pod by berthd              %8.1f ms  (ratio %.2fx)\n",
                bl.median - rl.median, rl.median > 0 ? bl.median / rl.median : 0.0);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    for (const auto& [pod, cid] : long_pods) {
      v1::ContainerStatusRequest r;
      r.set_container_id(cid);
      r.set_verbose(true);
      v1::ContainerStatusResponse s;
      Check(d_->rt().ContainerStatus(Ctx().get(), r, &s), "ContainerStatus");
      auto info = Info(s.info());
      int mpid = info.value("monitorPid", 0), pid = info.value("pid", 0);
      if (mpid > 0 && Cmdline(mpid).find("berth-monitor") != std::string::npos) {
        mon_rss.push_back(ProcKiB(mpid, "VmRSS"));
        mon_anon.push_back(ProcKiB(mpid, "RssAnon"));
        mon_pss.push_back(ProcKiB(mpid, "Pss", "smaps_rollup"));
        if (pid > 0 && ProcKiB(pid, "PPid") == mpid) ++parent_ok;
      }
      v1::PodSandboxStatusRequest pr;
      pr.set_pod_sandbox_id(pod);
      pr.set_verbose(true);
      v1::PodSandboxStatusResponse ps;
      Check(d_->rt().PodSandboxStatus(Ctx().get(), pr, &ps), "PodSandboxStatus");
      int ppid = Info(ps.info()).value("monitorPid", 0);
      if (ppid > 0 && Cmdline(ppid).find("berth-monitor") != std::string::npos) {
        pause_rss.push_back(ProcKiB(ppid, "VmRSS"));
        pause_anon.push_back(ProcKiB(ppid, "RssAnon"));
        pause_pss.push_back(ProcKiB(ppid, "Pss", "smaps_rollup"));
      }
    }
    std::printf("\nmemory:\n");
    PrintRss(("with " + std::to_string(long_pods.size()) + " running containers").c_str());
    auto kib = [](const std::vector<long>& v) {
      std::vector<double> d(v.begin(), v.end());
      return Summarise(d);
    };
    auto ms = kib(mon_rss), ma = kib(mon_anon), mp = kib(mon_pss);
    std::printf(
        "  berth-monitor of containers (%zu, %d are the parent of their container's init):\n"
        "      VmRSS median %.0f KiB (max %.0f), RssAnon median %.0f KiB (max %.0f), Pss median "
        "%.0f KiB  goal < 1 MiB RSS: %s\n",
        ms.n, parent_ok, ms.median, ms.max, ma.median, ma.max, mp.median,
        ms.max < 1024 ? "met" : "NOT met");
    auto ps = kib(pause_rss), pa = kib(pause_anon), pp = kib(pause_pss);
    std::printf(
        "  berth-monitor of pause containers (%zu): VmRSS median %.0f KiB (max %.0f), RssAnon "
        "median %.0f KiB, Pss median %.0f KiB\n",
        ps.n, ps.median, ps.max, pa.median, pp.median);
  }

  // 3. List latency: created (not started) containers in pods of per_list_pod, up to `list` in all.
  int total = static_cast<int>(long_pods.size());
  std::vector<std::string> list_pods;
  std::vector<double> create_only;
  while (total < cfg_.list) {
    CheckInterrupted();
    auto pc = PodConfig("list-" + std::to_string(seq_++));
    std::string pod = RunPod(pc);
    list_pods.push_back(pod);
    for (int k = 0; k < cfg_.per_list_pod && total < cfg_.list; ++k, ++total) {
      auto t0 = Clock::now();
      CreateCtr(pod, pc, "c" + std::to_string(k), {"true"});
      create_only.push_back(Ms(Clock::now() - t0));
    }
  }
  if (cfg_.metrics && total > 0) TimeScrapes(total);
  if (cfg_.list > 0) {
    std::fprintf(stderr, "[pods_bench] listing %d containers, %d calls each\n", total,
                 cfg_.list_calls);
    std::vector<double> lc, lp, lraw;
    size_t nc = 0, np = 0, bc = 0, bp = 0;
    // The same call as raw bytes: berthd's work and the transport, without the client's decoding
    // of 1,000 messages (which depends on the client: kubelet decodes in Go).
    grpc::GenericStub generic(d_->channel());
    for (int i = -3; i < cfg_.list_calls; ++i) {
      CheckInterrupted();
      {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
        grpc::ByteBuffer req, resp;
        bool own = false;
        Check(grpc::SerializationTraits<v1::ListContainersRequest>::Serialize(
                  v1::ListContainersRequest(), &req, &own),
              "serialize ListContainersRequest");
        std::mutex mu;
        std::condition_variable cv;
        bool done = false;
        grpc::Status st;
        auto r0 = Clock::now();
        generic.UnaryCall(&ctx, "/runtime.v1.RuntimeService/ListContainers", grpc::StubOptions(),
                          &req, &resp, [&](grpc::Status s) {
                            std::lock_guard<std::mutex> l(mu);
                            st = std::move(s);
                            done = true;
                            cv.notify_one();
                          });
        {
          std::unique_lock<std::mutex> l(mu);
          cv.wait(l, [&] { return done; });
        }
        auto r1 = Clock::now();
        Check(st, "ListContainers (raw)");
        if (i >= 0) lraw.push_back(Ms(r1 - r0));
      }
      v1::ListContainersResponse cr;
      auto t0 = Clock::now();
      Check(d_->rt().ListContainers(Ctx().get(), v1::ListContainersRequest(), &cr),
            "ListContainers");
      auto t1 = Clock::now();
      v1::ListPodSandboxResponse pr;
      Check(d_->rt().ListPodSandbox(Ctx().get(), v1::ListPodSandboxRequest(), &pr),
            "ListPodSandbox");
      auto t2 = Clock::now();
      if (i < 0) continue;
      lc.push_back(Ms(t1 - t0));
      lp.push_back(Ms(t2 - t1));
      nc = cr.containers_size();
      np = pr.items_size();
      bc = cr.ByteSizeLong();
      bp = pr.ByteSizeLong();
    }
    auto c = Summarise(lc), p = Summarise(lp);
    std::printf(
        "\nlists (%zu containers: %zu running, the rest created; %zu pods; %d calls each, client "
        "round trip):\n",
        nc, long_pods.size(), np, cfg_.list_calls);
    if (!create_only.empty()) {
      std::printf("  CreateContainer without start      median %.1f ms (%zu containers)\n",
                  Summarise(create_only).median, create_only.size());
    }
    auto raw = Summarise(lraw);
    std::printf(
        "  ListContainers, decoded            median %.3f ms, p90 %.3f ms, min %.3f ms (%zu "
        "bytes)\n",
        c.median, c.p90, c.min, bc);
    std::printf(
        "  ListContainers, raw bytes          median %.3f ms, p90 %.3f ms, min %.3f ms  goal < 2 "
        "ms: %s\n",
        raw.median, raw.p90, raw.min, raw.median < 2 ? "met" : "NOT met");
    std::printf(
        "  ListPodSandbox                     median %.3f ms, p90 %.3f ms, min %.3f ms (%zu "
        "bytes)\n",
        p.median, p.p90, p.min, bp);
    std::printf("\nmemory:\n");
    PrintRss(("with " + std::to_string(nc) + " containers").c_str());
  }

  // 4. Teardown, timed: the long-running pods (Stop + Remove), then the list pods.
  std::fprintf(stderr, "[pods_bench] teardown\n");
  std::vector<double> long_down;
  for (const auto& [pod, cid] : long_pods) {
    CheckInterrupted();
    auto t0 = Clock::now();
    StopPod(pod);
    RemovePod(pod);
    long_down.push_back(Ms(Clock::now() - t0));
  }
  auto t_list = Clock::now();
  for (const auto& pod : list_pods) {
    CheckInterrupted();
    RemovePod(pod);
  }
  double list_down = Ms(Clock::now() - t_list);
  std::printf("\nteardown:\n");
  if (!long_down.empty()) {
    std::printf(
        "  Stop+RemovePodSandbox of a running pod  median %.1f ms; bare `%s kill --all` + wait + "
        "`delete` median %.1f ms"
        " (kill %.1f, delete %.1f)\n",
        Summarise(long_down).median, cfg_.runtime.c_str(), Summarise(bare_long_down).median,
        Summarise(bare_long_kill).median, Summarise(bare_long_del).median);
  }
  if (!list_pods.empty()) {
    std::printf(
        "  RemovePodSandbox of %zu pods with %zu created containers: %.1f s (%.1f ms per "
        "container)\n",
        list_pods.size(), create_only.size(), list_down / 1000,
        list_down / static_cast<double>(create_only.size()));
  }
  // berthd removes the containers' files after its replies: idle is once that work is done
  // (no container directory left) and the watcher has trimmed the heap (within a second).
  auto t_clean = Clock::now();
  std::string ctr_dir = dir_ / "state/io.containerd.grpc.v1.cri/containers";
  auto empty_dir = [&] {
    std::error_code ec;
    return std::filesystem::is_empty(ctr_dir, ec) || ec;
  };
  while (!empty_dir() && Clock::now() - t_clean < std::chrono::seconds(120))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::printf("  files of the removed containers gone %.1f s after the last reply\n",
              Ms(Clock::now() - t_clean) / 1000);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  std::printf("\nmemory:\n");
  PrintRss("idle after removing everything");

  // Idle: the highest of the readings after start, after the import and after the pull.
  std::pair<long, long> idle{0, 0};
  for (const char* w :
       {"idle after start", "idle with the image imported", "idle with the image pulled too"})
    if (rss_.count(w) && rss_[w].first > idle.first) idle = rss_[w];
  std::printf("\ngoals: idle VmRSS %s, the most of after start, import and pull (< 16 MiB: %s)",
              Mib(idle.first).c_str(), idle.first < 16 * 1024 ? "met" : "NOT met");
  for (const auto& w : rss_order_) {
    if (w.rfind("with ", 0) == 0 && w.find("running") != std::string::npos) {
      std::printf("; %s VmRSS %s (< 24 MiB: %s)", w.c_str(), Mib(rss_[w].first).c_str(),
                  rss_[w].first < 24 * 1024 ? "met" : "NOT met");
    }
  }
  std::printf("\n");
}

// Two berthds side by side, [metrics] off (d_) and on with grpc_histogram (dm_), in one run: the
// same `true` pods (pod + container to exited, stopped and removed) alternate between them, the
// order swapped at every pair, and each pair is followed by a scrape of the berthd with metrics
// (outside the timed part, as Prometheus scrapes apart from the pods). Idle VmRSS of both after
// start (after the same 200 Version calls), after the import and after the pods.
void Bench::RunMetricsPair() {
  std::printf("metrics pair: %ld CPUs, load %s\n", sysconf(_SC_NPROCESSORS_ONLN),
              FirstLine(ReadAll("/proc/loadavg")).c_str());
  Config off = cfg_;
  off.metrics = false;
  metrics_on_ = cfg_;
  metrics_on_.metrics = true;
  cfg_ = off;
  std::filesystem::create_directories(dir_ / "metrics-on");
  d_ = std::make_unique<Berthd>(cfg_, dir_.path());
  dm_ = std::make_unique<Berthd>(metrics_on_, dir_ / "metrics-on");
  d_->Start();
  dm_->Start();
  std::map<std::string, std::pair<long, long>> rss;  // "off/on when" -> VmRSS, Threads
  auto both = [&](const std::function<void()>& fn) {
    fn();
    std::swap(d_, dm_);
    try {
      fn();
    } catch (...) {
      std::swap(d_, dm_);
      throw;
    }
    std::swap(d_, dm_);
  };
  auto read_rss = [&](const std::string& when) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    for (auto* d : {d_.get(), dm_.get()}) {
      std::string key = std::string(d == d_.get() ? "off " : "on ") + when;
      rss[key] = {ProcKiB(d->pid(), "VmRSS"), ProcKiB(d->pid(), "Threads")};
    }
  };
  both([&] {
    for (int i = 0; i < 200; ++i) {
      v1::VersionResponse resp;
      Check(d_->rt().Version(Ctx().get(), {}, &resp), "Version");
    }
  });
  read_rss("idle after start");
  berth::testing::TestImageOptions opts;
  opts.user = "";
  opts.entrypoint = {};
  opts.cmd = {"sh"};
  opts.id = "pods-bench";
  auto img = berth::testing::BuildTestImage(dir_ / "oci", opts);
  berth::testing::WriteOciArchive(img, dir_ / "busybox.tar", kImage);
  both([&] {
    berth::images::v1::ImportRequest req;
    req.set_path(dir_ / "busybox.tar");
    berth::images::v1::ImportResponse resp;
    Check(d_->images().Import(Ctx().get(), req, &resp), "Import");
  });
  read_rss("idle with the image imported");

  std::fprintf(stderr, "[pods_bench] %d+%d `true` pods on each berthd, alternating\n", cfg_.warmup,
               cfg_.pods);
  ExitEvents ev_off(d_->rt()), ev_on(dm_->rt());
  const int port = dm_->MetricsPort();
  if (port == 0) throw std::runtime_error("--metrics-pair: berthd logged no metrics port");
  std::vector<double> t_off, t_on;
  auto pod = [&](ExitEvents& ev) {
    auto pc = PodConfig("true-" + std::to_string(seq_++));
    auto t0 = Clock::now();
    std::string id = RunPod(pc);
    std::string cid = CreateCtr(id, pc, "c", {"true"});
    StartCtr(cid);
    ev.Wait(cid);
    StopPod(id);
    RemovePod(id);
    return Ms(Clock::now() - t0);
  };
  for (int i = -cfg_.warmup; i < cfg_.pods; ++i) {
    CheckInterrupted();
    for (int k = 0; k < 2; ++k) {
      if ((i + k) % 2 == 0) {
        double t = pod(ev_off);
        if (i >= 0) t_off.push_back(t);
      } else {
        std::swap(d_, dm_);
        double t = 0;
        try {
          t = pod(ev_on);
        } catch (...) {
          std::swap(d_, dm_);
          throw;
        }
        std::swap(d_, dm_);
        if (i >= 0) t_on.push_back(t);
      }
    }
    if (Scrape(port).rfind("HTTP/1.1 200", 0) != 0) throw std::runtime_error("scrape failed");
  }
  read_rss("idle after the pods");
  auto so = Summarise(t_off), sn = Summarise(t_on);
  std::printf("\n`true` pods, %d on each berthd after %d warm-up (ms, median / p90 / min):\n",
              cfg_.pods, cfg_.warmup);
  std::printf("  metrics off                          %8.1f / %8.1f / %8.1f\n", so.median, so.p90,
              so.min);
  std::printf("  metrics on (grpc_histogram)          %8.1f / %8.1f / %8.1f\n", sn.median, sn.p90,
              sn.min);
  double added = so.median > 0 ? (sn.median - so.median) / so.median * 100 : 0;
  std::printf("  added by metrics: %+.1f ms median (%+.2f%%), %+.1f ms min  goal < 1%%: %s\n",
              sn.median - so.median, added, sn.min - so.min, added < 1 ? "met" : "NOT met");
  std::printf("\nberthd VmRSS (threads), metrics off / on:\n");
  for (const char* w :
       {"idle after start", "idle with the image imported", "idle after the pods"}) {
    auto a = rss[std::string("off ") + w], b = rss[std::string("on ") + w];
    std::printf("  %-30s %s (%ld) / %s (%ld)  added %+ld KiB%s\n", w, Mib(a.first).c_str(),
                a.second, Mib(b.first).c_str(), b.second, b.first - a.first,
                std::string(w) == "idle after start"
                    ? (b.first - a.first < 1024 ? "  goal < 1 MiB: met" : "  goal < 1 MiB: NOT met")
                    : "");
  }
}

// Removes the pods of `d` through it, then stops it.
void RemovePodsAndStop(Berthd* d) {
  if (!d || d->pid() <= 0) return;
  v1::ListPodSandboxResponse pods;
  if (d->rt().ListPodSandbox(Ctx(30).get(), {}, &pods).ok()) {
    for (const auto& p : pods.items()) {
      v1::RemovePodSandboxRequest r;
      r.set_pod_sandbox_id(p.id());
      v1::RemovePodSandboxResponse rr;
      auto st = d->rt().RemovePodSandbox(Ctx(600).get(), r, &rr);
      if (!st.ok())
        std::fprintf(stderr, "cleanup: RemovePodSandbox %s: %s\n", p.id().c_str(),
                     st.error_message().c_str());
    }
  }
  d->Stop();
}

void Bench::Cleanup() {
  RemovePodsAndStop(dm_.get());
  RemovePodsAndStop(d_.get());
  // Whatever is left in a runtime root (berthd's under the state directory, and the bare one).
  std::vector<std::string> roots = {BareRoot()};
  std::error_code ec;
  for (std::string state : {dir_ / "state", dir_ / "metrics-on/state"}) {
    for (auto it = std::filesystem::recursive_directory_iterator(state, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_directory(ec) && it->path().parent_path().filename() == "runtime") {
        roots.push_back(it->path().string());
        it.disable_recursion_pending();
      }
    }
    ec.clear();
  }
  for (const auto& root : roots) {
    if (!std::filesystem::exists(root, ec)) continue;
    auto r =
        berth::exec::Run(berth::runtime::RuntimeArgv({cfg_.runtime, "--root", root, "list", "-q"}));
    std::istringstream ids(r.out);
    std::string id;
    while (std::getline(ids, id)) {
      if (id.empty()) continue;
      std::fprintf(stderr, "cleanup: deleting leftover container %s in %s\n", id.c_str(),
                   root.c_str());
      RunQuiet({cfg_.runtime, "--root", root, "delete", "--force", id});
    }
  }
  if (cfg_.keep) {
    berth::testing::UnmountAllBelow(dir_.path());
    std::string keep = dir_.path() + ".kept";
    std::filesystem::rename(dir_.path(), keep, ec);
    if (!ec) std::printf("kept the berthd log, config and state in %s\n", keep.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--pods")
      cfg.pods = std::max(1, std::atoi(next().c_str()));
    else if (a == "--running")
      cfg.running = std::max(0, std::atoi(next().c_str()));
    else if (a == "--list")
      cfg.list = std::max(0, std::atoi(next().c_str()));
    else if (a == "--list-calls")
      cfg.list_calls = std::max(1, std::atoi(next().c_str()));
    else if (a == "--warmup")
      cfg.warmup = std::max(0, std::atoi(next().c_str()));
    else if (a == "--runtime")
      cfg.runtime = next();
    else if (a == "--berthd")
      cfg.berthd = next();
    else if (a == "--monitor")
      cfg.monitor = next();
    else if (a == "--pause")
      cfg.pause = next();
    else if (a == "--log-level")
      cfg.log_level = next();
    else if (a == "--strace")
      cfg.strace_file = next();
    else if (a == "--keep")
      cfg.keep = true;
    else if (a == "--metrics")
      cfg.metrics = true;
    else if (a == "--metrics-pair")
      cfg.metrics_pair = true;
    else {
      std::fprintf(
          stderr,
          "usage: %s [--pods N] [--running N] [--list N] [--list-calls N] [--warmup N]\n"
          "          [--runtime runc|crun] [--berthd PATH] [--monitor PATH] [--pause PATH]\n"
          "          [--log-level LEVEL] [--strace FILE] [--keep] [--metrics | --metrics-pair]\n",
          argv[0]);
      return 2;
    }
  }
  std::string skip = berth::testing::ContainerSkipReason(cfg.runtime);
  if (skip.empty() && berth::testing::BusyboxPath().empty())
    skip = "busybox-static is not installed";
  if (skip.empty() && access(cfg.berthd.c_str(), X_OK) != 0)
    skip = "berthd not found at " + cfg.berthd;
  if (!skip.empty()) {
    std::printf("skipped: %s\n", skip.c_str());
    return 0;
  }
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);

  int rc = 0;
  Bench bench(cfg);
  try {
    if (cfg.metrics_pair)
      bench.RunMetricsPair();
    else
      bench.Run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pods_bench: %s\n", e.what());
    rc = 1;
  }
  try {
    bench.Cleanup();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pods_bench: cleanup: %s\n", e.what());
    rc = 1;
  }
  return rc;
}
