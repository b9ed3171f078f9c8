#include "support.h"

#include <stdlib.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "common/exec.h"
#include "common/fs.h"

namespace berth::testing {

#ifdef BERTH_TEST_RRO_PROBE_PATH
namespace {
// The probe container's program for runtime probes in this process and the daemons it starts.
const bool kProbeEnv = ::setenv("BERTH_RRO_PROBE", BERTH_TEST_RRO_PROBE_PATH, 0) == 0;
}  // namespace
#endif

TempDir::TempDir(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/" + prefix + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(errno));
  path_ = buf.data();
}

TempDir::~TempDir() {
  try {
    UnmountAllBelow(path_);
    fs::RemoveAll(path_);
  } catch (...) {
  }
}

bool IsRoot() { return ::geteuid() == 0; }

std::string ContainerSkipReason(const std::string& runtime) {
  if (!IsRoot()) return "needs root to run OCI containers";
  if (!exec::LookPath(runtime)) return runtime + " is not installed";
  if (BusyboxPath().empty()) return "busybox-static is not installed";
  return "";
}

std::string BusyboxPath() {
  for (const char* p : {"/bin/busybox", "/usr/bin/busybox"}) {
    struct stat st;
    if (::stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
      // Must be static: it is the only binary in the test root file systems.
      auto r = exec::Run({"file", "-L", p});
      if (r.ok() && r.out.find("dynamically linked") != std::string::npos) continue;
      return p;
    }
  }
  return "";
}

void WriteFile(const std::string& path, const std::string& data) {
  auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) fs::MkdirAll(path.substr(0, slash));
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  if (!out) throw std::runtime_error("cannot write " + path);
}

void MakeBusyboxRootfs(const std::string& dir) {
  std::string bb = BusyboxPath();
  if (bb.empty()) throw std::runtime_error("busybox-static is not installed");
  for (const char* d : {"bin", "usr/bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "var", "run"})
    fs::MkdirAll(dir + "/" + d);
  auto r = exec::Run({"cp", bb, dir + "/bin/busybox"});
  if (!r.ok()) throw std::runtime_error("copy busybox: " + exec::Describe({"cp"}, r));
  for (const char* applet : {"sh", "ls", "cat", "echo", "touch", "sleep", "mkdir", "rm", "mount", "grep",
                             "id", "true", "false", "env", "hostname", "ps", "wc", "head", "tail", "dd",
                             "stat", "test", "kill", "printf", "yes", "seq", "ip", "ifconfig", "nslookup",
                             "df", "readlink", "tr", "sed", "awk", "sync", "date", "wget"}) {
    std::string link = dir + "/bin/" + applet;
    ::unlink(link.c_str());
    if (::symlink("busybox", link.c_str()) != 0)
      throw std::runtime_error("symlink " + link + ": " + std::strerror(errno));
  }
  WriteFile(dir + "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
            "app:x:1000:1000:app:/tmp:/bin/sh\n");
  WriteFile(dir + "/etc/group", "root:x:0:\nnogroup:x:65534:\napp:x:1000:\nextra:x:2000:app\n");
}

void UnmountAllBelow(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  std::vector<std::string> targets;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, devno, root, mp;
    ls >> id >> parent >> devno >> root >> mp;
    // Decode octal escapes (\040 etc.).
    std::string dec;
    for (size_t i = 0; i < mp.size(); ++i) {
      if (mp[i] == '\\' && i + 3 < mp.size() + 0 && i + 3 <= mp.size()) {
        dec += static_cast<char>(std::stoi(mp.substr(i + 1, 3), nullptr, 8));
        i += 3;
      } else {
        dec += mp[i];
      }
    }
    if (dec == path || dec.rfind(path + "/", 0) == 0) targets.push_back(dec);
  }
  std::sort(targets.begin(), targets.end(), [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (const auto& t : targets) ::umount2(t.c_str(), MNT_DETACH);
}

bool UnixSocketAccepts(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::close(fd);
  return rc == 0;
}

void StopChild(pid_t pid, int sig, pid_t signal_pid) {
  if (pid <= 0) return;
  ::kill(signal_pid > 0 ? signal_pid : pid, sig);
  int status = 0;
  for (int i = 0; i < 300 && ::waitpid(pid, &status, WNOHANG) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (::waitpid(pid, &status, WNOHANG) == 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
}

bool Eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace berth::testing
