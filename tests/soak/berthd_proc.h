// A real berthd for end-to-end tests and benchmarks: started on a fixed directory (root, state,
// socket, config), killed with any signal, started again on the same root.
#pragma once

#include "runtime/v1/api.grpc.pb.h"  // first: its enum Signal names collide with <signal.h> macros

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "berth/images/v1/images.grpc.pb.h"

namespace berth::testing {

// What the generated config.toml and berthd's environment hold besides the paths below `dir`.
struct BerthdOptions {
  std::string handler = "runc";            // the default runtime handler
  std::string binary;                      // its BinaryName ("": the runtime's default, runc)
  std::string handler_extra;               // lines added to the default handler's table
  std::string runtime_extra;               // lines added to the CRI runtime plugin's table
  std::vector<std::string> more_handlers;  // configured too, each running the binary of its name
  std::string grpc_extra;                  // lines added to the [grpc] table
  std::string extra;                       // TOML appended to the config
  std::vector<std::pair<std::string, std::string>> env;  // set in berthd's environment
  std::string netns;  // a network namespace file berthd runs in ("": the caller's)
  std::string log_level = "debug";
};

class BerthdProc {
 public:
  // dir: root, state, socket and logs live below it. extra: TOML appended to the config.
  BerthdProc(std::string dir, std::string berthd, std::string monitor, std::string pause,
             std::string extra = "");
  BerthdProc(std::string dir, std::string berthd, std::string monitor, std::string pause,
             BerthdOptions opts);
  ~BerthdProc();  // SIGTERM, then SIGKILL after 30 s
  // Starts berthd and waits until Version answers (or `timeout`); "" or why not.
  std::string Start(std::chrono::milliseconds timeout = std::chrono::seconds(120));
  void Kill(int sig);  // sends sig, waits for the exit, reaps
  bool Alive();        // started and not exited
  pid_t pid() const { return pid_; }
  std::string Log() const;
  const std::string& state_dir() const { return state_; }
  // The CRI plugin's own state dir (sandboxes/, containers/, netns/, rro/, runtime roots).
  std::string cri_state() const { return state_ + "/io.containerd.grpc.v1.cri"; }
  const std::string& root_dir() const { return root_; }
  const std::string& socket() const { return socket_; }
  ::runtime::v1::RuntimeService::Stub& rt() { return *rt_; }
  ::runtime::v1::ImageService::Stub& img() { return *img_; }
  berth::images::v1::Images::Stub& admin() { return *admin_; }

 private:
  void WriteConfig();

  std::string dir_, berthd_, monitor_, pause_, root_, state_, socket_, config_, log_;
  BerthdOptions opts_;
  int starts_ = 0;
  pid_t pid_ = -1;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<::runtime::v1::RuntimeService::Stub> rt_;
  std::unique_ptr<::runtime::v1::ImageService::Stub> img_;
  std::unique_ptr<berth::images::v1::Images::Stub> admin_;
};

std::unique_ptr<grpc::ClientContext> Deadline(int seconds = 60);

}  // namespace berth::testing
