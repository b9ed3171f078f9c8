// The berthd binary at idle: what it has loaded (docs/berthd.md "Start-up cost"), and what it
// unloads again after an import or a pull (docs/berthd.md "Memory").
// The CRI header first: its enum Signal has values (SIGTERM...) that would collide with
// <signal.h> macros when that header is included before it.
#include "runtime/v1/api.grpc.pb.h"

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
#include <future>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "berth/images/v1/images.grpc.pb.h"
#include "image_support.h"
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
    if (slash != std::string::npos && line.find(".so", slash) != std::string::npos)
      out.insert(line.substr(slash + 1));
  }
  return out;
}

class Berthd {
 public:
  // library_idle_ms: BERTH_LIBRARY_IDLE_MS, how long libarchive stays loaded after its last use.
  explicit Berthd(const TempDir& dir, const char* library_idle_ms = "0")
      : sock_(dir / "berth.sock") {
    WriteFile(dir / "config.toml", "version = 3\n");
    std::vector<std::string> args = {
        BERTHD_PATH,  "-c",      dir / "config.toml", "--address",   sock_, "--root",
        dir / "root", "--state", dir / "state",       "--log-level", "warn"};
    pid_ = ::fork();
    if (pid_ == 0) {
      int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, 1);
      ::setenv("BERTH_LIBRARY_IDLE_MS", library_idle_ms, 1);
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
  const std::string& socket() const { return sock_; }

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
    for (const char* lazy :
         {"libcurl", "libarchive", "libgnutls", "libxml2", "libicu", "libldap", "libgssapi"}) {
      EXPECT_NE(l.rfind(lazy, 0), 0u) << "idle berthd has " << l << " mapped";
    }
  }
}

// Libraries that only a pull (libcurl) or an unpack or import (libarchive) loads.
const char* const kLoadedOnUse[] = {"libcurl", "libarchive", "libgnutls", "libxml2", "libicu",
                                    "libldap", "libgssapi",  "libkrb5",   "libssh2", "libnghttp2"};

std::vector<std::string> LoadedOnUse(pid_t pid) {
  std::vector<std::string> out;
  for (const auto& l : MappedFiles(pid))
    for (const char* lazy : kLoadedOnUse)
      if (l.rfind(lazy, 0) == 0) out.push_back(l);
  return out;
}

