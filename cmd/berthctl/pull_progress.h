// berthctl pull's progress display (pull_progress.cpp).
#pragma once

#include <functional>
#include <memory>
#include <string>

namespace grpc {
class Channel;
}

namespace berth::berthctl {

// Polls the pull of `ref` until done() and shows it: bars on a terminal, plain lines otherwise.
void ShowPullProgress(const std::shared_ptr<grpc::Channel>& channel, const std::string& ref,
                      const std::function<bool()>& done);

}  // namespace berth::berthctl
