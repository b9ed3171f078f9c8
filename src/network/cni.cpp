#include "network/cni.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "network/cni_result.h"
#include "network/netns.h"

extern char** environ;

namespace berth::network {

struct CniState {
  std::mutex mu;
  LoadResult loaded;
  std::mutex serial;  // held around a pod's ADD with setup_serially
};

namespace {

std::string Seconds(std::chrono::milliseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3gs", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

// One plugin call: the environment, the configuration on stdin, the result or error on stdout.
struct Call {
  std::string command, container_id, netns, ifname, args;
  const CniOptions* opts = nullptr;
};

std::string CniPath(const CniOptions& o) {
  std::string s;
  for (const auto& d : o.bin_dirs) s += (s.empty() ? "" : ":") + d;
  return s;
}

// Runs plugin `type` with `conf`; returns its stdout. Throws Error naming the plugin, the
// network and the JSON error (code, msg, details), or stderr when the plugin printed none.
std::string Invoke(const Call& c, const std::string& type, const std::string& network,
                   const nlohmann::json& conf) {
  std::string who = "CNI plugin \"" + type + "\" of network \"" + network + "\"";
  std::string path = FindPlugin(type, c.opts->bin_dirs);
  if (path.empty()) {
    std::string dirs;
    for (const auto& d : c.opts->bin_dirs) dirs += (dirs.empty() ? "" : ", ") + d;
    throw Error(Code::kFailedPrecondition,
                who + " not found in " + (dirs.empty() ? "(no bin_dirs)" : dirs));
  }
  exec::Options eo;
  for (char** e = environ; *e; ++e) {
    if (std::string_view(*e).substr(0, 4) != "CNI_") eo.env.emplace_back(*e);
  }
  eo.env.push_back("CNI_COMMAND=" + c.command);
  eo.env.push_back("CNI_PATH=" + CniPath(*c.opts));
  if (c.command != "GC" && c.command != "STATUS") {
    eo.env.push_back("CNI_CONTAINERID=" + c.container_id);
    eo.env.push_back("CNI_NETNS=" + c.netns);
    eo.env.push_back("CNI_IFNAME=" + c.ifname);
    eo.env.push_back("CNI_ARGS=" + c.args);
  }
  eo.stdin_data = conf.dump();
  eo.timeout = c.opts->timeout;
  eo.max_output = 1 << 20;
  auto r = exec::Run({path}, eo);
  if (r.timed_out) {
    throw Error(Code::kDeadlineExceeded, who + " " + c.command + " timed out after " +
                                             Seconds(c.opts->timeout) + " (killed)");
  }
  if (r.exit_code == 0) return r.out;
  PluginError pe = ParsePluginError(r.out);
  if (!pe.parsed) pe = ParsePluginError(r.err);
  std::string msg;
  if (pe.parsed) {
    msg = "code " + std::to_string(pe.code) + ": " + pe.msg +
          (pe.details.empty() ? "" : " (" + pe.details + ")");
  } else {
    std::string err = r.err.empty() ? r.out : r.err;
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    msg = "exit status " + std::to_string(r.exit_code) +
          (err.empty() ? "" : ": " + err.substr(0, 2048));
  }
  throw Error(Code::kUnknown, who + " failed to " + c.command + ": " + msg);
}

// The configuration one plugin of a list receives.
nlohmann::json PluginConf(const nlohmann::json& list, const nlohmann::json& plugin,
                          const std::string& version, const nlohmann::json& caps,
                          const nlohmann::json* prev) {
  nlohmann::json conf = plugin;
  conf["name"] = list["name"];
  conf["cniVersion"] = version;
  nlohmann::json rc = nlohmann::json::object();
  if (plugin.contains("capabilities") && plugin["capabilities"].is_object()) {
    for (const auto& [k, v] : plugin["capabilities"].items()) {
      if (v.is_boolean() && v.get<bool>() && caps.contains(k)) rc[k] = caps[k];
    }
  }
  if (!rc.empty()) conf["runtimeConfig"] = rc;
  if (prev && !prev->is_null()) conf["prevResult"] = *prev;
  return conf;
}

std::string Version(const nlohmann::json& att) { return att.value("cniVersion", "1.0.0"); }

// ADD of one attachment: the plugins in order, each with the previous one's result.
nlohmann::json AddList(const Call& c, const nlohmann::json& att, const nlohmann::json& caps) {
  const auto& list = att["conf"];
  std::string v = Version(att), name = list.value("name", "");
  nlohmann::json prev;
  for (const auto& p : list["plugins"]) {
    nlohmann::json conf =
        PluginConf(list, p, v, caps, CompareVersions(v, "0.3.0") >= 0 ? &prev : nullptr);
    std::string out = Invoke(c, p.value("type", ""), name, conf);
    try {
      prev = ParseResult(out).raw;
    } catch (const Error& e) {
      throw Error(Code::kUnknown, "CNI plugin \"" + p.value("type", "") + "\" of network \"" +
                                      name + "\": " + e.what());
    }
  }
  return prev;
}

void DelList(const Call& c, const nlohmann::json& att, const nlohmann::json& caps) {
  const auto& list = att["conf"];
  std::string v = Version(att), name = list.value("name", "");
  const nlohmann::json* cached =
      att.contains("result") && !att["result"].is_null() ? &att["result"] : nullptr;
  const auto& plugins = list["plugins"];
  for (auto it = plugins.rbegin(); it != plugins.rend(); ++it) {
    nlohmann::json conf =
        PluginConf(list, *it, v, caps, CompareVersions(v, "0.4.0") >= 0 ? cached : nullptr);
    Invoke(c, it->value("type", ""), name, conf);
  }
}

Call CallFor(const nlohmann::json& record, const nlohmann::json& att, const CniOptions& o,
             const std::string& cmd, const std::string& netns) {
  Call c;
  c.command = cmd;
  c.container_id = record.value("containerID", "");
  c.netns = netns;
  c.ifname = att.value("ifname", "eth0");
  c.args = record.value("args", "");
  c.opts = &o;
  return c;
}

}  // namespace

// --- the watch ----------------------------------------------------------------------------------

// An inotify watch of conf_dir, read without a thread of its own: every look at the networks
// (Status, GC) first takes the events that came since the last look and loads the directory again
// if there were any. conf_dir is not created (a berthd without networks leaves the host alone):
// while it does not exist, every look tries to watch it again.
struct Cni::Watcher {
  std::mutex mu;
  int ino = -1, wd = -1;
  ~Watcher() {
    if (ino >= 0) ::close(ino);
  }
};

namespace {

constexpr uint32_t kWatchMask = IN_CREATE | IN_DELETE | IN_CLOSE_WRITE | IN_MODIFY | IN_MOVED_TO |
                                IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB;

// True when the events in buf[0, n) say that the watch itself is gone (the directory was
// removed or moved).
bool WatchGone(const char* buf, ssize_t n) {
  for (ssize_t off = 0; off + static_cast<ssize_t>(sizeof(struct inotify_event)) <= n;) {
    const auto* ev = reinterpret_cast<const struct inotify_event*>(buf + off);
    if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) return true;
    off += static_cast<ssize_t>(sizeof(struct inotify_event) + ev->len);
  }
  return false;
}

}  // namespace

Cni::Cni(CniOptions opts) : opts_(std::move(opts)), state_(std::make_shared<CniState>()) {
  if (opts_.watch && !opts_.conf_dir.empty()) {
    auto w = std::make_unique<Watcher>();
    w->ino = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (w->ino >= 0) {
      w->wd = ::inotify_add_watch(w->ino, opts_.conf_dir.c_str(), kWatchMask);
      watcher_ = std::move(w);
    }
  }
  Reload();
}

Cni::~Cni() = default;

void Cni::Refresh() {
  if (!watcher_) return;
  Watcher& w = *watcher_;
  std::lock_guard<std::mutex> lock(w.mu);
  bool reload = false;
  alignas(struct inotify_event) char buf[4096];
  for (ssize_t r; (r = ::read(w.ino, buf, sizeof buf)) > 0;) {
    if (WatchGone(buf, r)) w.wd = -1;
    reload = true;
  }
  if (w.wd < 0 && (w.wd = ::inotify_add_watch(w.ino, opts_.conf_dir.c_str(), kWatchMask)) >= 0)
    reload = true;
  if (reload) Reload();
}

void Cni::Reload() {
  LoadResult r = LoadNetworks(opts_.conf_dir, opts_.max_conf_num, opts_.bin_dirs,
                              !opts_.use_internal_loopback);
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->loaded = std::move(r);
}

NetworkStatus Cni::Status() {
  Refresh();
  NetworkStatus s;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    // A plugin installed since the last load is not seen by the watch of conf_dir.
    if (state_->loaded.reason == "NetworkPluginNotFound") {
      state_->loaded = LoadNetworks(opts_.conf_dir, opts_.max_conf_num, opts_.bin_dirs,
                                    !opts_.use_internal_loopback);
    }
    s.networks = state_->loaded.networks;
    s.reason = state_->loaded.reason;
    s.message = state_->loaded.error;
    s.unconfigured = state_->loaded.unconfigured;
  }
  if (!opts_.use_internal_loopback && !s.networks.empty())
    s.networks.insert(s.networks.begin(), LoopbackNetwork());
  s.ready = s.message.empty();
  if (!s.ready) return s;
  // STATUS of the plugins of 1.1 networks.
  for (const auto& n : s.networks) {
    if (CompareVersions(n.cni_version, "1.1.0") < 0) continue;
    Call c;
    c.command = "STATUS";
    c.opts = &opts_;
    try {
      for (const auto& p : n.conf["plugins"])
        Invoke(c, p.value("type", ""), n.name, PluginConf(n.conf, p, n.cni_version, {}, nullptr));
    } catch (const Error& e) {
      s.ready = false;
      s.reason = "NetworkPluginNotReady";
      s.message = e.what();
      return s;
    }
  }
  return s;
}

