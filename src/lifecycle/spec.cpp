// OCI runtime spec pieces shared by sandboxes and containers: the default spec (containerd's
// defaults for Linux), capabilities, signals and resources.
#include "lifecycle/internal.h"  // first: its enum Signal names collide with <signal.h> macros

#include <signal.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "common/error.h"
#include "common/fs.h"

namespace berth::lifecycle {

namespace {

const std::vector<std::string> kAllCapabilities = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"};

const std::vector<std::string> kDefaultCapabilities = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"};

struct SigName {
  const char* name;
  int num;
};
const SigName kSignals[] = {
    {"HUP", SIGHUP},     {"INT", SIGINT},       {"QUIT", SIGQUIT},   {"ILL", SIGILL},
    {"TRAP", SIGTRAP},   {"ABRT", SIGABRT},     {"IOT", SIGIOT},     {"BUS", SIGBUS},
    {"FPE", SIGFPE},     {"KILL", SIGKILL},     {"USR1", SIGUSR1},   {"SEGV", SIGSEGV},
    {"USR2", SIGUSR2},   {"PIPE", SIGPIPE},     {"ALRM", SIGALRM},   {"TERM", SIGTERM},
    {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD},   {"CLD", SIGCHLD},    {"CONT", SIGCONT},
    {"STOP", SIGSTOP},   {"TSTP", SIGTSTP},     {"TTIN", SIGTTIN},   {"TTOU", SIGTTOU},
    {"URG", SIGURG},     {"XCPU", SIGXCPU},     {"XFSZ", SIGXFSZ},   {"VTALRM", SIGVTALRM},
    {"PROF", SIGPROF},   {"WINCH", SIGWINCH},   {"IO", SIGIO},       {"POLL", SIGPOLL},
    {"PWR", SIGPWR},     {"SYS", SIGSYS},
};

nlohmann::json Mount(const std::string& dest, const std::string& type, const std::string& source,
                     std::vector<std::string> options) {
  return {{"destination", dest}, {"type", type}, {"source", source}, {"options", options}};
}

}  // namespace

nlohmann::json DefaultSpec() {
  nlohmann::json caps = kDefaultCapabilities;
  nlohmann::json spec = {
      {"ociVersion", "1.1.0"},
      {"process",
       {{"terminal", false},
        {"user", {{"uid", 0}, {"gid", 0}}},
        {"args", nlohmann::json::array()},
        {"env", nlohmann::json::array()},
        {"cwd", "/"},
        {"capabilities", {{"bounding", caps}, {"effective", caps}, {"permitted", caps}}},
        {"noNewPrivileges", false}}},
      {"root", {{"path", "rootfs"}, {"readonly", false}}},
      {"mounts",
       {Mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
        Mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
        Mount("/dev/pts", "devpts", "devpts",
              {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
        Mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
        Mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
        Mount("/sys/fs/cgroup", "cgroup", "cgroup", {"nosuid", "noexec", "nodev", "relatime", "ro"})}},
      {"linux",
       {{"namespaces", {{{"type", "mount"}}}},
        {"resources", {{"devices", {{{"allow", false}, {"access", "rwm"}}}}}},
        {"maskedPaths",
         {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
          "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
          "/sys/devices/virtual/powercap", "/proc/scsi"}},
        {"readonlyPaths",
         {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}}}},
  };
  return spec;
}

std::string NormalizeCapability(const std::string& name) {
  std::string up;
  for (char c : name) up.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  if (up.rfind("CAP_", 0) != 0) up = "CAP_" + up;
  if (std::find(kAllCapabilities.begin(), kAllCapabilities.end(), up) == kAllCapabilities.end()) {
    throw Error(Code::kInvalidArgument, "unknown capability \"" + name + "\"");
  }
  return up;
}

int ParseSignal(const std::string& in) {
  if (in.empty()) return 0;
  if (std::all_of(in.begin(), in.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    if (in.size() > 3) return 0;
    int n = std::stoi(in);
    return n >= 1 && n <= SIGRTMAX ? n : 0;
  }
  std::string s;
  for (char c : in) s.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  if (s.rfind("SIG", 0) == 0) s = s.substr(3);
  for (const auto& sn : kSignals) {
    if (s == sn.name) return sn.num;
  }
  auto offset = [](const std::string& rest) -> int {
    if (rest.empty() || rest.size() > 2) return -1;
    for (char c : rest) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return -1;
    }
    return std::stoi(rest);
  };
  if (s == "RTMIN") return SIGRTMIN;
  if (s == "RTMAX") return SIGRTMAX;
  if (s.rfind("RTMIN+", 0) == 0) {
    int o = offset(s.substr(6));
    return o >= 0 && SIGRTMIN + o <= SIGRTMAX ? SIGRTMIN + o : 0;
  }
  if (s.rfind("RTMAX-", 0) == 0) {
    int o = offset(s.substr(6));
    return o >= 0 && SIGRTMAX - o >= SIGRTMIN ? SIGRTMAX - o : 0;
  }
  return 0;
}

std::string SignalProtoToName(int proto_signal) {
  std::string name = v1::Signal_Name(static_cast<v1::Signal>(proto_signal));
  auto plus = name.find("PLUS");
  if (plus != std::string::npos) return name.substr(0, plus) + "+" + name.substr(plus + 4);
  auto minus = name.find("MINUS");
  if (minus != std::string::npos) return name.substr(0, minus) + "-" + name.substr(minus + 5);
  return name;
}

int OwnOomScoreAdj() {
  try {
    return std::stoi(fs::ReadFile("/proc/self/oom_score_adj", 64));
  } catch (...) {
    return 0;
  }
}

nlohmann::json OciResources(const v1::LinuxContainerResources& r, bool restrict_oom, int own_oom,
                            int* oom_out) {
  nlohmann::json res = nlohmann::json::object();
  nlohmann::json cpu = nlohmann::json::object();
  if (r.cpu_shares() > 0) cpu["shares"] = r.cpu_shares();
  if (r.cpu_quota() > 0) cpu["quota"] = r.cpu_quota();
  if (r.cpu_period() > 0) cpu["period"] = r.cpu_period();
  if (!r.cpuset_cpus().empty()) cpu["cpus"] = r.cpuset_cpus();
  if (!r.cpuset_mems().empty()) cpu["mems"] = r.cpuset_mems();
  if (!cpu.empty()) res["cpu"] = cpu;
  nlohmann::json mem = nlohmann::json::object();
  if (r.memory_limit_in_bytes() > 0) mem["limit"] = r.memory_limit_in_bytes();
  if (r.memory_swap_limit_in_bytes() > 0) mem["swap"] = r.memory_swap_limit_in_bytes();
  if (!mem.empty()) res["memory"] = mem;
  if (r.hugepage_limits_size() > 0) {
    nlohmann::json hp = nlohmann::json::array();
    for (const auto& h : r.hugepage_limits()) hp.push_back({{"pageSize", h.page_size()}, {"limit", h.limit()}});
    res["hugepageLimits"] = hp;
  }
  int oom = static_cast<int>(std::clamp<int64_t>(r.oom_score_adj(), -1000, 1000));
  if (restrict_oom && oom < own_oom) oom = own_oom;
  if (oom_out) *oom_out = oom;
  return res;
}

}  // namespace berth::lifecycle
