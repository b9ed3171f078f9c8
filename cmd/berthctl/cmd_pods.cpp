// Pods and containers, crictl style: runp, create, start, stop, rm, stopp, rmp, ps, pods,
// inspect, inspectp, exec, logs, stats, run.
#include "runtime/v1/api.grpc.pb.h"  // first: its enum Signal names collide with <signal.h> macros

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

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

// Follows a CRI log file: "<time> <stream> <P|F> <text>" lines, partial lines joined.
void PrintLog(const std::string& path, bool follow, const std::function<bool()>& running) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open log file " + path);
  std::string line, partial;
  for (;;) {
    while (std::getline(f, line)) {
      if (f.eof()) {  // incomplete line: wait for the rest
        f.clear();
        f.seekg(-static_cast<std::streamoff>(line.size()), std::ios::cur);
        break;
      }
      size_t a = line.find(' '), b = a == std::string::npos ? a : line.find(' ', a + 1);
      size_t c = b == std::string::npos ? b : line.find(' ', b + 1);
      if (c == std::string::npos) continue;
      std::string stream = line.substr(a + 1, b - a - 1), tag = line.substr(b + 1, c - b - 1);
      partial += line.substr(c + 1);
      if (tag == "P") continue;
      (stream == "stderr" ? std::cerr : std::cout) << partial << "\n";
      partial.clear();
    }
    if (!follow) break;
    f.clear();
    if (!running()) {
      follow = false;
      continue;
    }
    std::cout.flush();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
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
    auto all = std::make_shared<bool>(false);
    auto quiet = std::make_shared<bool>(false);
    auto pod = std::make_shared<std::string>();
    c->add_flag("-a,--all", *all, "show all containers (default: running)");
    c->add_flag("-q,--quiet", *quiet, "only ids");
    c->add_option("-p,--pod", *pod, "filter by pod id");
    c->callback([&g, all, quiet, pod] {
      v1::ListContainersRequest req;
      if (!*all) req.mutable_filter()->mutable_state()->set_state(v1::CONTAINER_RUNNING);
      req.mutable_filter()->set_pod_sandbox_id(*pod);
      v1::ListContainersResponse resp;
      grpc::ClientContext ctx;
      g.Prepare(ctx);
      Check(Stub(g)->ListContainers(&ctx, req, &resp), "list containers");
      if (g.Json()) {
        std::cout << ToJson(resp) << "\n";
        return;
      }
      if (*quiet) {
        for (const auto& x : resp.containers()) std::cout << x.id() << "\n";
        return;
      }
      std::vector<std::vector<std::string>> rows = {{"CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID"}};
      for (const auto& x : resp.containers()) {
        rows.push_back({Short(x.id()), x.image().image(), Ago(x.created_at()), StateName(x.state()),
                        x.metadata().name(), std::to_string(x.metadata().attempt()), Short(x.pod_sandbox_id())});
      }
      PrintTable(rows);
    });
  }
  // pods
  {
    auto* c = app.add_subcommand("pods", "List pod sandboxes");
    auto quiet = std::make_shared<bool>(false);
    c->add_flag("-q,--quiet", *quiet, "only ids");
    auto runtime = std::make_shared<std::string>();
    auto* by_runtime = c->add_option(
        "-r,--runtime", *runtime,
        "only pods of this runtime handler, as named at creation (\"\": the default)");
    c->callback([&g, quiet, runtime, by_runtime] {
      v1::ListPodSandboxRequest req;
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
      if (g.Json()) {
        std::cout << ToJson(resp) << "\n";
        return;
      }
      if (*quiet) {
        for (const auto& x : resp.items()) std::cout << x.id() << "\n";
        return;
      }
      std::vector<std::vector<std::string>> rows = {{"POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"}};
      for (const auto& x : resp.items()) {
        rows.push_back({Short(x.id()), Ago(x.created_at()), x.state() == v1::SANDBOX_READY ? "Ready" : "NotReady",
                        x.metadata().name(), x.metadata().namespace_(), std::to_string(x.metadata().attempt()),
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
  // exec (ExecSync)
  {
    auto* c = app.add_subcommand("exec", "Run a command in a running container: exec [--timeout N] ID -- CMD...");
    auto id = std::make_shared<std::string>();
    auto cmd = std::make_shared<std::vector<std::string>>();
    auto timeout = std::make_shared<int64_t>(0);
    c->add_option("--timeout", *timeout, "seconds before the command is killed (0: none)");
    c->add_option("id", *id, "container id")->required();
    c->add_option("cmd", *cmd, "command")->required();
    c->callback([&g, id, cmd, timeout] {
      v1::ExecSyncRequest req;
      req.set_container_id(*id);
      for (const auto& a : *cmd) req.add_cmd(a);
      req.set_timeout(*timeout);
      v1::ExecSyncResponse resp;
      grpc::ClientContext ctx;
      g.Prepare(ctx);
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(*timeout > 0 ? *timeout + g.timeout_seconds : 24 * 3600));
      Check(Stub(g)->ExecSync(&ctx, req, &resp), "exec in container " + *id);
      std::cout << resp.stdout();
      std::cerr << resp.stderr();
      std::cout.flush();
      if (resp.exit_code() != 0) std::exit(resp.exit_code() & 0xff ? resp.exit_code() & 0xff : 1);
    });
  }
  // logs
  {
    auto* c = app.add_subcommand("logs", "Print the log of a container");
    auto id = std::make_shared<std::string>();
    auto follow = std::make_shared<bool>(false);
    c->add_option("id", *id, "container id")->required();
    c->add_flag("-f,--follow", *follow, "follow the log while the container runs");
    c->callback([&g, id, follow] {
      auto status = [&] {
        v1::ContainerStatusRequest req;
        req.set_container_id(*id);
        v1::ContainerStatusResponse resp;
        grpc::ClientContext ctx;
        g.Prepare(ctx);
        Check(Stub(g)->ContainerStatus(&ctx, req, &resp), "container status " + *id);
        return resp.status();
      };
      auto st = status();
      if (st.log_path().empty()) throw std::runtime_error("container " + *id + " has no log path");
      PrintLog(st.log_path(), *follow, [&] { return status().state() == v1::CONTAINER_RUNNING; });
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
      if (g.Json()) {
        std::cout << ToJson(resp) << "\n";
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