// --- ADD, DEL, CHECK, GC ----------------------------------------------------------------------

void Cni::SetUp(const PodNetworkRequest& req, nlohmann::json* record,
                const std::function<void(const nlohmann::json&)>& save) {
  NetworkStatus st = Status();
  if (!st.ready && st.unconfigured) return;  // no network configured: loopback only
  if (!st.ready)
    throw Error(Code::kFailedPrecondition, "the pod network is not ready: " + st.message);
  nlohmann::json caps = CapabilityArgs(req);
  nlohmann::json& rec = *record;
  rec = nlohmann::json::object();
  rec["containerID"] = req.id;
  rec["netns"] = req.netns;
  rec["args"] = "IgnoreUnknown=1;K8S_POD_NAMESPACE=" + req.ns + ";K8S_POD_NAME=" + req.name +
                ";K8S_POD_INFRA_CONTAINER_ID=" + req.id + ";K8S_POD_UID=" + req.uid;
  rec["capabilityArgs"] = caps;
  rec["attachments"] = nlohmann::json::array();
  int eth = 0;
  for (const auto& n : st.networks) {
    bool lo = n.file.empty() && n.name == "cni-loopback";
    rec["attachments"].push_back({{"network", n.name},
                                  {"file", n.file},
                                  {"cniVersion", n.cni_version},
                                  {"ifname", lo ? "lo" : "eth" + std::to_string(eth++)},
                                  {"conf", n.conf},
                                  {"result", nullptr}});
  }
  save(rec);  // recorded before any plugin runs: DEL can undo whatever ADD did
  std::unique_lock<std::mutex> serial(state_->serial, std::defer_lock);
  if (opts_.setup_serially) serial.lock();
  size_t n = rec["attachments"].size();
  std::vector<nlohmann::json> results(n);
  std::vector<std::string> errors(n);
  auto add = [&](size_t i) {
    try {
      const auto& att = rec["attachments"][i];
      results[i] = AddList(CallFor(rec, att, opts_, "ADD", req.netns), att, caps);
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  };
  const auto t0 = std::chrono::steady_clock::now();
  if (opts_.setup_serially || n < 2) {
    for (size_t i = 0; i < n && (i == 0 || errors[i - 1].empty()); ++i) add(i);
  } else {
    std::vector<std::thread> ts;
    for (size_t i = 0; i < n; ++i) ts.emplace_back(add, i);
    for (auto& t : ts) t.join();
  }
  // The plugins' share of the pod's set-up (wall time of the ADD calls), for people and benches.
  rec["addMs"] =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  for (size_t i = 0; i < n; ++i) {
    if (!results[i].is_null()) rec["attachments"][i]["result"] = results[i];
  }
  save(rec);
  for (const auto& e : errors) {
    if (!e.empty()) throw Error(Code::kUnknown, "failed to set up the pod network: " + e);
  }
}

void Cni::TearDown(const nlohmann::json& record, const std::string& netns) {
  if (!record.is_object() || !record.contains("attachments")) return;
  std::string ns = !netns.empty() && IsNetns(netns) ? netns : "";
  const auto& caps = record.value("capabilityArgs", nlohmann::json::object());
  std::string first;
  const auto& atts = record["attachments"];
  for (auto it = atts.rbegin(); it != atts.rend(); ++it) {
    try {
      DelList(CallFor(record, *it, opts_, "DEL", ns), *it, caps);
    } catch (const std::exception& e) {
      if (first.empty()) first = e.what();
    }
  }
  if (!first.empty()) throw Error(Code::kUnknown, "failed to tear down the pod network: " + first);
}

void Cni::Check(const nlohmann::json& record, const std::string& netns,
                std::chrono::milliseconds budget) {
  if (!record.is_object() || !record.contains("attachments")) return;
  const auto& caps = record.value("capabilityArgs", nlohmann::json::object());
  const auto deadline = std::chrono::steady_clock::now() + budget;
  CniOptions o = opts_;  // each call gets what is left of the budget
  for (const auto& att : record["attachments"]) {
    std::string v = Version(att);
    if (CompareVersions(v, "0.4.0") < 0 || att["conf"].value("disableCheck", false)) continue;
    if (att["result"].is_null()) {
      throw Error(Code::kFailedPrecondition,
                  "network \"" + att.value("network", "") + "\" has no cached result to CHECK");
    }
    Call c = CallFor(record, att, o, "CHECK", netns);
    for (const auto& p : att["conf"]["plugins"]) {
      if (budget.count() > 0) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        o.timeout = std::max(left, std::chrono::milliseconds(1));
        if (opts_.timeout.count() > 0) o.timeout = std::min(o.timeout, opts_.timeout);
      }
      Invoke(c, p.value("type", ""), att.value("network", ""),
             PluginConf(att["conf"], p, v, caps, &att["result"]));
    }
  }
}

