// Base spec, capabilities, signals, image config and host facts for spec generation.
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/fs.h"
#include "oci/spec.h"

namespace berth::oci {

const std::vector<std::string>& DefaultCapabilities() {
  static const std::vector<std::string> caps = {
      "CAP_CHOWN",  "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",     "CAP_MKNOD",
      "CAP_NET_RAW", "CAP_SETGID",      "CAP_SETUID",           "CAP_SETFCAP",    "CAP_SETPCAP",
      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"};
  return caps;
}

const std::vector<std::string>& AllCapabilities() {
  static const std::vector<std::string> caps = {
      "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
      "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
      "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
      "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
      "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
      "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
      "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
      "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
      "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"};
  return caps;
}

std::string NormalizeCapability(const std::string& name) {
  std::string up;
  for (char c : name) up += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (up.rfind("CAP_", 0) != 0) up = "CAP_" + up;
  const auto& all = AllCapabilities();
  return std::find(all.begin(), all.end(), up) != all.end() ? up : "";
}

nlohmann::json DefaultSpec() {
  using nlohmann::json;
  const auto& caps = DefaultCapabilities();
  json spec = {
      {"ociVersion", "1.1.0"},
      {"root", {{"path", "rootfs"}}},
      {"process",
       {{"user", {{"uid", 0}, {"gid", 0}}},
        {"args", json::array()},
        {"env", {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
        {"cwd", "/"},
        {"capabilities",
         {{"bounding", caps}, {"effective", caps}, {"permitted", caps}}},
        {"rlimits", {{{"type", "RLIMIT_NOFILE"}, {"hard", 1024}, {"soft", 1024}}}},
        {"noNewPrivileges", false}}},
      {"mounts",
       {{{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"},
         {"options", {"nosuid", "noexec", "nodev"}}},
        {{"destination", "/dev"}, {"type", "tmpfs"}, {"source", "tmpfs"},
         {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}},
        {{"destination", "/dev/pts"}, {"type", "devpts"}, {"source", "devpts"},
         {"options", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}}},
        {{"destination", "/dev/shm"}, {"type", "tmpfs"}, {"source", "shm"},
         {"options", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}}},
        {{"destination", "/dev/mqueue"}, {"type", "mqueue"}, {"source", "mqueue"},
         {"options", {"nosuid", "noexec", "nodev"}}},
        {{"destination", "/sys"}, {"type", "sysfs"}, {"source", "sysfs"},
         {"options", {"nosuid", "noexec", "nodev", "ro"}}},
        {{"destination", "/sys/fs/cgroup"}, {"type", "cgroup"}, {"source", "cgroup"},
         {"options", {"nosuid", "noexec", "nodev", "relatime", "ro"}}}}},
      {"linux",
       {{"maskedPaths",
         {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
          "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
          "/sys/devices/virtual/powercap", "/proc/scsi"}},
        {"readonlyPaths",
         {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}},
        {"resources", {{"devices", {{{"allow", false}, {"access", "rwm"}}}}}},
        {"namespaces",
         {{{"type", "pid"}}, {{"type", "ipc"}}, {{"type", "uts"}}, {{"type", "mount"}},
          {{"type", "network"}}}}}}};
  return spec;
}

nlohmann::json LoadBaseSpec(const std::string& path) {
  if (path.empty()) return DefaultSpec();
  std::string text;
  try {
    text = fs::ReadFile(path, 16u << 20);
  } catch (const Error& e) {
    throw Error(e.code(), std::string("failed to open base OCI spec: ") + e.what());
  }
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object())
    throw Error(Code::kInvalidArgument, "failed to load base OCI spec " + path + ": not a JSON object");
  return j;
}

nlohmann::json BaseSpec(const std::shared_ptr<const nlohmann::json>& base, const std::string& path) {
  if (base) {
    if (!base->is_object()) throw Error(Code::kInvalidArgument, "base OCI spec is not a JSON object");
    return *base;
  }
  return LoadBaseSpec(path);
}

namespace {
struct SigName {
  const char* name;
  int num;
};
const SigName kSignals[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},       {"QUIT", SIGQUIT},   {"ILL", SIGILL},
    {"TRAP", SIGTRAP}, {"ABRT", SIGABRT},     {"IOT", SIGIOT},     {"BUS", SIGBUS},
    {"FPE", SIGFPE},   {"KILL", SIGKILL},     {"USR1", SIGUSR1},   {"SEGV", SIGSEGV},
    {"USR2", SIGUSR2}, {"PIPE", SIGPIPE},     {"ALRM", SIGALRM},   {"TERM", SIGTERM},
    {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD}, {"CLD", SIGCHLD}, {"CONT", SIGCONT},   {"STOP", SIGSTOP},
    {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN},     {"TTOU", SIGTTOU},   {"URG", SIGURG},
    {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ},     {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},
    {"WINCH", SIGWINCH}, {"IO", SIGIO},       {"POLL", SIGPOLL},   {"PWR", SIGPWR},
    {"SYS", SIGSYS},
};
}  // namespace

int ParseSignal(const std::string& in) {
  if (in.empty()) return -1;
  if (std::all_of(in.begin(), in.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (in.size() > 2) return -1;
    int v = std::stoi(in);
    return v >= 1 && v <= 64 ? v : -1;
  }
  std::string s;
  for (char c : in) s += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (s.rfind("SIG", 0) == 0) s = s.substr(3);
  for (const auto& sn : kSignals)
    if (s == sn.name) return sn.num;
  // RTMIN+n / RTMAX-n (Linux: 34..64).
  auto rt = [&](const std::string& base, int origin, int sign) -> int {
    if (s == base) return origin;
    if (s.size() > base.size() + 1 && s.rfind(base, 0) == 0 && s[base.size()] == (sign > 0 ? '+' : '-')) {
      std::string n = s.substr(base.size() + 1);
      if (n.size() > 2 || !std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return -1;
      int v = origin + sign * std::stoi(n);
      return v >= 34 && v <= 64 ? v : -1;
    }
    return 0;
  };
  if (int v = rt("RTMIN", 34, 1); v != 0) return v;
  if (int v = rt("RTMAX", 64, -1); v != 0) return v;
  return -1;
}

ImageConfig ParseImageConfig(const nlohmann::json& doc) {
  ImageConfig ic;
  if (doc.is_null()) return ic;
  if (!doc.is_object()) throw Error(Code::kInvalidArgument, "image config: not a JSON object");
  const nlohmann::json& c = doc.contains("config") ? doc["config"] : doc;
  if (c.is_null()) return ic;
  if (!c.is_object()) throw Error(Code::kInvalidArgument, "image config: \"config\" is not an object");
  auto strings = [&](const char* key, std::vector<std::string>& out) {
    auto it = c.find(key);
    if (it == c.end() || it->is_null()) return;
    if (!it->is_array()) throw Error(Code::kInvalidArgument, std::string("image config: ") + key + " is not an array");
    for (const auto& v : *it) {
      if (!v.is_string())
        throw Error(Code::kInvalidArgument, std::string("image config: ") + key + " has a non-string entry");
      out.push_back(v.get<std::string>());
    }
  };
  auto str = [&](const char* key, std::string& out) {
    auto it = c.find(key);
    if (it == c.end() || it->is_null()) return;
    if (!it->is_string()) throw Error(Code::kInvalidArgument, std::string("image config: ") + key + " is not a string");
    out = it->get<std::string>();
  };
  strings("Entrypoint", ic.entrypoint);
  strings("Cmd", ic.cmd);
  strings("Env", ic.env);
  str("WorkingDir", ic.working_dir);
  str("User", ic.user);
  str("StopSignal", ic.stop_signal);
  return ic;
}

NodeInfo HostNodeInfo() {
  NodeInfo n;
  try {
    n.own_oom_score_adj = std::stoi(fs::ReadFile("/proc/self/oom_score_adj", 64));
  } catch (...) {
  }
  n.swap_accounting = fs::Exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes") ||
                      fs::Exists("/sys/fs/cgroup/memory.swap.max") ||
                      fs::Exists("/sys/fs/cgroup/unified/memory.swap.max");
  // CapBnd of /proc/self/status: bit i is capability i, in the kernel's order (AllCapabilities).
  try {
    std::string status = fs::ReadFile("/proc/self/status", 1 << 20);
    auto p = status.find("CapBnd:");
    if (p != std::string::npos) {
      uint64_t bnd = std::stoull(status.substr(p + 7), nullptr, 16);
      const auto& all = AllCapabilities();
      for (size_t i = 0; i < all.size() && i < 64; ++i)
        if (bnd & (1ull << i)) n.bounding_caps.push_back(all[i]);
    }
  } catch (...) {
    n.bounding_caps.clear();
  }
  return n;
}

}  // namespace berth::oci
