// berthctl pull's progress: while PullImage runs, berth.images.v1.Images/PullProgress is polled
// and shown as one bar per layer on a terminal (redrawn in place), or as plain lines otherwise
// (a line when a layer changes state, and the total every 5 seconds), on stderr: stdout keeps
// only the result.
#include "cmd/berthctl/pull_progress.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <thread>

#include "berth/images/v1/images.grpc.pb.h"

namespace berth::berthctl {
namespace {

namespace pb = berth::images::v1;

std::string Mib(int64_t b) {
  char s[32];
  std::snprintf(s, sizeof s, "%.1f MiB", static_cast<double>(b) / (1 << 20));
  return s;
}

std::string Short(const std::string& digest) {
  auto c = digest.find(':');
  return digest.substr(c == std::string::npos ? 0 : c + 1, 12);
}

std::string Bar(int64_t got, int64_t size, int width) {
  int fill = size > 0
                 ? static_cast<int>(static_cast<double>(got) / static_cast<double>(size) * width)
                 : width;
  fill = std::max(0, std::min(width, fill));
  return "[" + std::string(static_cast<size_t>(fill), '=') +
         std::string(static_cast<size_t>(width - fill), ' ') + "]";
}

class Renderer {
 public:
  explicit Renderer(bool tty) : tty_(tty) {}
  void Show(const pb::PullProgressResponse& p) {
    if (tty_) return Bars(p);
    Lines(p);
  }
  void Finish() {
    if (tty_ && drawn_ > 0) std::fflush(stderr);
  }

 private:
  void Bars(const pb::PullProgressResponse& p) {
    if (drawn_ > 0) std::fprintf(stderr, "\033[%dA", drawn_);  // back to the first bar
    for (const auto& l : p.layers()) {
      std::fprintf(stderr, "\033[2K%s %s %s / %s %s\n", Short(l.digest()).c_str(),
                   Bar(l.received(), l.size(), 30).c_str(), Mib(l.received()).c_str(),
                   Mib(l.size()).c_str(), l.state().c_str());
    }
    drawn_ = p.layers_size();
    std::fflush(stderr);
  }
  void Lines(const pb::PullProgressResponse& p) {
    int64_t got = 0, size = 0;
    for (const auto& l : p.layers()) {
      got += l.received();
      size += l.size();
      auto& seen = states_[l.digest()];
      if (seen != l.state()) {
        seen = l.state();
        std::fprintf(stderr, "%s: %s (%s)\n", Short(l.digest()).c_str(), l.state().c_str(),
                     Mib(l.size()).c_str());
      }
    }
    if (p.elapsed_ms() - last_total_ms_ >= 5000) {
      last_total_ms_ = p.elapsed_ms();
      std::fprintf(stderr, "%s of %s after %.0f s\n", Mib(got).c_str(), Mib(size).c_str(),
                   p.elapsed_ms() / 1000.0);
    }
    std::fflush(stderr);
  }
  bool tty_;
  int drawn_ = 0;
  int64_t last_total_ms_ = 0;
  std::map<std::string, std::string> states_;
};

}  // namespace

void ShowPullProgress(const std::shared_ptr<grpc::Channel>& channel, const std::string& ref,
                      const std::function<bool()>& done) {
  auto stub = pb::Images::NewStub(channel);
  Renderer r(::isatty(STDERR_FILENO) == 1);
  while (!done()) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    pb::PullProgressRequest req;
    req.set_image(ref);
    pb::PullProgressResponse resp;
    grpc::Status st = stub->PullProgress(&ctx, req, &resp);
    if (!st.ok() && st.error_code() == grpc::StatusCode::UNIMPLEMENTED) return;  // an older berthd
    if (st.ok() && resp.in_progress()) r.Show(resp);
    for (int i = 0; i < 5 && !done(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  r.Finish();
}

}  // namespace berth::berthctl