std::vector<std::string> Cni::GC(const std::vector<nlohmann::json>& live) {
  std::vector<std::string> errors;
  Refresh();
  NetworkStatus st;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    st.networks = state_->loaded.networks;
  }
  for (const auto& n : st.networks) {
    if (CompareVersions(n.cni_version, "1.1.0") < 0 || n.conf.value("disableGC", false)) continue;
    nlohmann::json valid = nlohmann::json::array();
    for (const auto& rec : live) {
      for (const auto& att : rec.value("attachments", nlohmann::json::array())) {
        if (att.value("network", "") == n.name) {
          valid.push_back(
              {{"containerID", rec.value("containerID", "")}, {"ifname", att.value("ifname", "")}});
        }
      }
    }
    Call c;
    c.command = "GC";
    c.opts = &opts_;
    for (const auto& p : n.conf["plugins"]) {
      nlohmann::json conf = PluginConf(n.conf, p, n.cni_version, {}, nullptr);
      conf["cni.dev/valid-attachments"] = valid;
      try {
        Invoke(c, p.value("type", ""), n.name, conf);
      } catch (const Error& e) {
        errors.push_back(e.what());
      }
    }
  }
  return errors;
}

void Cni::UpdatePodCIDRs(const std::vector<std::string>& cidrs) {
  if (opts_.conf_template.empty() || cidrs.empty()) return;
  std::string tmpl;
  try {
    tmpl = fs::ReadFile(opts_.conf_template, 1 << 20);
  } catch (const Error& e) {
    throw Error(Code::kFailedPrecondition, std::string("conf_template: ") + e.what());
  }
  std::string out;
  try {
    out = RenderTemplate(tmpl, cidrs);
  } catch (const Error& e) {
    throw Error(e.code(), "conf_template " + opts_.conf_template + ": " + e.what());
  }
  fs::MkdirAll(opts_.conf_dir, 0755);
  fs::WriteFileAtomic(fs::Join(opts_.conf_dir, "10-containerd-net.conflist"), out, 0644);
  Reload();
}

