#include "cri/runtime_service.h"

#include "config/cri.h"
#include "cri/cri.h"
#include "cri/errors.h"
#include "cri/network.h"
#include "cri/server.h"
#include "cri/streaming.h"
#include "cri/validate.h"
#include "criplugins/criplugins.h"
#include "lifecycle/service.h"
#include "network/cni.h"

namespace berth::cri {

namespace v1 = runtime::v1;

namespace {

// The pods and containers service, or Error(kUnavailable) naming why it is absent.
lifecycle::RuntimeService& Pods(const CRIServer& server) {
  if (!server.deps().pods) {
    throw Error(Code::kUnavailable, "pods and containers are not available: " + server.deps().pods_error);
  }
  return *server.deps().pods;
}

}  // namespace

grpc::Status RuntimeServiceImpl::Version(grpc::ServerContext*, const v1::VersionRequest*,
                                         v1::VersionResponse* resp) {
  return Guard("Version", [&] {
    resp->set_version("0.1.0");
    resp->set_runtime_name("berth");
    resp->set_runtime_version(BerthVersion());
    resp->set_runtime_api_version("v1");
  });
}

grpc::Status RuntimeServiceImpl::Status(grpc::ServerContext*, const v1::StatusRequest* req,
                                        v1::StatusResponse* resp) {
  return Guard("Status", [&] {
    auto* runtime_ready = resp->mutable_status()->add_conditions();
    runtime_ready->set_type("RuntimeReady");
    runtime_ready->set_status(true);
    std::map<std::string, std::string> net_info;
    FillNetworkReady(server_.deps().cni.get(), resp->mutable_status()->add_conditions(),
                     req->verbose() ? &net_info : nullptr);
    for (const auto& h : server_.deps().handlers) {
      auto* rh = resp->add_runtime_handlers();
      rh->set_name(h.name);
      rh->mutable_features()->set_recursive_read_only_mounts(h.recursive_read_only_mounts);
      rh->mutable_features()->set_user_namespaces(h.user_namespaces);
    }
    resp->mutable_features()->set_supplemental_groups_policy(true);  // KEP-3619: Merge and Strict
    resp->mutable_features()->set_user_namespaces_host_network(false);
    if (req->verbose()) {
      auto& info = *resp->mutable_info();
      info["config"] = server_.ConfigJSON().dump();
      for (auto& [k, v] : net_info) info[k] = v;
      nlohmann::ordered_json handlers = nlohmann::ordered_json::array();
      for (const auto& h : server_.deps().handlers) {
        handlers.push_back({{"name", h.name},
                            {"features",
                             {{"recursive_read_only_mounts", h.recursive_read_only_mounts},
                              {"user_namespaces", h.user_namespaces},
                              {"user_namespaces_reason", h.user_namespaces_reason}}}});
      }
      info["runtimeHandlers"] = handlers.dump();
      if (auto pem = StreamingCertificate(server_); !pem.empty()) info["streamingCertificate"] = pem;
    }
  });
}

grpc::Status RuntimeServiceImpl::UpdateRuntimeConfig(grpc::ServerContext*,
                                                     const v1::UpdateRuntimeConfigRequest* req,
                                                     v1::UpdateRuntimeConfigResponse*) {
  return Guard("UpdateRuntimeConfig", [&] {
    auto cidrs = ValidateUpdateRuntimeConfig(*req);
    if (server_.deps().cni) server_.deps().cni->UpdatePodCIDRs(cidrs);  // conf_template, if any
    server_.SetPodCIDRs(std::move(cidrs));
  });
}

grpc::Status RuntimeServiceImpl::RuntimeConfig(grpc::ServerContext*, const v1::RuntimeConfigRequest*,
                                               v1::RuntimeConfigResponse* resp) {
  return Guard("RuntimeConfig", [&] {
    bool systemd = false;
    if (const auto& rt = server_.deps().runtime) {
      if (const auto* h = rt->Handler("")) systemd = h->runtime.SystemdCgroup();
    }
    resp->mutable_linux()->set_cgroup_driver(systemd ? v1::SYSTEMD : v1::CGROUPFS);
  });
}

grpc::Status RuntimeServiceImpl::RunPodSandbox(grpc::ServerContext*, const v1::RunPodSandboxRequest* req, v1::RunPodSandboxResponse* resp) {
  return Guard("RunPodSandbox", [&] { Pods(server_).RunPodSandbox(*req, resp); });
}

grpc::Status RuntimeServiceImpl::StopPodSandbox(grpc::ServerContext*, const v1::StopPodSandboxRequest* req, v1::StopPodSandboxResponse*) {
  return Guard("StopPodSandbox", [&] { Pods(server_).StopPodSandbox(*req); });
}

grpc::Status RuntimeServiceImpl::RemovePodSandbox(grpc::ServerContext*, const v1::RemovePodSandboxRequest* req, v1::RemovePodSandboxResponse*) {
  return Guard("RemovePodSandbox", [&] { Pods(server_).RemovePodSandbox(*req); });
}

grpc::Status RuntimeServiceImpl::PodSandboxStatus(grpc::ServerContext*, const v1::PodSandboxStatusRequest* req, v1::PodSandboxStatusResponse* resp) {
  return Guard("PodSandboxStatus", [&] { Pods(server_).PodSandboxStatus(*req, resp); });
}

grpc::Status RuntimeServiceImpl::ListPodSandbox(grpc::ServerContext*, const v1::ListPodSandboxRequest* req, v1::ListPodSandboxResponse* resp) {
  return Guard("ListPodSandbox", [&] { Pods(server_).ListPodSandbox(*req, resp); });
}

grpc::Status RuntimeServiceImpl::StreamPodSandboxes(grpc::ServerContext*, const v1::StreamPodSandboxesRequest*,
                                    grpc::ServerWriter<v1::StreamPodSandboxesResponse>*) {
  return Unimplemented("StreamPodSandboxes");
}

grpc::Status RuntimeServiceImpl::CreateContainer(grpc::ServerContext*, const v1::CreateContainerRequest* req, v1::CreateContainerResponse* resp) {
  return Guard("CreateContainer", [&] { Pods(server_).CreateContainer(*req, resp); });
}

grpc::Status RuntimeServiceImpl::StartContainer(grpc::ServerContext*, const v1::StartContainerRequest* req, v1::StartContainerResponse*) {
  return Guard("StartContainer", [&] { Pods(server_).StartContainer(*req); });
}

grpc::Status RuntimeServiceImpl::StopContainer(grpc::ServerContext* ctx, const v1::StopContainerRequest* req, v1::StopContainerResponse*) {
  // The stop is abandoned (no SIGKILL) when the caller's context ends first, as containerd does.
  auto caller_gone = [ctx] {
    return ctx && (ctx->IsCancelled() || ctx->deadline() <= std::chrono::system_clock::now());
  };
  return Guard("StopContainer", [&] { Pods(server_).StopContainer(*req, caller_gone); });
}

grpc::Status RuntimeServiceImpl::RemoveContainer(grpc::ServerContext*, const v1::RemoveContainerRequest* req, v1::RemoveContainerResponse*) {
  return Guard("RemoveContainer", [&] { Pods(server_).RemoveContainer(*req); });
}

// The index of ListContainers among runtime.v1.RuntimeService's methods, in the order of
// api.proto (the generated WithStreamedUnaryMethod_ListContainers uses the same number).
constexpr int kListContainersMethod = 11;

RuntimeServiceImpl::RuntimeServiceImpl(CRIServer& server) : server_(server) {
  MarkMethodStreamed(kListContainersMethod,
                     new grpc::internal::StreamedUnaryHandler<grpc::ByteBuffer, grpc::ByteBuffer>(
                         [this](grpc::ServerContext* ctx, grpc::ServerUnaryStreamer<grpc::ByteBuffer, grpc::ByteBuffer>* s) {
                           return ListContainersRaw(ctx, s);
                         }));
}

grpc::Status RuntimeServiceImpl::ListContainersRaw(grpc::ServerContext*,
                                                   grpc::ServerUnaryStreamer<grpc::ByteBuffer, grpc::ByteBuffer>* stream) {
  grpc::ByteBuffer resp;
  grpc::Status st = Guard("ListContainers", [&] {
    grpc::ByteBuffer req;
    if (!stream->Read(&req)) throw Error(Code::kInvalidArgument, "ListContainers: no request");
    std::vector<grpc::Slice> slices;
    if (!req.Dump(&slices).ok()) throw Error(Code::kInvalidArgument, "ListContainers: unreadable request");
    std::string bytes;
    for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    v1::ListContainersRequest r;
    if (!r.ParseFromString(bytes)) throw Error(Code::kInvalidArgument, "ListContainers: malformed ListContainersRequest");
    // The reply's bytes are handed to gRPC as they are, without another copy.
    auto* wire = new std::string;
    try {
      Pods(server_).ListContainersWire(r, wire);
    } catch (...) {
      delete wire;
      throw;
    }
    grpc::Slice slice(wire->data(), wire->size(), [](void* p) { delete static_cast<std::string*>(p); }, wire);
    resp = grpc::ByteBuffer(&slice, 1);
  });
  if (st.ok() && !stream->Write(resp)) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "ListContainers: the reply could not be sent");
  return st;
}

