// The interface a gRPC plugin (type io.containerd.grpc.v1) offers so that the daemon registers its
// services on the server. Kept free of gRPC headers.
#pragma once

namespace grpc {
class ServerBuilder;
}

namespace berth::plugin {

class GrpcService {
 public:
  virtual ~GrpcService() = default;
  // Adds the plugin's services to the server being built (builder.RegisterService(...)). The
  // service objects must live as long as the plugin instance.
  virtual void Register(grpc::ServerBuilder& builder) = 0;
};

}  // namespace berth::plugin