// --- pure parts ---------------------------------------------------------------------------------

uint64_t ParseQuantity(const std::string& q, const std::string& what) {
  auto bad = [&] {
    return Error(Code::kInvalidArgument,
                 what + " \"" + q + "\" is not a quantity (like 10M or 1Gi)");
  };
  if (q.empty() || q.size() > 64) throw bad();
  size_t end = 0;
  double v = 0;
  try {
    v = std::stod(q, &end);
  } catch (...) {
    throw bad();
  }
  static const std::vector<std::pair<std::string, double>> suffixes = {
      {"", 1},
      {"k", 1e3},
      {"M", 1e6},
      {"G", 1e9},
      {"T", 1e12},
      {"P", 1e15},
      {"E", 1e18},
      {"Ki", 1024.0},
      {"Mi", 1048576.0},
      {"Gi", 1073741824.0},
      {"Ti", 1099511627776.0},
      {"Pi", 1125899906842624.0},
      {"Ei", 1152921504606846976.0},
      {"m", 1e-3}};
  std::string suf = q.substr(end);
  for (const auto& [s, m] : suffixes) {
    if (s == suf && std::isfinite(v) && v >= 0) {
      double r = std::ceil(v * m);
      if (r > 1.8e19) throw bad();
      return static_cast<uint64_t>(r);
    }
  }
  throw bad();
}

