// The CRI gRPC plugin io.containerd.grpc.v1.cri: serves runtime.v1.RuntimeService,
// runtime.v1.ImageService and berth.images.v1.Images on the daemon's socket. Its instance is a
// plugin::GrpcService; it requires the CRI runtime and images plugins and the warning service.
#pragma once

namespace berth::plugin {
class Registry;
}

namespace berth::cri {

inline constexpr const char* kCRIPluginID = "cri";  // io.containerd.grpc.v1.cri

// The version CRI Version reports as runtime_version ("0.1.0").
const char* BerthVersion();

void RegisterCRIServerPlugin(plugin::Registry& registry);

}  // namespace berth::cri
