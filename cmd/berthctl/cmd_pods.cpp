// Pods and containers, crictl style: runp, create, start, stop, rm, stopp, rmp, ps, pods,
// inspect, inspectp, logs, stats, run (exec is in cmd_stream.cpp).
#include "runtime/v1/api.grpc.pb.h"  // first: its enum Signal names collide with <signal.h> macros

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <chrono>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

#include "cmd/berthctl/cmd_cri.h"
#include "cmd/berthctl/commands.h"

namespace berth::berthctl {

namespace v1 = ::runtime::v1;

namespace {

std::string ReadConfigFile(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

template <typename M>
M ParseJsonFile(const std::string& path) {
  M msg;
  google::protobuf::util::JsonParseOptions o;
  o.ignore_unknown_fields = true;
  auto st = google::protobuf::util::JsonStringToMessage(ReadConfigFile(path), &msg, o);
  if (!st.ok()) throw std::runtime_error("invalid " + path + ": " + std::string(st.message()));
  return msg;
}

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = true;
  o.preserve_proto_field_names = false;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

std::unique_ptr<v1::RuntimeService::Stub> Stub(Globals& g) { return v1::RuntimeService::NewStub(g.Channel()); }

std::string Short(const std::string& id) { return id.substr(0, 13); }

std::string Ago(int64_t ns) {
  if (ns <= 0) return "";
  int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  int64_t s = (now - ns) / 1000000000;
  if (s < 60) return std::to_string(s) + " seconds ago";
  if (s < 3600) return std::to_string(s / 60) + " minutes ago";
  if (s < 86400) return std::to_string(s / 3600) + " hours ago";
  return std::to_string(s / 86400) + " days ago";
}

std::string StateName(v1::ContainerState s) {
  switch (s) {
    case v1::CONTAINER_CREATED: return "Created";
    case v1::CONTAINER_RUNNING: return "Running";
    case v1::CONTAINER_EXITED: return "Exited";
    default: return "Unknown";
  }
}

// Prints the status JSON with "info" entries parsed (as crictl inspect does).
void PrintInspect(const google::protobuf::Message& status, const google::protobuf::Map<std::string, std::string>& info) {
  nlohmann::ordered_json out;
  out["status"] = nlohmann::ordered_json::parse(ToJson(status));
  for (const auto& [k, v] : info) {
    auto j = nlohmann::ordered_json::parse(v, nullptr, false);
    out[k] = j.is_discarded() ? nlohmann::ordered_json(v) : j;
  }
  std::cout << out.dump(2) << "\n";
}

// The pod's IP (and how many more it has), "" when it has none or the status failed.
std::string PodIP(Globals& g, const std::string& id) {
  v1::PodSandboxStatusRequest req;
  req.set_pod_sandbox_id(id);
  v1::PodSandboxStatusResponse resp;
  grpc::ClientContext ctx;
  g.Prepare(ctx);
  if (!Stub(g)->PodSandboxStatus(&ctx, req, &resp).ok()) return "";
  const auto& n = resp.status().network();
  if (n.ip().empty()) return "";
  return n.additional_ips().empty()
             ? n.ip()
             : n.ip() + " (+" + std::to_string(n.additional_ips_size()) + ")";
}

// Flags shared by the listings (ps, pods): crictl's -q, --no-trunc, --label, --state, --name.
struct ListFlags {
  bool quiet = false, no_trunc = false;
  std::vector<std::string> labels;  // key=value
  std::string state, name;          // name: a regular expression (ECMAScript), as crictl's
};

void AddListFlags(CLI::App* c, ListFlags& f, const std::string& states) {
  c->add_flag("-q,--quiet", f.quiet, "only ids");
  c->add_flag("--no-trunc", f.no_trunc, "full ids");
  c->add_option("-l,--label", f.labels, "only with this label (key=value; repeatable)");
  c->add_option("-s,--state", f.state, states);
  c->add_option("--name", f.name, "only those whose name matches this regular expression");
}

std::map<std::string, std::string> ParseLabels(const std::vector<std::string>& labels) {
  std::map<std::string, std::string> out;
  for (const auto& l : labels) {
    auto eq = l.find('=');
    if (eq == std::string::npos || eq == 0)
      throw std::runtime_error("--label " + l + ": expected key=value");
    out[l.substr(0, eq)] = l.substr(eq + 1);
  }
  return out;
}

v1::ContainerState ContainerStateFromName(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), ::tolower);
  if (s == "created") return v1::CONTAINER_CREATED;
  if (s == "running") return v1::CONTAINER_RUNNING;
  if (s == "exited") return v1::CONTAINER_EXITED;
  if (s == "unknown") return v1::CONTAINER_UNKNOWN;
  throw std::runtime_error("--state " + s + ": expected created, running, exited or unknown");
}

v1::PodSandboxState PodStateFromName(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), ::tolower);
  if (s == "ready") return v1::SANDBOX_READY;
  if (s == "notready") return v1::SANDBOX_NOTREADY;
  throw std::runtime_error("--state " + s + ": expected ready or notready");
}

