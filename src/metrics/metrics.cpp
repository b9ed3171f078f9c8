#include "metrics/metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <vector>

namespace berth::metrics {

namespace {

struct HistData {
  std::vector<uint64_t> buckets;  // per upper bound, not cumulative
  uint64_t count = 0;
  double sum = 0;
};

struct Histogram {
  std::vector<double> bounds;
  std::map<std::string, HistData> series;  // by label string
  void Observe(const std::string& labels, double v) {
    auto& d = series[labels];
    if (d.buckets.empty()) d.buckets.assign(bounds.size(), 0);
    for (size_t i = 0; i < bounds.size(); ++i) {
      if (v <= bounds[i]) {
        ++d.buckets[i];
        break;
      }
    }
    ++d.count;
    d.sum += v;
  }
};

// Latency buckets of go-grpc-prometheus (containerd's grpc_histogram).
const std::vector<double> kGrpcBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
const std::vector<double> kPullBuckets = {0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};

struct State {
  std::mutex mu;
  bool grpc_histogram = false;
  std::map<std::string, double> grpc_handled;  // labels -> count
  Histogram grpc_seconds{kGrpcBuckets, {}};
  double container_starts = 0, container_exits = 0, container_ooms = 0;
  double pulls = 0, pull_bytes = 0;
  std::map<std::string, double> pull_failures;  // reason label -> count
  Histogram pull_seconds{kPullBuckets, {}};
  std::map<std::string, double> volume_mounts;  // kind label -> count
  std::vector<Collector> collectors;
};

State& S() {
  static State* s = new State();  // never destroyed: hooks may run during exit
  return *s;
}

void AppendNumber(std::string& out, double v) {
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  std::array<char, 32> buf{};
  auto [p, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  out.append(buf.data(), p);
}

void WriteHistogram(std::string& out, std::string_view name, const Histogram& h) {
  for (const auto& [labels, d] : h.series) {
    const std::string prefix = labels.empty() ? "" : labels + ",";
    uint64_t cum = 0;
    for (size_t i = 0; i < h.bounds.size(); ++i) {
      cum += d.buckets[i];
      std::string le;
      AppendNumber(le, h.bounds[i]);
      WriteSample(out, std::string(name) + "_bucket", prefix + Label("le", le), double(cum));
    }
    WriteSample(out, std::string(name) + "_bucket", prefix + Label("le", "+Inf"), double(d.count));
    WriteSample(out, std::string(name) + "_sum", labels, d.sum);
    WriteSample(out, std::string(name) + "_count", labels, double(d.count));
  }
}

void WriteMap(std::string& out, std::string_view name, const std::map<std::string, double>& m) {
  for (const auto& [labels, v] : m) WriteSample(out, name, labels, v);
}

// Splits "/pkg.Service/Method" into service and method.
std::pair<std::string_view, std::string_view> SplitMethod(std::string_view full) {
  if (!full.empty() && full[0] == '/') full.remove_prefix(1);
  auto slash = full.find('/');
  if (slash == std::string_view::npos) return {"", full};
  return {full.substr(0, slash), full.substr(slash + 1)};
}

// --- process metrics from /proc/self
// ---------------------------------------------------------------

std::string ReadSmall(const char* path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int CountFds() {
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return 0;
  int n = 0;
  while (auto* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n - 1;  // the directory stream's own descriptor
}

double BootTime() {
  std::istringstream in(ReadSmall("/proc/stat"));
  std::string key;
  double v = 0;
  while (in >> key) {
    if (key == "btime") {
      in >> v;
      return v;
    }
    in.ignore(1 << 16, '\n');
  }
  return 0;
}

void WriteProcess(std::string& out) {
  const std::string stat = ReadSmall("/proc/self/stat");
  auto close = stat.rfind(')');
  if (close == std::string::npos) return;
  std::istringstream in(stat.substr(close + 2));
  std::vector<std::string> f;  // f[0] is field 3 (state)
  for (std::string x; in >> x;) f.push_back(x);
  if (f.size() < 22) return;
  const double tick = double(::sysconf(_SC_CLK_TCK));
  const double page = double(::sysconf(_SC_PAGESIZE));
  const double cpu = (std::stod(f[11]) + std::stod(f[12])) / tick;  // utime + stime
  const double threads = std::stod(f[17]);
  const double start = BootTime() + std::stod(f[19]) / tick;
  const double vsize = std::stod(f[20]);
  const double rss = std::stod(f[21]) * page;
  WriteHeader(out, "berth_process_cpu_seconds_total", "counter",
              "User and system CPU time spent by berthd in seconds.");
  WriteSample(out, "berth_process_cpu_seconds_total", "", cpu);
  WriteHeader(out, "berth_process_resident_memory_bytes", "gauge",
              "Resident memory size of berthd in bytes.");
  WriteSample(out, "berth_process_resident_memory_bytes", "", rss);
  WriteHeader(out, "berth_process_virtual_memory_bytes", "gauge",
              "Virtual memory size of berthd in bytes.");
  WriteSample(out, "berth_process_virtual_memory_bytes", "", vsize);
  WriteHeader(out, "berth_process_open_fds", "gauge", "Open file descriptors of berthd.");
  WriteSample(out, "berth_process_open_fds", "", CountFds());
  WriteHeader(out, "berth_process_threads", "gauge", "Threads of berthd.");
  WriteSample(out, "berth_process_threads", "", threads);
  WriteHeader(out, "berth_process_start_time_seconds", "gauge",
              "Start time of berthd since the Unix epoch in seconds.");
  WriteSample(out, "berth_process_start_time_seconds", "", start);
}

}  // namespace

std::string_view CodeName(int code) {
  static constexpr std::array<std::string_view, 17> kNames = {"ok",
                                                              "cancelled",
                                                              "unknown",
                                                              "invalid_argument",
                                                              "deadline_exceeded",
                                                              "not_found",
                                                              "already_exists",
                                                              "permission_denied",
                                                              "resource_exhausted",
                                                              "failed_precondition",
                                                              "aborted",
                                                              "out_of_range",
                                                              "unimplemented",
                                                              "internal",
                                                              "unavailable",
                                                              "data_loss",
                                                              "unauthenticated"};
  if (code < 0 || code >= int(kNames.size())) return "unknown";
  return kNames[code];
}

std::string Label(std::string_view key, std::string_view value) {
  std::string out(key);
  out += "=\"";
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  out += '"';
  return out;
}

void WriteHeader(std::string& out, std::string_view name, std::string_view type,
                 std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  for (char c : help) {  // the text format escapes \\ and newlines in help text
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void WriteSample(std::string& out, std::string_view name, std::string_view labels, double value) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  AppendNumber(out, value);
  out += '\n';
}

void GrpcHandled(std::string_view full_method, int code, double seconds) {
  auto [service, method] = SplitMethod(full_method);
  std::string labels = Label("grpc_service", service) + "," + Label("grpc_method", method);
  std::string with_code = labels + "," + Label("grpc_code", CodeName(code));
  auto& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  s.grpc_handled[with_code] += 1;
  if (s.grpc_histogram) s.grpc_seconds.Observe(labels, seconds);
}

void ContainerEvent(int type, std::string_view reason) {
  auto& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  if (type == 1) s.container_starts += 1;
  if (type == 2) {
    s.container_exits += 1;
    if (reason == "OOMKilled") s.container_ooms += 1;
  }
}

void ImagePull(uint64_t bytes, double seconds, std::string_view failure_reason) {
  auto& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  if (failure_reason.empty()) {
    s.pulls += 1;
    s.pull_bytes += double(bytes);
    s.pull_seconds.Observe("", seconds);
  } else {
    s.pull_failures[Label("reason", failure_reason)] += 1;
  }
}

void VolumeMount(bool read_only, bool rro, bool staged) {
  const char* kind = !read_only ? "writable" : staged ? "rro_staged" : rro ? "rro" : "ro_top_only";
  auto& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  s.volume_mounts[Label("kind", kind)] += 1;
}

void SetGrpcHistogram(bool on) {
  auto& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  s.grpc_histogram = on;
}

bool GrpcHistogram() {
  auto& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  return s.grpc_histogram;
}

void AddCollector(Collector c) {
  auto& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  s.collectors.push_back(std::move(c));
}

void ResetForTest() {
  auto& s = S();
  std::lock_guard<std::mutex> lock(s.mu);
  s.grpc_handled.clear();
  s.grpc_seconds.series.clear();
  s.container_starts = s.container_exits = s.container_ooms = 0;
  s.pulls = s.pull_bytes = 0;
  s.pull_failures.clear();
  s.pull_seconds.series.clear();
  s.volume_mounts.clear();
  s.collectors.clear();
}

std::string Render() {
  std::string out;
  out.reserve(16 * 1024);
  std::vector<Collector> collectors;
  {
    auto& s = S();
    std::lock_guard<std::mutex> lock(s.mu);
    WriteHeader(out, "berth_grpc_server_handled_total", "counter",
                "gRPC calls completed by berthd, by service, method and status code.");
    WriteMap(out, "berth_grpc_server_handled_total", s.grpc_handled);
    if (s.grpc_histogram) {
      WriteHeader(out, "berth_grpc_server_handling_seconds", "histogram",
                  "Time berthd took to answer gRPC calls, by service and method.");
      WriteHistogram(out, "berth_grpc_server_handling_seconds", s.grpc_seconds);
    }
    WriteHeader(out, "berth_container_starts_total", "counter", "Containers started.");
    WriteSample(out, "berth_container_starts_total", "", s.container_starts);
    WriteHeader(out, "berth_container_exits_total", "counter",
                "Container exits seen (including failed starts).");
    WriteSample(out, "berth_container_exits_total", "", s.container_exits);
    WriteHeader(out, "berth_container_oom_kills_total", "counter",
                "Container exits caused by the OOM killer.");
    WriteSample(out, "berth_container_oom_kills_total", "", s.container_ooms);
    WriteHeader(out, "berth_image_pulls_total", "counter", "Image pulls that succeeded.");
    WriteSample(out, "berth_image_pulls_total", "", s.pulls);
    WriteHeader(out, "berth_image_pull_bytes_total", "counter",
                "Bytes of the images pulled (compressed layers and config).");
    WriteSample(out, "berth_image_pull_bytes_total", "", s.pull_bytes);
    WriteHeader(out, "berth_image_pull_failures_total", "counter",
                "Image pulls that failed, by reason.");
    WriteMap(out, "berth_image_pull_failures_total", s.pull_failures);
    WriteHeader(out, "berth_image_pull_duration_seconds", "histogram",
                "Time taken by successful image pulls.");
    WriteHistogram(out, "berth_image_pull_duration_seconds", s.pull_seconds);
    WriteHeader(out, "berth_volume_mounts_total", "counter",
                "Container volume mounts made: writable, rro (runtime option), rro_staged (berth's "
                "staged tree), ro_top_only (read-only at the top only: treat_ro_mounts_as_rro "
                "resolved off).");
    WriteMap(out, "berth_volume_mounts_total", s.volume_mounts);
    collectors = s.collectors;
  }
  for (const auto& c : collectors) c(out);
  WriteProcess(out);
  return out;
}

}  // namespace berth::metrics
