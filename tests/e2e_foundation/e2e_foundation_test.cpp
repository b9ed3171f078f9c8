// End-to-end: the berthd binary on a temporary socket, root and state, driven by berthctl.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/exec.h"
#include "common/fs.h"
#include "support/support.h"

namespace {

using berth::testing::TempDir;
using berth::testing::WriteFile;

// A berthd process with its stderr in a file.
class Berthd {
 public:
  Berthd(const std::vector<std::string>& args, const std::string& log) : log_(log) {
    std::vector<std::string> argv = {BERTHD_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 2);
      int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, 0);
      ::dup2(null, 1);
      std::vector<char*> cargv;
      for (auto& a : argv) cargv.push_back(a.data());
      cargv.push_back(nullptr);
      ::execv(cargv[0], cargv.data());
      ::_exit(127);
    }
  }
  ~Berthd() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  // Waits until the socket accepts a connection, or the process exits (false).
  bool WaitServing(const std::string& socket) {
    for (int i = 0; i < 6000; ++i) {  // generous bound: 60 s
      if (Exited()) return false;
      if (berth::testing::UnixSocketAccepts(socket)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  bool Exited() {
    if (exited_) return true;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      status_ = status;
    }
    return exited_;
  }
  // Exit code (128+signal when killed); waits.
  int Wait() {
    if (!exited_) {
      ::waitpid(pid_, &status_, 0);
      exited_ = true;
    }
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
  }
  void Signal(int sig) { ::kill(pid_, sig); }
  // The log once it holds `text` (lines written after the socket starts listening may lag a
  // little), or as it is after 10 s.
  std::string WaitLog(const std::string& text) const {
    for (int i = 0; i < 1000; ++i) {
      std::string log = Log();
      if (log.find(text) != std::string::npos) return log;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return Log();
  }
  std::string Log() const {
    try {
      return berth::fs::ReadFile(log_);
    } catch (...) {
      return "";
    }
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
};

class Foundation : public ::testing::Test {
 protected:
  TempDir dir{"berth-e2e-foundation"};
  std::string sock = dir / "run/berth.sock";
  std::string root = dir / "root";
  std::string state = dir / "state";

  std::vector<std::string> Flags() const {
    return {"--address", sock, "--root", root, "--state", state};
  }
  berth::exec::Result Berthctl(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {BERTHCTL_PATH, "--address", sock};
    argv.insert(argv.end(), args.begin(), args.end());
    return berth::exec::Run(argv);
  }
  berth::exec::Result BerthdCmd(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {BERTHD_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    return berth::exec::Run(argv);
  }
};

TEST_F(Foundation, ServesPluginsAndStopsCleanly) {
  Berthd d(Flags(), dir / "berthd.log");
  ASSERT_TRUE(d.WaitServing(sock)) << d.Log();
  EXPECT_NE(d.WaitLog("berthd serving on " + sock).find("berthd serving on " + sock), std::string::npos) << d.Log();

  struct stat st {};
  ASSERT_EQ(::stat(sock.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);

  auto r = Berthctl({"plugins", "-o", "json"});
  ASSERT_TRUE(r.ok()) << r.err;
  auto plugins = nlohmann::json::parse(r.out);
  std::map<std::string, std::string> status;
  for (const auto& p : plugins) status[p["type"].get<std::string>() + "." + p["id"].get<std::string>()] = p["status"];
  EXPECT_EQ(status["io.containerd.warning.v1.deprecations"], "ok");
  EXPECT_EQ(status["io.containerd.service.v1.introspection-service"], "ok");
  EXPECT_EQ(status["io.containerd.cri.v1.images"], "ok");
  EXPECT_EQ(status["io.containerd.cri.v1.runtime"], "ok") << r.out;
  EXPECT_EQ(status["io.containerd.grpc.v1.berth-admin"], "ok");
  for (const auto& p : plugins) {
    if (p["id"] == "runtime") {
      EXPECT_EQ(p["exports"]["CRIVersion"], "v1");
    }
  }

  auto table = Berthctl({"plugins"});
  ASSERT_TRUE(table.ok()) << table.err;
  EXPECT_EQ(table.out.rfind("TYPE", 0), 0u) << table.out;
  EXPECT_NE(table.out.find("io.containerd.cri.v1"), std::string::npos);

  auto dump = Berthctl({"config", "dump"});
  ASSERT_TRUE(dump.ok()) << dump.err;
  EXPECT_NE(dump.out.find("version = 3"), std::string::npos);
  EXPECT_NE(dump.out.find(sock), std::string::npos);
  EXPECT_NE(dump.out.find("io.containerd.cri.v1.runtime"), std::string::npos);

  auto info = Berthctl({"plugin-info", "io.containerd.cri.v1", "runtime", "--options",
                        R"({"runtime_handler":"runc"})"});
  ASSERT_TRUE(info.ok()) << info.err;
  EXPECT_EQ(nlohmann::json::parse(info.out)["name"], "runc");
  auto bad = Berthctl({"plugin-info", "io.containerd.cri.v1", "runtime", "--options", "[1"});
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.err.find("InvalidArgument"), std::string::npos) << bad.err;

  EXPECT_TRUE(Berthctl({"warnings"}).ok());

  d.Signal(SIGTERM);
  EXPECT_EQ(d.Wait(), 0) << d.Log();
  EXPECT_FALSE(berth::fs::Exists(sock));
  EXPECT_NE(d.Log().find("berthd stopped"), std::string::npos) << d.Log();
}

TEST_F(Foundation, LiveSocketIsRefused) {
  Berthd first(Flags(), dir / "first.log");
  ASSERT_TRUE(first.WaitServing(sock)) << first.Log();
  Berthd second({"--address", sock, "--root", dir / "root2", "--state", dir / "state2"}, dir / "second.log");
  EXPECT_NE(second.Wait(), 0);
  EXPECT_NE(second.Log().find("in use"), std::string::npos) << second.Log();
  EXPECT_TRUE(berth::testing::UnixSocketAccepts(sock));
  first.Signal(SIGINT);
  EXPECT_EQ(first.Wait(), 0) << first.Log();
}

TEST_F(Foundation, StaleSocketIsReplaced) {
  berth::fs::MkdirAll(dir / "run");
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, sock.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);  // the file stays, nobody listens: what a crash leaves behind
  ASSERT_TRUE(berth::fs::Exists(sock));
  ASSERT_FALSE(berth::testing::UnixSocketAccepts(sock));

  Berthd d(Flags(), dir / "berthd.log");
  ASSERT_TRUE(d.WaitServing(sock)) << d.Log();
  EXPECT_NE(d.Log().find("removing stale socket"), std::string::npos) << d.Log();
  d.Signal(SIGTERM);
  EXPECT_EQ(d.Wait(), 0);
}

TEST_F(Foundation, ConfigCheck) {
  WriteFile(dir / "good.toml", "version = 3\n[plugins.\"io.containerd.cri.v1.runtime\".containerd]\n"
                               "default_runtime_name = \"runc\"\n");
  auto good = BerthdCmd({"config", "check", "-c", dir / "good.toml"});
  EXPECT_EQ(good.exit_code, 0) << good.out << good.err;
  EXPECT_NE(good.out.find("is valid"), std::string::npos) << good.out;

  WriteFile(dir / "bad.toml", "version = 3\n[plugins.\"io.containerd.cri.v1.runtime\".containerd]\n"
                              "default_runtime_name = \"nope\"\n");
  auto bad = BerthdCmd({"-c", dir / "bad.toml", "config", "check"});
  EXPECT_EQ(bad.exit_code, 1) << bad.out << bad.err;
  EXPECT_NE(bad.out.find("error: "), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("default_runtime_name"), std::string::npos) << bad.out;

  WriteFile(dir / "broken.toml", "version = 3\n[plugins\n");
  auto broken = BerthdCmd({"config", "check", "-c", dir / "broken.toml"});
  EXPECT_EQ(broken.exit_code, 1) << broken.out << broken.err;
  EXPECT_NE(broken.out.find("broken.toml"), std::string::npos) << broken.out;

  WriteFile(dir / "type.toml", "version = 3\n[plugins.\"io.containerd.cri.v1.runtime\"]\n"
                               "enable_selinux = \"yes\"\n");
  auto type = BerthdCmd({"config", "check", "-c", dir / "type.toml"});
  EXPECT_EQ(type.exit_code, 1) << type.out << type.err;
  EXPECT_NE(type.out.find("enable_selinux"), std::string::npos) << type.out;

  // Serving with an invalid plugin config: that plugin fails (as in containerd), berthd serves
  // and reports it.
  Berthd d({"-c", dir / "bad.toml", "--address", sock, "--root", root, "--state", state}, dir / "bad.log");
  ASSERT_TRUE(d.WaitServing(sock)) << d.Log();
  auto r = Berthctl({"plugins", "-o", "json"});
  ASSERT_TRUE(r.ok()) << r.err;
  bool found = false;
  for (const auto& p : nlohmann::json::parse(r.out)) {
    if (p["id"] != "runtime") continue;
    found = true;
    EXPECT_EQ(p["status"], "error");
    EXPECT_NE(p["error"].get<std::string>().find("default_runtime_name"), std::string::npos) << p.dump();
  }
  EXPECT_TRUE(found);
  d.Signal(SIGTERM);
  EXPECT_EQ(d.Wait(), 0);

  // A type error in a plugin table stops berthd at start.
  Berthd t({"-c", dir / "type.toml", "--address", sock, "--root", root, "--state", state}, dir / "type.log");
  EXPECT_NE(t.Wait(), 0);
  EXPECT_NE(t.Log().find("enable_selinux"), std::string::npos) << t.Log();
  EXPECT_FALSE(berth::fs::Exists(sock));
}

TEST_F(Foundation, OldVersionLogsMigrationHint) {
  WriteFile(dir / "v2.toml",
            "version = 2\n"
            "[plugins.\"io.containerd.grpc.v1.cri\"]\n"
            "  enable_selinux = false\n"
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n"
            "  default_runtime_name = \"runc\"\n"
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n"
            "  runtime_type = \"io.containerd.runc.v2\"\n");
  Berthd d({"-c", dir / "v2.toml", "--address", sock, "--root", root, "--state", state}, dir / "v2.log");
  ASSERT_TRUE(d.WaitServing(sock)) << d.Log();
  EXPECT_NE(d.Log().find("migrated config from version 2; run `berthd config migrate` to update the file"),
            std::string::npos)
      << d.Log();
  auto dump = Berthctl({"config", "dump"});
  ASSERT_TRUE(dump.ok()) << dump.err;
  EXPECT_NE(dump.out.find("version = 3"), std::string::npos);
  d.Signal(SIGTERM);
  EXPECT_EQ(d.Wait(), 0);

  auto migrated = BerthdCmd({"config", "migrate", dir / "v2.toml"});
  EXPECT_EQ(migrated.exit_code, 0) << migrated.err;
  EXPECT_NE(migrated.out.find("version = 3"), std::string::npos) << migrated.out;
  EXPECT_NE(migrated.out.find("io.containerd.cri.v1.runtime"), std::string::npos) << migrated.out;
}

TEST_F(Foundation, MissingRequiredPluginExitsNonZero) {
  WriteFile(dir / "req.toml", "version = 3\nrequired_plugins = [\"io.containerd.grpc.v1.nope\"]\n");
  Berthd d({"-c", dir / "req.toml", "--address", sock, "--root", root, "--state", state}, dir / "req.log");
  EXPECT_NE(d.Wait(), 0);
  EXPECT_NE(d.Log().find("io.containerd.grpc.v1.nope"), std::string::npos) << d.Log();
  EXPECT_FALSE(berth::fs::Exists(sock));

  WriteFile(dir / "req2.toml", "version = 3\nrequired_plugins = [\"io.containerd.cri.v1.images\"]\n"
                               "disabled_plugins = [\"io.containerd.cri.v1.images\"]\n");
  Berthd d2({"-c", dir / "req2.toml", "--address", sock, "--root", root, "--state", state}, dir / "req2.log");
  EXPECT_NE(d2.Wait(), 0);
  EXPECT_NE(d2.Log().find("required plugin io.containerd.cri.v1.images did not load (disabled)"),
            std::string::npos)
      << d2.Log();
}

TEST_F(Foundation, BerthdPluginsAndConfigDefault) {
  auto r = BerthdCmd({"--root", root, "--state", state, "plugins"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("io.containerd.cri.v1"), std::string::npos) << r.out;
  auto def = BerthdCmd({"config", "default"});
  EXPECT_EQ(def.exit_code, 0) << def.err;
  EXPECT_NE(def.out.find("version = 3"), std::string::npos);
  EXPECT_NE(def.out.find("[plugins.\"io.containerd.cri.v1.runtime\"]"), std::string::npos) << def.out;
  // The defaults pass their own check.
  WriteFile(dir / "default.toml", def.out);
  auto check = BerthdCmd({"config", "check", "-c", dir / "default.toml"});
  EXPECT_EQ(check.exit_code, 0) << check.out;
}

}  // namespace