// Drops the items whose name does not match `pattern` (nothing when it is empty).
template <typename T, typename Name>
void KeepMatching(google::protobuf::RepeatedPtrField<T>* items, const std::string& pattern,
                  Name name) {
  if (pattern.empty()) return;
  std::regex re;
  try {
    re = std::regex(pattern);
  } catch (const std::regex_error& e) {
    throw std::runtime_error("--name " + pattern + ": " + e.what());
  }
  google::protobuf::RepeatedPtrField<T> kept;
  for (auto& x : *items) {
    if (std::regex_search(name(x), re)) *kept.Add() = std::move(x);
  }
  items->Swap(&kept);
}

std::string Id(const std::string& id, const ListFlags& f) { return f.no_trunc ? id : Short(id); }

// -q (ids), -o json / yaml (the whole response): true when printed.
template <typename Resp, typename IdOf, typename Items>
bool PrintList(const Resp& resp, const Globals& g, const ListFlags& f, IdOf id_of,
               const Items& items) {
  if (f.quiet) {
    for (const auto& x : items) std::cout << id_of(x) << "\n";
    return true;
  }
  if (g.Table()) return false;
  cri::PrintStructured(cri::ToJSON(resp), g.output);
  return true;
}

struct Ids {
  std::vector<std::string> ids;
};

void ForEach(const std::vector<std::string>& ids, const std::function<void(const std::string&)>& fn) {
  int failed = 0;
  for (const auto& id : ids) {
    try {
      fn(id);
      std::cout << id << "\n";
    } catch (const std::exception& e) {
      std::cerr << e.what() << "\n";
      ++failed;
    }
  }
  if (failed) throw std::runtime_error(std::to_string(failed) + " of " + std::to_string(ids.size()) + " failed");
}

// Nanoseconds since the epoch of an RFC 3339 time; -1 when it does not parse.
int64_t CriLogTime(const std::string& s) {
  std::tm tm{};
  int frac_digits = 0;
  const char* p = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!p) return -1;
  int64_t ns = 0;
  if (*p == '.') {
    ++p;
    while (std::isdigit(static_cast<unsigned char>(*p))) {
      if (frac_digits < 9) {
        ns = ns * 10 + (*p - '0');
        ++frac_digits;
      }
      ++p;
    }
    for (; frac_digits < 9; ++frac_digits) ns *= 10;
  }
  int64_t offset = 0;
  if (*p == 'Z') {
    ++p;
  } else if (*p == '+' || *p == '-') {
    int hh = 0, mm = 0;
    if (std::sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2) return -1;
    offset = (*p == '+' ? 1 : -1) * (hh * 3600 + mm * 60);
    p += 6;
  } else {
    return -1;
  }
  if (*p) return -1;
  return (int64_t(timegm(&tm)) - offset) * 1000000000LL + ns;
}

struct LogOptions {
  bool follow = false, timestamps = false;
  int64_t tail = -1;     // lines; -1: all
  int64_t since_ns = 0;  // 0: all
};