grpc::Status Import(const std::shared_ptr<grpc::Channel>& ch, const std::string& path) {
  auto stub = berth::images::v1::Images::NewStub(ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  berth::images::v1::ImportRequest req;
  req.set_path(path);
  berth::images::v1::ImportResponse resp;
  return stub->Import(&ctx, req, &resp);
}

// An OCI archive of a busybox image whose content differs by `id`.
std::string MakeArchive(const TempDir& dir, const std::string& id) {
  berth::testing::TestImageOptions o;
  o.id = id;
  auto img = berth::testing::BuildTestImage(dir / ("oci-" + id), o);
  std::string tar = dir / (id + ".tar");
  berth::testing::WriteOciArchive(img, tar, "docker.io/library/unload-" + id + ":v1");
  return tar;
}

// An import loads libarchive (and libxml2, ICU...) for its duration only: afterwards berthd maps
// the same libraries as before it, a second import loads them again and works, and concurrent
// imports share the load and leave nothing behind either.
TEST(BerthdBinary, ImportUnloadsLibarchiveAfterwards) {
  if (!berth::testing::IsRoot()) GTEST_SKIP() << "berthd needs root to start";
  if (std::string why = berth::testing::RegistrySkipReason(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir;
  std::vector<std::string> tars;
  for (const char* id : {"first", "second", "third", "fourth", "fifth"})
    tars.push_back(MakeArchive(dir, id));
  Berthd d(dir);
  ASSERT_TRUE(d.WaitServing()) << "berthd did not serve";
  auto ch = grpc::CreateChannel("unix:" + d.socket(), grpc::InsecureChannelCredentials());
  const auto idle = MappedFiles(d.pid());

  grpc::Status st = Import(ch, tars[0]);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(MappedFiles(d.pid()), idle);
  EXPECT_EQ(LoadedOnUse(d.pid()), std::vector<std::string>{});

  st = Import(ch, tars[1]);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(MappedFiles(d.pid()), idle);

  std::vector<std::future<grpc::Status>> imports;
  for (size_t i = 2; i < tars.size(); ++i)
    imports.push_back(std::async(std::launch::async, [&, i] { return Import(ch, tars[i]); }));
  for (auto& f : imports) {
    grpc::Status s = f.get();
    EXPECT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(MappedFiles(d.pid()), idle);
  EXPECT_EQ(LoadedOnUse(d.pid()), std::vector<std::string>{});
}

// Registry transfers run in berth-fetch processes: pulls load no library into berthd (libcurl,
// OpenSSL's libssl, GnuTLS, Kerberos, LDAP...), during or after them.
TEST(BerthdBinary, PullsLoadNoLibraryIntoBerthd) {
  if (!berth::testing::IsRoot()) GTEST_SKIP() << "berthd needs root to start";
  if (std::string why = berth::testing::RegistrySkipReason(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir;
  berth::testing::LocalRegistry reg;
  for (const char* id : {"one", "two"}) {
    berth::testing::TestImageOptions o;
    o.id = id;
    auto img = berth::testing::BuildTestImage(dir / ("oci-" + std::string(id)), o);
    berth::testing::PushImage(img, reg.host(), std::string("test/unload-") + id + ":v1");
  }
  Berthd d(dir, "1500");
  ASSERT_TRUE(d.WaitServing()) << "berthd did not serve";
  auto ch = grpc::CreateChannel("unix:" + d.socket(), grpc::InsecureChannelCredentials());
  auto images = runtime::v1::ImageService::NewStub(ch);
  auto archive_mapped = [&] {
    for (const auto& l : MappedFiles(d.pid()))
      if (l.rfind("libarchive", 0) == 0) return true;
    return false;
  };
  auto pull = [&](const std::string& id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    runtime::v1::PullImageRequest req;
    req.mutable_image()->set_image(reg.host() + "/test/unload-" + id + ":v1");
    runtime::v1::PullImageResponse resp;
    return images->PullImage(&ctx, req, &resp);
  };
  const auto idle = MappedFiles(d.pid());
  grpc::Status st = pull("one");
  ASSERT_TRUE(st.ok()) << st.error_message();
  // libarchive stays loaded for the idle time (1.5 s here) after the unpack; nothing else does.
  EXPECT_TRUE(archive_mapped());
  st = pull("two");
  ASSERT_TRUE(st.ok()) << st.error_message();
  for (const auto& l : MappedFiles(d.pid()))  // libcurl's stay in berth-fetch
    for (const char* curl :
         {"libcurl", "libgnutls", "libldap", "libgssapi", "libssh2", "libnghttp2"})
      EXPECT_NE(l.rfind(curl, 0), 0u) << l;
  // Then it is unloaded: the same files as before the pulls.
  EXPECT_TRUE(berth::testing::Eventually([&] { return MappedFiles(d.pid()) == idle; },
                                         std::chrono::seconds(15)));
  EXPECT_EQ(MappedFiles(d.pid()), idle);
}

#ifdef BERTH_STATIC_GRPC_LINKED
// With BERTH_STATIC_GRPC (the default), gRPC, protobuf, abseil and OpenSSL are inside the berthd
// binary: a shared libcrypto next to the static one would be a second copy of its state.
TEST(BerthdBinary, GrpcProtobufAbseilAndOpenSslAreLinkedStatically) {
  if (!berth::testing::IsRoot()) GTEST_SKIP() << "berthd needs root to start";
  TempDir dir;
  Berthd d(dir);
  ASSERT_TRUE(d.WaitServing()) << "berthd did not serve";
  for (const auto& l : MappedFiles(d.pid())) {
    for (const char* shared : {"libgrpc", "libgpr", "libprotobuf", "libabsl_", "libupb", "libre2",
                               "libcares", "libcrypto", "libssl"}) {
      EXPECT_NE(l.rfind(shared, 0), 0u) << "berthd has " << l << " mapped";
    }
  }
}
#endif

}  // namespace
