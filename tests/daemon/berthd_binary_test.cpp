// The berthd binary at idle: what it has loaded (docs/berthd.md "Start-up cost").
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/support.h"

namespace {

using berth::testing::TempDir;
using berth::testing::WriteFile;

// File names of the shared objects mapped into pid.
std::set<std::string> MappedFiles(pid_t pid) {
  std::set<std::string> out;
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(maps, line)) {
    auto slash = line.rfind('/');
    if (slash != std::string::npos && line.find(".so", slash) != std::string::npos) out.insert(line.substr(slash + 1));
  }
  return out;
}

class Berthd {
 public:
  explicit Berthd(const TempDir& dir) : sock_(dir / "berth.sock") {
    WriteFile(dir / "config.toml", "version = 3\n");
    std::vector<std::string> args = {BERTHD_PATH, "-c", dir / "config.toml", "--address", sock_, "--root",
                                     dir / "root", "--state", dir / "state", "--log-level", "warn"};
    pid_ = ::fork();
    if (pid_ == 0) {
      int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, 1);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  ~Berthd() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  bool WaitServing() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      if (berth::testing::UnixSocketAccepts(sock_)) return true;
      int st;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }
  pid_t pid() const { return pid_; }

 private:
  std::string sock_;
  pid_t pid_ = -1;
};

// libcurl and libarchive (and the ~35 libraries they pull in: GnuTLS, Kerberos, LDAP, libxml2,
// ICU...) are loaded at the first pull or unpack, not by a berthd that only serves.
TEST(BerthdBinary, IdleBerthdHasNotLoadedCurlOrArchive) {
  if (!berth::testing::IsRoot()) GTEST_SKIP() << "berthd needs root to start";
  TempDir dir;
  Berthd d(dir);
  ASSERT_TRUE(d.WaitServing()) << "berthd did not serve";
  auto libs = MappedFiles(d.pid());
  ASSERT_FALSE(libs.empty());
  for (const auto& l : libs) {
    for (const char* lazy : {"libcurl", "libarchive", "libgnutls", "libxml2", "libicu", "libldap", "libgssapi"}) {
      EXPECT_NE(l.rfind(lazy, 0), 0u) << "idle berthd has " << l << " mapped";
    }
  }
}

#ifdef BERTH_STATIC_GRPC_LINKED
// With BERTH_STATIC_GRPC (the default), gRPC, protobuf and abseil are inside the berthd binary.
TEST(BerthdBinary, GrpcProtobufAndAbseilAreLinkedStatically) {
  if (!berth::testing::IsRoot()) GTEST_SKIP() << "berthd needs root to start";
  TempDir dir;
  Berthd d(dir);
  ASSERT_TRUE(d.WaitServing()) << "berthd did not serve";
  for (const auto& l : MappedFiles(d.pid())) {
    for (const char* shared : {"libgrpc", "libgpr", "libprotobuf", "libabsl_", "libupb", "libre2", "libcares"}) {
      EXPECT_NE(l.rfind(shared, 0), 0u) << "berthd has " << l << " mapped";
    }
  }
}
#endif

}  // namespace
