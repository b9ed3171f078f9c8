// berthctl's command groups. Each group lives in its own cmd_<group>.cpp (globbed by
// CMakeLists.txt) and is added by one line in main.cpp:
//   void Add<Group>Commands(CLI::App& app, Globals& g);
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace CLI {
class App;
}
namespace grpc {
class Channel;
class ClientContext;
class Status;
}  // namespace grpc

namespace berth::berthctl {

inline constexpr const char* kDefaultAddress = "/run/berth/berth.sock";

struct Globals {
  std::string address = kDefaultAddress;  // --address / --runtime-endpoint ("unix://" optional)
  std::string output = "table";           // -o table|json|yaml
  int timeout_seconds = 10;               // --timeout
  int exit_code = 0;                      // main's exit status when no command threw

  // The channel to berthd, created on first use.
  std::shared_ptr<grpc::Channel> Channel();
  // Sets the deadline from --timeout.
  void Prepare(grpc::ClientContext& ctx) const;
  bool Json() const { return output == "json"; }
  bool Yaml() const { return output == "yaml"; }
  bool Table() const { return output == "table"; }

 private:
  std::shared_ptr<grpc::Channel> channel_;
};

// Throws std::runtime_error "<what>: <code>: <message>" when the call failed.
void Check(const grpc::Status& status, const std::string& what);
// Left-aligned columns separated by two spaces; the first row is the header.
void PrintTable(const std::vector<std::vector<std::string>>& rows);

void AddPluginCommands(CLI::App& app, Globals& g);  // plugins, plugin-info
void AddConfigCommands(CLI::App& app, Globals& g);  // config dump
void AddWarningCommands(CLI::App& app, Globals& g); // warnings
void AddFeaturesCommands(CLI::App& app, Globals& g);  // features [HANDLER] (cmd_features.cpp)
void AddMountsCommands(CLI::App& app, Globals& g);    // mounts audit (cmd_mounts.cpp)
void AddPodCommands(CLI::App& app, Globals& g);  // runp, create, start, stop, rm, stopp, rmp, ps, pods, inspect[p], logs, stats, run (cmd_pods.cpp)
void AddStreamCommands(CLI::App& app, Globals& g);  // exec, attach, port-forward (cmd_stream.cpp)
void AddCRICommands(CLI::App& app, Globals& g);  // version, info (cmd_cri.cpp)
void AddImageCommands(CLI::App& app, Globals& g);
void AddOpsCommands(CLI::App& app,
                    Globals& g);  // check, log-level (cmd_ops.cpp)  // images [import], pull, rmi,
                                  // inspecti, imagefsinfo (cmd_images.cpp)

}  // namespace berth::berthctl