grpc::Status RuntimeServiceImpl::StreamContainers(grpc::ServerContext*, const v1::StreamContainersRequest*,
                                    grpc::ServerWriter<v1::StreamContainersResponse>*) {
  return Unimplemented("StreamContainers");
}

grpc::Status RuntimeServiceImpl::ContainerStatus(grpc::ServerContext*, const v1::ContainerStatusRequest* req, v1::ContainerStatusResponse* resp) {
  return Guard("ContainerStatus", [&] { Pods(server_).ContainerStatus(*req, resp); });
}

grpc::Status RuntimeServiceImpl::UpdateContainerResources(grpc::ServerContext*, const v1::UpdateContainerResourcesRequest* req, v1::UpdateContainerResourcesResponse*) {
  return Guard("UpdateContainerResources", [&] { Pods(server_).UpdateContainerResources(*req); });
}

grpc::Status RuntimeServiceImpl::ReopenContainerLog(grpc::ServerContext*, const v1::ReopenContainerLogRequest* req, v1::ReopenContainerLogResponse*) {
  return Guard("ReopenContainerLog", [&] { Pods(server_).ReopenContainerLog(*req); });
}

grpc::Status RuntimeServiceImpl::ExecSync(grpc::ServerContext*, const v1::ExecSyncRequest* req, v1::ExecSyncResponse* resp) {
  return Guard("ExecSync", [&] { Pods(server_).ExecSync(*req, resp); });
}

