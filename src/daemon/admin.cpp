// berth.admin.v1.Admin: plugins, warnings, plugin info and the effective config.
#include <chrono>

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "berth/admin/v1/admin.grpc.pb.h"
#include "common/error.h"
#include "daemon/check.h"
#include "daemon/daemon.h"
#include "plugin/grpc_service.h"
#include "plugin/services.h"

namespace berth::daemon {

namespace {

namespace pb = berth::admin::v1;

grpc::Status ToStatus(const std::exception& e) {
  if (const auto* be = dynamic_cast<const Error*>(&e)) {
    return grpc::Status(static_cast<grpc::StatusCode>(be->code()), be->what());
  }
  return grpc::Status(grpc::StatusCode::INTERNAL, e.what());
}

class AdminService final : public pb::Admin::Service, public plugin::GrpcService {
 public:
  AdminService(std::shared_ptr<plugin::IntrospectionService> intro,
               std::shared_ptr<plugin::WarningService> warnings,
               std::shared_ptr<const std::string> config,
               std::shared_ptr<const PipelineResult> pipeline)
      : intro_(std::move(intro)),
        warnings_(std::move(warnings)),
        config_(std::move(config)),
        pipeline_(std::move(pipeline)) {}

  void Register(grpc::ServerBuilder& builder) override { builder.RegisterService(this); }

  grpc::Status ListPlugins(grpc::ServerContext*, const pb::ListPluginsRequest*,
                           pb::ListPluginsResponse* resp) override {
    try {
      for (const auto& p : intro_->Plugins()) {
        auto* out = resp->add_plugins();
        out->set_type(p.type);
        out->set_id(p.id);
        for (const auto& r : p.requires_types) out->add_requires_types(r);
        out->set_status(p.status);
        out->set_error(p.error);
        for (const auto& [k, v] : p.exports) (*out->mutable_exports())[k] = v;
        for (const auto& pl : p.platforms) out->add_platforms(pl);
        for (const auto& c : p.capabilities) out->add_capabilities(c);
      }
      return grpc::Status::OK;
    } catch (const std::exception& e) {
      return ToStatus(e);
    }
  }

  grpc::Status ListWarnings(grpc::ServerContext*, const pb::ListWarningsRequest*,
                            pb::ListWarningsResponse* resp) override {
    for (const auto& w : warnings_->List()) {
      auto* out = resp->add_warnings();
      out->set_id(w.id);
      out->set_message(w.message);
      out->set_last_occurrence_unix_nano(
          std::chrono::duration_cast<std::chrono::nanoseconds>(w.last_occurrence.time_since_epoch()).count());
    }
    return grpc::Status::OK;
  }

  grpc::Status PluginInfo(grpc::ServerContext*, const pb::PluginInfoRequest* req,
                          pb::PluginInfoResponse* resp) override {
    try {
      nlohmann::json options = nlohmann::json::object();
      if (!req->options_json().empty()) {
        if (req->options_json().size() > (1u << 20)) {
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "options_json is larger than 1 MiB");
        }
        options = nlohmann::json::parse(req->options_json(), nullptr, false);
        if (options.is_discarded() || !options.is_object()) {
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "options_json: expected a JSON object");
        }
      }
      resp->set_info_json(intro_->PluginInfo(req->type(), req->id(), options).dump());
      return grpc::Status::OK;
    } catch (const std::exception& e) {
      return ToStatus(e);
    }
  }

  grpc::Status ConfigDump(grpc::ServerContext*, const pb::ConfigDumpRequest*,
                          pb::ConfigDumpResponse* resp) override {
    resp->set_toml(*config_);
    return grpc::Status::OK;
  }

  grpc::Status SetLogLevel(grpc::ServerContext*, const pb::SetLogLevelRequest* req,
                           pb::SetLogLevelResponse* resp) override {
    try {
      resp->set_previous(LogLevel());
      if (!req->level().empty()) daemon::SetLogLevel(req->level());
      resp->set_level(LogLevel());
      if (!req->level().empty())
        spdlog::info("log level set to {} (was {})", resp->level(), resp->previous());
      return grpc::Status::OK;
    } catch (const std::exception& e) {
      return ToStatus(e);
    }
  }

  grpc::Status Check(grpc::ServerContext*, const pb::CheckRequest*,
                     pb::CheckResponse* resp) override {
    try {
      if (!pipeline_ || pipeline_->config.root.empty()) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "berthd has not loaded its config yet");
      }
      CheckOptions o;
      o.from_daemon = true;
      for (const auto& r : RunChecks(*pipeline_, o)) {
        auto* out = resp->add_results();
        out->set_name(r.name);
        out->set_status(StatusName(r.status));
        out->set_fatal(r.fatal);
        out->set_detail(r.detail);
        out->set_fix(r.fix);
      }
      return grpc::Status::OK;
    } catch (const std::exception& e) {
      return ToStatus(e);
    }
  }

 private:
  std::shared_ptr<plugin::IntrospectionService> intro_;
  std::shared_ptr<plugin::WarningService> warnings_;
  std::shared_ptr<const std::string> config_;
  std::shared_ptr<const PipelineResult> pipeline_;
};

}  // namespace

void RegisterAdminPlugin(plugin::Registry& registry,
                         std::shared_ptr<const std::string> effective_toml,
                         std::shared_ptr<const PipelineResult> pipeline) {
  plugin::Registration r;
  r.type = plugin::kGRPCPlugin;
  r.id = kAdminPluginID;
  r.requirements = {plugin::kServicePlugin, plugin::kWarningPlugin};
  r.init = [effective_toml, pipeline](plugin::InitContext& ic) -> std::any {
    auto intro = ic.GetAs<plugin::IntrospectionService>(plugin::kServicePlugin, plugin::kIntrospectionID);
    auto warnings = ic.GetSingle<plugin::WarningService>(plugin::kWarningPlugin);
    auto svc = std::make_shared<AdminService>(intro, warnings, effective_toml, pipeline);
    ic.Provide<plugin::GrpcService>(svc);
    return svc;
  };
  registry.Register(std::move(r));
}

}  // namespace berth::daemon