nlohmann::json CapabilityArgs(const PodNetworkRequest& req) {
  nlohmann::json caps = nlohmann::json::object();
  nlohmann::json pm = nlohmann::json::array();
  for (const auto& p : req.ports) {
    if (p.host_port <= 0) continue;  // only mappings to a host port go to portmap (as containerd)
    if (p.host_port > 65535 || p.container_port <= 0 || p.container_port > 65535) {
      throw Error(Code::kInvalidArgument, "port mapping " + std::to_string(p.host_port) + ":" +
                                              std::to_string(p.container_port) +
                                              " is out of range");
    }
    nlohmann::json m = {
        {"hostPort", p.host_port}, {"containerPort", p.container_port}, {"protocol", p.protocol}};
    if (!p.host_ip.empty()) m["hostIP"] = p.host_ip;
    pm.push_back(m);
  }
  caps["portMappings"] = pm;
  auto ann = [&](const char* k) -> const std::string* {
    auto it = req.annotations.find(k);
    return it == req.annotations.end() ? nullptr : &it->second;
  };
  nlohmann::json bw = nlohmann::json::object();
  if (auto* v = ann("kubernetes.io/ingress-bandwidth")) {
    bw["ingressRate"] = ParseQuantity(*v, "annotation kubernetes.io/ingress-bandwidth");
    bw["ingressBurst"] = INT32_MAX;  // as kubelet's dockershim and containerd do
  }
  if (auto* v = ann("kubernetes.io/egress-bandwidth")) {
    bw["egressRate"] = ParseQuantity(*v, "annotation kubernetes.io/egress-bandwidth");
    bw["egressBurst"] = INT32_MAX;
  }
  if (!bw.empty()) caps["bandwidth"] = bw;
  if (!req.dns_servers.empty() || !req.dns_searches.empty() || !req.dns_options.empty()) {
    caps["dns"] = {
        {"servers", req.dns_servers}, {"searches", req.dns_searches}, {"options", req.dns_options}};
  }
  if (auto* v = ann("cni.dev/ips")) {
    nlohmann::json ips = nlohmann::json::array();
    size_t i = 0;
    while (i <= v->size()) {
      size_t j = v->find(',', i);
      if (j == std::string::npos) j = v->size();
      std::string ip = v->substr(i, j - i);
      if (!ip.empty()) ips.push_back(ip);
      i = j + 1;
    }
    caps["ips"] = ips;
  }
  if (auto* v = ann("cni.dev/mac")) caps["mac"] = *v;
  if (!req.cgroup_path.empty()) caps["cgroupPath"] = req.cgroup_path;
  return caps;
}

PodIPs RecordIPs(const nlohmann::json& record, const std::string& ip_pref) {
  PodIPs out;
  if (!record.is_object()) return out;
  std::vector<std::string> ips;
  for (const auto& att : record.value("attachments", nlohmann::json::array())) {
    if (att.value("ifname", "") != "eth0" || att["result"].is_null()) continue;
    try {
      ips = InterfaceIPs(ParseResultJson(att["result"]), "eth0");
    } catch (const Error&) {
    }
  }
  if (ips.empty()) return out;
  size_t first = 0;
  if (ip_pref != "cni") {
    bool want6 = ip_pref == "ipv6";
    for (size_t i = 0; i < ips.size(); ++i) {
      if ((ips[i].find(':') != std::string::npos) == want6) {
        first = i;
        break;
      }
    }
  }
  out.ip = ips[first];
  for (size_t i = 0; i < ips.size(); ++i)
    if (i != first) out.additional.push_back(ips[i]);
  return out;
}

}  // namespace berth::network