// Exec, Attach and PortForward: cri/streaming.cpp.

grpc::Status RuntimeServiceImpl::ContainerStats(grpc::ServerContext*, const v1::ContainerStatsRequest* req, v1::ContainerStatsResponse* resp) {
  return Guard("ContainerStats", [&] { Pods(server_).ContainerStats(*req, resp); });
}

grpc::Status RuntimeServiceImpl::ListContainerStats(grpc::ServerContext*, const v1::ListContainerStatsRequest* req, v1::ListContainerStatsResponse* resp) {
  return Guard("ListContainerStats", [&] { Pods(server_).ListContainerStats(*req, resp); });
}

grpc::Status RuntimeServiceImpl::StreamContainerStats(grpc::ServerContext*, const v1::StreamContainerStatsRequest*,
                                    grpc::ServerWriter<v1::StreamContainerStatsResponse>*) {
  return Unimplemented("StreamContainerStats");
}

grpc::Status RuntimeServiceImpl::PodSandboxStats(grpc::ServerContext*, const v1::PodSandboxStatsRequest* req, v1::PodSandboxStatsResponse* resp) {
  return Guard("PodSandboxStats", [&] { Pods(server_).PodSandboxStats(*req, resp); });
}

grpc::Status RuntimeServiceImpl::ListPodSandboxStats(grpc::ServerContext*, const v1::ListPodSandboxStatsRequest* req, v1::ListPodSandboxStatsResponse* resp) {
  return Guard("ListPodSandboxStats", [&] { Pods(server_).ListPodSandboxStats(*req, resp); });
}

grpc::Status RuntimeServiceImpl::StreamPodSandboxStats(grpc::ServerContext*, const v1::StreamPodSandboxStatsRequest*,
                                    grpc::ServerWriter<v1::StreamPodSandboxStatsResponse>*) {
  return Unimplemented("StreamPodSandboxStats");
}

grpc::Status RuntimeServiceImpl::CheckpointContainer(grpc::ServerContext*, const v1::CheckpointContainerRequest*, v1::CheckpointContainerResponse*) {
  return Unimplemented("CheckpointContainer");
}

grpc::Status RuntimeServiceImpl::GetContainerEvents(grpc::ServerContext* ctx, const v1::GetEventsRequest*,
                                    grpc::ServerWriter<v1::ContainerEventResponse>* writer) {
  return Guard("GetContainerEvents", [&] {
    auto sub = Pods(server_).SubscribeEvents();
    v1::ContainerEventResponse ev;
    while (!ctx->IsCancelled()) {
      if (sub->Next(&ev, std::chrono::milliseconds(500)) && !writer->Write(ev)) break;
    }
  });
}

grpc::Status RuntimeServiceImpl::ListMetricDescriptors(grpc::ServerContext*, const v1::ListMetricDescriptorsRequest*, v1::ListMetricDescriptorsResponse*) {
  return Unimplemented("ListMetricDescriptors");
}

grpc::Status RuntimeServiceImpl::ListPodSandboxMetrics(grpc::ServerContext*, const v1::ListPodSandboxMetricsRequest*, v1::ListPodSandboxMetricsResponse*) {
  return Unimplemented("ListPodSandboxMetrics");
}

grpc::Status RuntimeServiceImpl::StreamPodSandboxMetrics(grpc::ServerContext*, const v1::StreamPodSandboxMetricsRequest*,
                                    grpc::ServerWriter<v1::StreamPodSandboxMetricsResponse>*) {
  return Unimplemented("StreamPodSandboxMetrics");
}

grpc::Status RuntimeServiceImpl::UpdatePodSandboxResources(grpc::ServerContext*, const v1::UpdatePodSandboxResourcesRequest*, v1::UpdatePodSandboxResourcesResponse*) {
  return Unimplemented("UpdatePodSandboxResources");
}

}  // namespace berth::cri