// Nanoseconds since the epoch of an RFC 3339 time ("2026-12-04T05:00:00Z", fractions and offsets
// allowed) or of now minus a duration ("90s", "5m", "1h30m").
int64_t ParseSince(const std::string& s) {
  using namespace std::chrono;
  const int64_t now = duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count();
  static const std::regex kDuration("^(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?$");
  std::smatch m;
  if (std::regex_match(s, m, kDuration) && !s.empty()) {
    int64_t secs = (m[2].matched ? std::stoll(m[2]) * 3600 : 0) +
                   (m[4].matched ? std::stoll(m[4]) * 60 : 0) +
                   (m[6].matched ? std::stoll(m[6]) : 0);
    return now - secs * 1000000000LL;
  }
  int64_t t = CriLogTime(s);
  if (t < 0)
    throw std::runtime_error("--since " + s +
                             ": expected an RFC 3339 time or a duration like 10s, 5m, 2h");
  return t;
}

// One complete log entry (partial lines joined).
struct LogEntry {
  int64_t time_ns;
  std::string time, stream, text;
};

// Reads the complete entries of a CRI log from `f` onwards ("<time> <stream> <P|F> <text>").
void ReadEntries(std::ifstream& f, std::string& partial, std::vector<LogEntry>& out) {
  std::string line;
  while (std::getline(f, line)) {
    if (f.eof()) {  // incomplete line: wait for the rest
      f.clear();
      f.seekg(-static_cast<std::streamoff>(line.size()), std::ios::cur);
      break;
    }
    size_t a = line.find(' '), b = a == std::string::npos ? a : line.find(' ', a + 1);
    size_t c = b == std::string::npos ? b : line.find(' ', b + 1);
    if (c == std::string::npos) continue;
    std::string tag = line.substr(b + 1, c - b - 1);
    partial += line.substr(c + 1);
    if (tag == "P") continue;
    std::string time = line.substr(0, a);
    out.push_back({CriLogTime(time), time, line.substr(a + 1, b - a - 1), std::move(partial)});
    partial.clear();
  }
}

void PrintEntries(const std::vector<LogEntry>& entries, size_t from, const LogOptions& o) {
  for (size_t i = from; i < entries.size(); ++i) {
    const auto& e = entries[i];
    if (o.since_ns > 0 && e.time_ns < o.since_ns) continue;
    auto& out = e.stream == "stderr" ? std::cerr : std::cout;
    if (o.timestamps) out << e.time << " ";
    out << e.text << "\n";
  }
}

// Prints a CRI log file: entries since --since, the last --tail of them, then with --follow the
// new ones while the container runs.
void PrintLog(const std::string& path, const LogOptions& o, const std::function<bool()>& running) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open log file " + path);
  std::string partial;
  std::vector<LogEntry> entries;
  ReadEntries(f, partial, entries);
  std::vector<LogEntry> shown;
  for (auto& e : entries) {
    if (o.since_ns <= 0 || e.time_ns >= o.since_ns) shown.push_back(std::move(e));
  }
  size_t from = o.tail >= 0 && size_t(o.tail) < shown.size() ? shown.size() - size_t(o.tail) : 0;
  PrintEntries(shown, from, o);
  bool follow = o.follow;
  while (follow) {
    std::cout.flush();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    f.clear();
    follow = running();
    std::vector<LogEntry> more;
    ReadEntries(f, partial, more);
    PrintEntries(more, 0, o);
  }
}

}  // namespace

