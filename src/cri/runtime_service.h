// runtime.v1.RuntimeService. Each method is one member function; the ones not implemented yet
// answer UNIMPLEMENTED ("RunPodSandbox is not implemented yet") and are replaced one by one.
// Internal to src/cri and its tests (includes gRPC).
#pragma once

#include "runtime/v1/api.grpc.pb.h"

namespace berth::cri {

class CRIServer;

// ListContainers is served on the synchronous server's threads with raw bytes (a streamed-unary
// handler over grpc::ByteBuffer): the lifecycle hands over the reply already in wire format (see
// lifecycle::RuntimeService::ListContainersWire). Not a callback method: any callback method
// makes gRPC start its "nexting" threads, which poll with a one-second deadline and then sleep
// 100 ms, and requests arriving meanwhile waited up to ~100 ms before their handler started.
class RuntimeServiceImpl final : public runtime::v1::RuntimeService::Service {
 public:
  explicit RuntimeServiceImpl(CRIServer& server);

  grpc::Status Version(grpc::ServerContext* ctx, const runtime::v1::VersionRequest* req, runtime::v1::VersionResponse* resp) override;
  grpc::Status RunPodSandbox(grpc::ServerContext* ctx, const runtime::v1::RunPodSandboxRequest* req, runtime::v1::RunPodSandboxResponse* resp) override;
  grpc::Status StopPodSandbox(grpc::ServerContext* ctx, const runtime::v1::StopPodSandboxRequest* req, runtime::v1::StopPodSandboxResponse* resp) override;
  grpc::Status RemovePodSandbox(grpc::ServerContext* ctx, const runtime::v1::RemovePodSandboxRequest* req, runtime::v1::RemovePodSandboxResponse* resp) override;
  grpc::Status PodSandboxStatus(grpc::ServerContext* ctx, const runtime::v1::PodSandboxStatusRequest* req, runtime::v1::PodSandboxStatusResponse* resp) override;
  grpc::Status ListPodSandbox(grpc::ServerContext* ctx, const runtime::v1::ListPodSandboxRequest* req, runtime::v1::ListPodSandboxResponse* resp) override;
  grpc::Status StreamPodSandboxes(grpc::ServerContext* ctx, const runtime::v1::StreamPodSandboxesRequest* req, grpc::ServerWriter<runtime::v1::StreamPodSandboxesResponse>* writer) override;
  grpc::Status CreateContainer(grpc::ServerContext* ctx, const runtime::v1::CreateContainerRequest* req, runtime::v1::CreateContainerResponse* resp) override;
  grpc::Status StartContainer(grpc::ServerContext* ctx, const runtime::v1::StartContainerRequest* req, runtime::v1::StartContainerResponse* resp) override;
  grpc::Status StopContainer(grpc::ServerContext* ctx, const runtime::v1::StopContainerRequest* req, runtime::v1::StopContainerResponse* resp) override;
  grpc::Status RemoveContainer(grpc::ServerContext* ctx, const runtime::v1::RemoveContainerRequest* req, runtime::v1::RemoveContainerResponse* resp) override;
  grpc::Status ListContainersRaw(grpc::ServerContext* ctx, grpc::ServerUnaryStreamer<grpc::ByteBuffer, grpc::ByteBuffer>* stream);
  grpc::Status StreamContainers(grpc::ServerContext* ctx, const runtime::v1::StreamContainersRequest* req, grpc::ServerWriter<runtime::v1::StreamContainersResponse>* writer) override;
  grpc::Status ContainerStatus(grpc::ServerContext* ctx, const runtime::v1::ContainerStatusRequest* req, runtime::v1::ContainerStatusResponse* resp) override;
  grpc::Status UpdateContainerResources(grpc::ServerContext* ctx, const runtime::v1::UpdateContainerResourcesRequest* req, runtime::v1::UpdateContainerResourcesResponse* resp) override;
  grpc::Status ReopenContainerLog(grpc::ServerContext* ctx, const runtime::v1::ReopenContainerLogRequest* req, runtime::v1::ReopenContainerLogResponse* resp) override;
  grpc::Status ExecSync(grpc::ServerContext* ctx, const runtime::v1::ExecSyncRequest* req, runtime::v1::ExecSyncResponse* resp) override;
  grpc::Status Exec(grpc::ServerContext* ctx, const runtime::v1::ExecRequest* req, runtime::v1::ExecResponse* resp) override;
  grpc::Status Attach(grpc::ServerContext* ctx, const runtime::v1::AttachRequest* req, runtime::v1::AttachResponse* resp) override;
  grpc::Status PortForward(grpc::ServerContext* ctx, const runtime::v1::PortForwardRequest* req, runtime::v1::PortForwardResponse* resp) override;
  grpc::Status ContainerStats(grpc::ServerContext* ctx, const runtime::v1::ContainerStatsRequest* req, runtime::v1::ContainerStatsResponse* resp) override;
  grpc::Status ListContainerStats(grpc::ServerContext* ctx, const runtime::v1::ListContainerStatsRequest* req, runtime::v1::ListContainerStatsResponse* resp) override;
  grpc::Status StreamContainerStats(grpc::ServerContext* ctx, const runtime::v1::StreamContainerStatsRequest* req, grpc::ServerWriter<runtime::v1::StreamContainerStatsResponse>* writer) override;
  grpc::Status PodSandboxStats(grpc::ServerContext* ctx, const runtime::v1::PodSandboxStatsRequest* req, runtime::v1::PodSandboxStatsResponse* resp) override;
  grpc::Status ListPodSandboxStats(grpc::ServerContext* ctx, const runtime::v1::ListPodSandboxStatsRequest* req, runtime::v1::ListPodSandboxStatsResponse* resp) override;
  grpc::Status StreamPodSandboxStats(grpc::ServerContext* ctx, const runtime::v1::StreamPodSandboxStatsRequest* req, grpc::ServerWriter<runtime::v1::StreamPodSandboxStatsResponse>* writer) override;
  grpc::Status UpdateRuntimeConfig(grpc::ServerContext* ctx, const runtime::v1::UpdateRuntimeConfigRequest* req, runtime::v1::UpdateRuntimeConfigResponse* resp) override;
  grpc::Status Status(grpc::ServerContext* ctx, const runtime::v1::StatusRequest* req, runtime::v1::StatusResponse* resp) override;
  grpc::Status CheckpointContainer(grpc::ServerContext* ctx, const runtime::v1::CheckpointContainerRequest* req, runtime::v1::CheckpointContainerResponse* resp) override;
  grpc::Status GetContainerEvents(grpc::ServerContext* ctx, const runtime::v1::GetEventsRequest* req, grpc::ServerWriter<runtime::v1::ContainerEventResponse>* writer) override;
  grpc::Status ListMetricDescriptors(grpc::ServerContext* ctx, const runtime::v1::ListMetricDescriptorsRequest* req, runtime::v1::ListMetricDescriptorsResponse* resp) override;
  grpc::Status ListPodSandboxMetrics(grpc::ServerContext* ctx, const runtime::v1::ListPodSandboxMetricsRequest* req, runtime::v1::ListPodSandboxMetricsResponse* resp) override;
  grpc::Status StreamPodSandboxMetrics(grpc::ServerContext* ctx, const runtime::v1::StreamPodSandboxMetricsRequest* req, grpc::ServerWriter<runtime::v1::StreamPodSandboxMetricsResponse>* writer) override;
  grpc::Status RuntimeConfig(grpc::ServerContext* ctx, const runtime::v1::RuntimeConfigRequest* req, runtime::v1::RuntimeConfigResponse* resp) override;
  grpc::Status UpdatePodSandboxResources(grpc::ServerContext* ctx, const runtime::v1::UpdatePodSandboxResourcesRequest* req, runtime::v1::UpdatePodSandboxResourcesResponse* resp) override;

 private:
  CRIServer& server_;
};

}  // namespace berth::cri
