#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>

#include <grpcpp/grpcpp.h>

#include "cmd/berthctl/commands.h"

namespace berth::berthctl {

std::shared_ptr<grpc::Channel> Globals::Channel() {
  if (!channel_) {
    std::string target = address;
    if (target.rfind("unix://", 0) == 0) {
      target = "unix:" + target.substr(7);
    } else if (target.rfind("unix:", 0) != 0) {
      target = "unix:" + target;
    }
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    channel_ = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  }
  return channel_;
}

void Globals::Prepare(grpc::ClientContext& ctx) const {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_seconds));
}

void Check(const grpc::Status& status, const std::string& what) {
  if (status.ok()) return;
  static const char* kNames[] = {"OK", "Cancelled", "Unknown", "InvalidArgument", "DeadlineExceeded",
                                 "NotFound", "AlreadyExists", "PermissionDenied", "ResourceExhausted",
                                 "FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented",
                                 "Internal", "Unavailable", "DataLoss", "Unauthenticated"};
  int code = status.error_code();
  std::string name = code >= 0 && code < 17 ? kNames[code] : std::to_string(code);
  throw std::runtime_error(what + ": " + name + ": " + status.error_message());
}

void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& r : rows) {
    if (widths.size() < r.size()) widths.resize(r.size(), 0);
    for (size_t i = 0; i < r.size(); ++i) widths[i] = std::max(widths[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(widths[i] - r[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::puts(line.c_str());
  }
}

}  // namespace berth::berthctl