void AddPodCommands(CLI::App& app, Globals& g) {
  // runp
  {
    auto* c = app.add_subcommand("runp", "Run a new pod sandbox from a PodSandboxConfig JSON file");
    auto path = std::make_shared<std::string>();
    auto handler = std::make_shared<std::string>();
    c->add_option("config", *path, "pod-config.json")->required();
    c->add_option("-r,--runtime", *handler, "runtime handler");
    c->callback([&g, path, handler] {
      v1::RunPodSandboxRequest req;
      *req.mutable_config() = ParseJsonFile<v1::PodSandboxConfig>(*path);
      req.set_runtime_handler(*handler);
      v1::RunPodSandboxResponse resp;
      grpc::ClientContext ctx;
      g.Prepare(ctx);
      Check(Stub(g)->RunPodSandbox(&ctx, req, &resp), "run pod sandbox");
      std::cout << resp.pod_sandbox_id() << "\n";
    });
  }
  // create
  {
    auto* c = app.add_subcommand("create", "Create a container in a pod: create POD_ID CONTAINER.json POD.json");
    auto pod = std::make_shared<std::string>();
    auto cpath = std::make_shared<std::string>();
    auto ppath = std::make_shared<std::string>();
    c->add_option("pod", *pod, "pod sandbox id")->required();
    c->add_option("container-config", *cpath, "container-config.json")->required();
    c->add_option("pod-config", *ppath, "pod-config.json")->required();
    c->callback([&g, pod, cpath, ppath] {
      v1::CreateContainerRequest req;
      req.set_pod_sandbox_id(*pod);
      *req.mutable_config() = ParseJsonFile<v1::ContainerConfig>(*cpath);
      *req.mutable_sandbox_config() = ParseJsonFile<v1::PodSandboxConfig>(*ppath);
      v1::CreateContainerResponse resp;
      grpc::ClientContext ctx;
      g.Prepare(ctx);
      Check(Stub(g)->CreateContainer(&ctx, req, &resp), "create container");
      std::cout << resp.container_id() << "\n";
    });
  }
  // start / stop / rm / stopp / rmp
  {
    auto* c = app.add_subcommand("start", "Start one or more created containers");
    auto ids = std::make_shared<std::vector<std::string>>();
    c->add_option("ids", *ids, "container ids")->required();
    c->callback([&g, ids] {
      ForEach(*ids, [&](const std::string& id) {
        v1::StartContainerRequest req;
        req.set_container_id(id);
        v1::StartContainerResponse resp;
        grpc::ClientContext ctx;
        g.Prepare(ctx);
        Check(Stub(g)->StartContainer(&ctx, req, &resp), "start container " + id);
      });
    });
  }
  {
    auto* c = app.add_subcommand("stop", "Stop one or more running containers");
    auto ids = std::make_shared<std::vector<std::string>>();
    auto timeout = std::make_shared<int64_t>(10);
    c->add_option("ids", *ids, "container ids")->required();
    c->add_option("-t,--time", *timeout, "seconds to wait before killing the container (default 10)");
    c->callback([&g, ids, timeout] {
      ForEach(*ids, [&](const std::string& id) {
        v1::StopContainerRequest req;
        req.set_container_id(id);
        req.set_timeout(*timeout);
        v1::StopContainerResponse resp;
        grpc::ClientContext ctx;
        g.Prepare(ctx);
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(*timeout + g.timeout_seconds));
        Check(Stub(g)->StopContainer(&ctx, req, &resp), "stop container " + id);
      });
    });
  }
  {
    auto* c = app.add_subcommand("rm", "Remove one or more containers");
    auto ids = std::make_shared<std::vector<std::string>>();
    auto force = std::make_shared<bool>(false);
    c->add_option("ids", *ids, "container ids")->required();
    c->add_flag("-f,--force", *force, "stop running containers first");
    c->callback([&g, ids, force] {
      ForEach(*ids, [&](const std::string& id) {
        if (!*force) {
          v1::ContainerStatusRequest sreq;
          sreq.set_container_id(id);
          v1::ContainerStatusResponse sresp;
          grpc::ClientContext sctx;
          g.Prepare(sctx);
          Check(Stub(g)->ContainerStatus(&sctx, sreq, &sresp), "container status " + id);
          if (sresp.status().state() == v1::CONTAINER_RUNNING) {
            throw std::runtime_error("container " + id + " is running, stop it first or use -f");
          }
        }
        v1::RemoveContainerRequest req;
        req.set_container_id(id);
        v1::RemoveContainerResponse resp;
        grpc::ClientContext ctx;
        g.Prepare(ctx);
        Check(Stub(g)->RemoveContainer(&ctx, req, &resp), "remove container " + id);
      });
    });
  }
  {
    auto* c = app.add_subcommand("stopp", "Stop one or more pod sandboxes");
    auto ids = std::make_shared<std::vector<std::string>>();
    c->add_option("ids", *ids, "pod sandbox ids")->required();
    c->callback([&g, ids] {
      ForEach(*ids, [&](const std::string& id) {
        v1::StopPodSandboxRequest req;
        req.set_pod_sandbox_id(id);
        v1::StopPodSandboxResponse resp;
        grpc::ClientContext ctx;
        g.Prepare(ctx);
        Check(Stub(g)->StopPodSandbox(&ctx, req, &resp), "stop pod sandbox " + id);
      });
    });
  }
  {
    auto* c = app.add_subcommand("rmp", "Remove one or more pod sandboxes");
    auto ids = std::make_shared<std::vector<std::string>>();
    auto force = std::make_shared<bool>(false);
    c->add_option("ids", *ids, "pod sandbox ids")->required();
    c->add_flag("-f,--force", *force, "stop ready pods first");
    c->callback([&g, ids, force] {
      ForEach(*ids, [&](const std::string& id) {
        if (!*force) {
          v1::PodSandboxStatusRequest sreq;
          sreq.set_pod_sandbox_id(id);
          v1::PodSandboxStatusResponse sresp;
          grpc::ClientContext sctx;
          g.Prepare(sctx);
          Check(Stub(g)->PodSandboxStatus(&sctx, sreq, &sresp), "pod sandbox status " + id);
          if (sresp.status().state() == v1::SANDBOX_READY) {
            throw std::runtime_error("pod sandbox " + id + " is ready, stop it first or use -f");
          }
        }
        v1::RemovePodSandboxRequest req;
        req.set_pod_sandbox_id(id);
        v1::RemovePodSandboxResponse resp;
        grpc::ClientContext ctx;
        g.Prepare(ctx);
        Check(Stub(g)->RemovePodSandbox(&ctx, req, &resp), "remove pod sandbox " + id);
      });
    });
  }
  // ps
  {
    auto* c = app.add_subcommand("ps", "List containers");
    auto f = std::make_shared<ListFlags>();
    auto all = std::make_shared<bool>(false);
    auto pod = std::make_shared<std::string>();
    c->add_flag("-a,--all", *all, "show all containers (default: running)");
    c->add_option("-p,--pod", *pod, "filter by pod id");
    AddListFlags(c, *f, "created, running, exited or unknown (default: running; with -a: all)");
    c->callback([&g, all, pod, f] {
      v1::ListContainersRequest req;
      auto* filter = req.mutable_filter();
      if (!f->state.empty()) {
        filter->mutable_state()->set_state(ContainerStateFromName(f->state));
      } else if (!*all) {
        filter->mutable_state()->set_state(v1::CONTAINER_RUNNING);
      }
      filter->set_pod_sandbox_id(*pod);
      for (const auto& [k, v] : ParseLabels(f->labels)) (*filter->mutable_label_selector())[k] = v;
      v1::ListContainersResponse resp;
      grpc::ClientContext ctx;
      g.Prepare(ctx);
      Check(Stub(g)->ListContainers(&ctx, req, &resp), "list containers");
      KeepMatching(resp.mutable_containers(), f->name,
                   [](const v1::Container& x) { return x.metadata().name(); });
      if (PrintList(
              resp, g, *f, [](const v1::Container& x) { return x.id(); }, resp.containers()))
        return;
      std::vector<std::vector<std::string>> rows = {{"CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID"}};
      for (const auto& x : resp.containers()) {
        rows.push_back({Id(x.id(), *f), x.image().image(), Ago(x.created_at()),
                        StateName(x.state()), x.metadata().name(),
                        std::to_string(x.metadata().attempt()), Id(x.pod_sandbox_id(), *f)});
      }
      PrintTable(rows);
    });
  }
  // pods
  {
    auto* c = app.add_subcommand("pods", "List pod sandboxes");
    auto f = std::make_shared<ListFlags>();
    AddListFlags(c, *f, "ready or notready");
    auto runtime = std::make_shared<std::string>();
    auto* by_runtime = c->add_option(
        "-r,--runtime", *runtime,
        "only pods of this runtime handler, as named at creation (\"\": the default)");
    c->callback([&g, f, runtime, by_runtime] {
      v1::ListPodSandboxRequest req;
      auto* filter = req.mutable_filter();
      if (!f->state.empty()) filter->mutable_state()->set_state(PodStateFromName(f->state));
      for (const auto& [k, v] : ParseLabels(f->labels)) (*filter->mutable_label_selector())[k] = v;
      v1::ListPodSandboxResponse resp;
      grpc::ClientContext ctx;
      g.Prepare(ctx);
      Check(Stub(g)->ListPodSandbox(&ctx, req, &resp), "list pod sandboxes");
      if (by_runtime->count() > 0) {
        auto* items = resp.mutable_items();
        items->erase(std::remove_if(
                         items->begin(), items->end(),
                         [&](const v1::PodSandbox& p) { return p.runtime_handler() != *runtime; }),
                     items->end());
      }
      KeepMatching(resp.mutable_items(), f->name,
                   [](const v1::PodSandbox& x) { return x.metadata().name(); });
      if (PrintList(
              resp, g, *f, [](const v1::PodSandbox& x) { return x.id(); }, resp.items()))
        return;
      std::vector<std::vector<std::string>> rows = {
          {"POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "IP", "RUNTIME"}};
      for (const auto& x : resp.items()) {
        rows.push_back({Id(x.id(), *f), Ago(x.created_at()),
                        x.state() == v1::SANDBOX_READY ? "Ready" : "NotReady", x.metadata().name(),
                        x.metadata().namespace_(), std::to_string(x.metadata().attempt()),
                        PodIP(g, x.id()),
                        x.runtime_handler().empty() ? "(default)" : x.runtime_handler()});
      }
      PrintTable(rows);
    });
  }
  // inspect / inspectp
  {
    auto* c = app.add_subcommand("inspect", "Show the status of one or more containers");
    auto ids = std::make_shared<std::vector<std::string>>();
    c->add_option("ids", *ids, "container ids")->required();
    c->callback([&g, ids] {
      for (const auto& id : *ids) {
        v1::ContainerStatusRequest req;
        req.set_container_id(id);
        req.set_verbose(true);
        v1::ContainerStatusResponse resp;
        grpc::ClientContext ctx;
        g.Prepare(ctx);
        Check(Stub(g)->ContainerStatus(&ctx, req, &resp), "container status " + id);
        PrintInspect(resp.status(), resp.info());
      }
    });
  }
  {
    auto* c = app.add_subcommand("inspectp", "Show the status of one or more pod sandboxes");
    auto ids = std::make_shared<std::vector<std::string>>();
    c->add_option("ids", *ids, "pod sandbox ids")->required();
    c->callback([&g, ids] {
      for (const auto& id : *ids) {
        v1::PodSandboxStatusRequest req;
        req.set_pod_sandbox_id(id);
        req.set_verbose(true);
        v1::PodSandboxStatusResponse resp;
        grpc::ClientContext ctx;
        g.Prepare(ctx);
        Check(Stub(g)->PodSandboxStatus(&ctx, req, &resp), "pod sandbox status " + id);
        PrintInspect(resp.status(), resp.info());
      }
    });
  }
  // logs
  {
    auto* c = app.add_subcommand("logs", "Print the log of a container");
    auto id = std::make_shared<std::string>();
    auto opts = std::make_shared<LogOptions>();
    auto since = std::make_shared<std::string>();
    c->add_option("id", *id, "container id")->required();
    c->add_flag("-f,--follow", opts->follow, "follow the log while the container runs");
    c->add_option("--tail", opts->tail, "only the last N lines (-1: all)");
    c->add_option("--since", *since,
                  "only lines since a time (RFC 3339) or a duration ago (10s, 5m, 2h)");
    c->add_flag("-t,--timestamps", opts->timestamps, "show each line's time");
    c->callback([&g, id, opts, since] {
      auto status = [&] {
        v1::ContainerStatusRequest req;
        req.set_container_id(*id);
        v1::ContainerStatusResponse resp;
        grpc::ClientContext ctx;
        g.Prepare(ctx);
        Check(Stub(g)->ContainerStatus(&ctx, req, &resp), "container status " + *id);
        return resp.status();
      };
      if (!since->empty()) opts->since_ns = ParseSince(*since);
      auto st = status();
      if (st.log_path().empty()) throw std::runtime_error("container " + *id + " has no log path");
      PrintLog(st.log_path(), *opts, [&] { return status().state() == v1::CONTAINER_RUNNING; });
    });
  }
  // stats
  {
    auto* c = app.add_subcommand("stats", "Resource usage of containers");
    auto all = std::make_shared<bool>(false);
    c->add_flag("-a,--all", *all, "(accepted for crictl compatibility)");
    c->callback([&g] {
      v1::ListContainerStatsRequest req;
      v1::ListContainerStatsResponse resp;
      grpc::ClientContext ctx;
      g.Prepare(ctx);
      Check(Stub(g)->ListContainerStats(&ctx, req, &resp), "list container stats");
      if (!g.Table()) {
        cri::PrintStructured(cri::ToJSON(resp), g.output);
        return;
      }
      std::vector<std::vector<std::string>> rows = {{"CONTAINER", "NAME", "CPU NS", "MEM (working set)", "DISK"}};
      for (const auto& s : resp.stats()) {
        rows.push_back({Short(s.attributes().id()), s.attributes().metadata().name(),
                        std::to_string(s.cpu().usage_core_nano_seconds().value()),
                        std::to_string(s.memory().working_set_bytes().value() / 1024) + "kB",
                        std::to_string(s.writable_layer().used_bytes().value() / 1024) + "kB"});
      }
      PrintTable(rows);
    });
  }
  // run: pod + container with defaults
  {
    auto* c = app.add_subcommand("run", "Run a container in a new pod with defaults: run IMAGE -- CMD...");
    auto image = std::make_shared<std::string>();
    auto cmd = std::make_shared<std::vector<std::string>>();
    auto name = std::make_shared<std::string>();
    c->add_option("image", *image, "image reference")->required();
    c->add_option("cmd", *cmd, "command");
    c->add_option("--name", *name, "pod and container name (default: berthctl-run-<time>)");
    c->callback([&g, image, cmd, name] {
      std::string n = name->empty() ? "berthctl-run-" + std::to_string(::time(nullptr)) : *name;
      v1::PodSandboxConfig pod;
      pod.mutable_metadata()->set_name(n);
      pod.mutable_metadata()->set_namespace_("default");
      pod.mutable_metadata()->set_uid(n);
      pod.set_hostname(n);
      pod.set_log_directory("/var/log/berth/pods/" + n);
      v1::RunPodSandboxRequest rreq;
      *rreq.mutable_config() = pod;
      v1::RunPodSandboxResponse rresp;
      {
        grpc::ClientContext ctx;
        g.Prepare(ctx);
        Check(Stub(g)->RunPodSandbox(&ctx, rreq, &rresp), "run pod sandbox");
      }
      v1::CreateContainerRequest creq;
      creq.set_pod_sandbox_id(rresp.pod_sandbox_id());
      *creq.mutable_sandbox_config() = pod;
      auto* cc = creq.mutable_config();
      cc->mutable_metadata()->set_name(n);
      cc->mutable_image()->set_image(*image);
      for (const auto& a : *cmd) cc->add_command(a);
      cc->set_log_path(n + ".log");
      v1::CreateContainerResponse cresp;
      {
        grpc::ClientContext ctx;
        g.Prepare(ctx);
        Check(Stub(g)->CreateContainer(&ctx, creq, &cresp), "create container");
      }
      v1::StartContainerRequest sreq;
      sreq.set_container_id(cresp.container_id());
      v1::StartContainerResponse sresp;
      {
        grpc::ClientContext ctx;
        g.Prepare(ctx);
        Check(Stub(g)->StartContainer(&ctx, sreq, &sresp), "start container");
      }
      std::cout << cresp.container_id() << "\n";
    });
  }
}

}  // namespace berth::berthctl
