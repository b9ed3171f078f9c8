// A gRPC server interceptor that counts every call by service, method and status code, and times
// it (metrics::GrpcHandled). Installed only when metrics are served.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include "daemon/daemon.h"
#include "metrics/metrics.h"

namespace berth::daemon {

namespace {

namespace gx = grpc::experimental;

class MetricsInterceptor final : public gx::Interceptor {
 public:
  explicit MetricsInterceptor(gx::ServerRpcInfo* info)
      : method_(info->method() ? info->method() : ""), start_(std::chrono::steady_clock::now()) {}

  void Intercept(gx::InterceptorBatchMethods* m) override {
    if (m->QueryInterceptionHookPoint(gx::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      metrics::GrpcHandled(method_, static_cast<int>(m->GetSendStatus().error_code()), s);
    }
    m->Proceed();
  }

 private:
  std::string method_;
  std::chrono::steady_clock::time_point start_;
};

class MetricsInterceptorFactory final : public gx::ServerInterceptorFactoryInterface {
 public:
  gx::Interceptor* CreateServerInterceptor(gx::ServerRpcInfo* info) override {
    return new MetricsInterceptor(info);
  }
};

}  // namespace

void AddMetricsInterceptor(grpc::ServerBuilder& builder) {
  std::vector<std::unique_ptr<gx::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(std::make_unique<MetricsInterceptorFactory>());
  builder.experimental().SetInterceptorCreators(std::move(creators));
}

}  // namespace berth::daemon
