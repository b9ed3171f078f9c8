#include "runtime/cli.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "runtime/hostcompat.h"

namespace berth::runtime {

namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r' || s.back() == '\t'))
    s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == '\n' || s[i] == ' ' || s[i] == '\t')) ++i;
  return s.substr(i);
}

std::string Basename(const std::string& p) {
  size_t s = p.rfind('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

// A temporary file holding `data`, removed when this goes out of scope.
class TempFile {
 public:
  TempFile(const std::string& dir, const std::string& prefix, const std::string& data) {
    path_ = fs::Join(dir, prefix + "-XXXXXX");
    int fd = ::mkstemp(path_.data());
    if (fd < 0) ThrowErrno("failed to create a temporary file in " + dir);
    ::close(fd);
    try {
      fs::WriteFileAtomic(path_, data, 0600);
    } catch (...) {
      ::unlink(path_.c_str());
      throw;
    }
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

std::string RuntimeErrorMessage(const std::string& output) {
  std::vector<std::string> msgs, plain;
  size_t pos = 0;
  while (pos < output.size()) {
    size_t nl = output.find('\n', pos);
    if (nl == std::string::npos) nl = output.size();
    std::string line = Trim(output.substr(pos, nl - pos));
    pos = nl + 1;
    if (line.empty()) continue;
    if (line[0] == '{') {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object()) {
        auto level = j.find("level");
        auto msg = j.find("msg");
        if (level != j.end() && level->is_string() && msg != j.end() && msg->is_string() &&
            (*level == "error" || *level == "fatal")) {
          std::string m = Trim(msg->get<std::string>());
          if (!m.empty() && (msgs.empty() || msgs.back() != m)) msgs.push_back(m);
        }
        continue;
      }
    }
    for (const char* prefix : {"runc: ", "crun: ", "Error: "})
      if (line.rfind(prefix, 0) == 0) line = line.substr(strlen(prefix));
    plain.push_back(line);
  }
  std::string out;
  for (const auto& m : msgs) out += (out.empty() ? "" : ": ") + m;
  if (out.empty()) {
    size_t from = plain.size() > 3 ? plain.size() - 3 : 0;
    for (size_t i = from; i < plain.size(); ++i) out += (out.empty() ? "" : "; ") + plain[i];
  }
  if (out.size() > 2048) out = out.substr(0, 2048) + "...";
  return out;
}

bool IsNotExistMessage(const std::string& m, const std::string& id) {
  if (m.find("does not exist") != std::string::npos || m.find("container not found") != std::string::npos)
    return true;
  // crun: "error opening file `<root>/<id>/status`: No such file or directory",
  //       "cannot open directory '<root>/<id>': No such file or directory".
  return !id.empty() && m.find("No such file or directory") != std::string::npos &&
         m.find("/" + id) != std::string::npos;
}

Cli::Cli(CliOptions opts) : opts_(std::move(opts)) {
  if (opts_.binary.empty()) throw Error(Code::kInvalidArgument, "OCI runtime: empty binary name");
  if (opts_.binary.find('/') == std::string::npos) {
    auto p = exec::LookPath(opts_.binary);
    if (!p) throw Error(Code::kNotFound, "OCI runtime " + opts_.binary + " not found in PATH");
    opts_.binary = *p;
  }
}

std::string Cli::name() const { return Basename(opts_.binary); }

std::vector<std::string> Cli::Argv(const std::vector<std::string>& args,
                                   const std::string& log_file) const {
  std::vector<std::string> argv = {opts_.binary};
  if (!opts_.root.empty()) {
    argv.push_back("--root");
    argv.push_back(opts_.root);
  }
  if (opts_.systemd_cgroup) argv.push_back("--systemd-cgroup");
  if (!log_file.empty()) {
    argv.push_back("--log");
    argv.push_back(log_file);
  }
  argv.push_back("--log-format");
  argv.push_back("json");
  argv.insert(argv.end(), args.begin(), args.end());
  if (opts_.hybrid_cgroup_workaround && NeedsHybridCgroupWorkaround(opts_.binary))
    return WrapArgvForHybridCgroup(argv);
  return argv;
}

Cli::Output Cli::Run(const std::vector<std::string>& args, const std::string& what,
                     const std::string& stdin_data) const {
  // `what` is "<command> <id>[ ...]".
  size_t sp = what.find(' ');
  std::string id = sp == std::string::npos ? "" : what.substr(sp + 1, what.find(' ', sp + 1) - sp - 1);
  exec::Options eo;
  eo.timeout = opts_.timeout;
  eo.stdin_data = stdin_data;
  eo.max_output = 1u << 20;
  auto argv = Argv(args);
  auto r = exec::Run(argv, eo);
  if (r.timed_out)
    throw Error(Code::kDeadlineExceeded, name() + " " + what + ": timed out after " +
                                             std::to_string(opts_.timeout.count()) + "ms");
  if (r.exit_code != 0) {
    std::string msg = RuntimeErrorMessage(r.err.empty() ? r.out : r.err);
    if (msg.empty()) msg = "exited with status " + std::to_string(r.exit_code);
    Code code = IsNotExistMessage(msg, id) ? Code::kNotFound : Code::kUnknown;
    throw Error(code, name() + " " + what + ": " + msg);
  }
  return {std::move(r.out), std::move(r.err)};
}

void Cli::Create(const std::string& id, const std::string& bundle, const std::string& pid_file) const {
  // The container inherits the runtime's stdio, so it gets /dev/null (pipes would stay open as
  // long as the container runs); the runtime's errors go to a JSON log file.
  TempFile log(opts_.tmp_dir, "berth-create-" + id + ".log", "");
  std::vector<std::string> args = {"create", "--bundle", bundle};
  if (!pid_file.empty()) {
    args.push_back("--pid-file");
    args.push_back(pid_file);
  }
  args.push_back(id);
  auto argv = Argv(args, log.path());
  std::vector<char*> cargs;
  for (auto& a : argv) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) ThrowErrno("open /dev/null");
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    ::close(null);
    ThrowErrno(name() + " create " + id + ": fork", e);
  }
  if (pid == 0) {
    ::dup2(null, 0);
    ::dup2(null, 1);
    ::dup2(null, 2);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv(cargs[0], cargs.data());
    ::_exit(127);
  }
  ::close(null);
  auto deadline = std::chrono::steady_clock::now() + opts_.timeout;
  int st = 0;
  for (;;) {
    pid_t w = ::waitpid(pid, &st, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) ThrowErrno(name() + " create " + id + ": waitpid");
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      throw Error(Code::kDeadlineExceeded, name() + " create " + id + ": timed out after " +
                                               std::to_string(opts_.timeout.count()) + "ms");
    }
    ::usleep(2000);
  }
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return;
  std::string msg;
  try {
    msg = RuntimeErrorMessage(fs::ReadFile(log.path(), 1 << 20));
  } catch (const Error&) {
  }
  if (WIFEXITED(st) && WEXITSTATUS(st) == 127 && msg.empty()) msg = "failed to execute " + opts_.binary;
  if (msg.empty()) msg = "exited with status " + std::to_string(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
  throw Error(Code::kUnknown, name() + " create " + id + ": " + msg);
}

void Cli::Start(const std::string& id) const { Run({"start", id}, "start " + id); }

State Cli::GetState(const std::string& id) const {
  auto o = Run({"state", id}, "state " + id);
  auto j = nlohmann::json::parse(o.out, nullptr, false);
  if (!j.is_object())
    throw Error(Code::kInternal, name() + " state " + id + ": output is not a JSON object");
  State s;
  s.id = j.value("id", id);
  if (j.contains("status") && j["status"].is_string()) s.status = j["status"];
  if (j.contains("pid") && j["pid"].is_number_integer()) s.pid = j["pid"].get<int>();
  if (j.contains("bundle") && j["bundle"].is_string()) s.bundle = j["bundle"];
  if (s.status.empty())
    throw Error(Code::kInternal, name() + " state " + id + ": no \"status\" in the output");
  return s;
}

void Cli::Kill(const std::string& id, int signal, bool all) const {
  if (signal <= 0 || signal >= 65)
    throw Error(Code::kInvalidArgument, name() + " kill " + id + ": invalid signal " + std::to_string(signal));
  std::vector<std::string> args = {"kill"};
  if (all) args.push_back("--all");
  args.push_back(id);
  args.push_back(std::to_string(signal));
  Run(args, "kill " + id + " " + std::to_string(signal));
}

void Cli::Delete(const std::string& id, bool force) const {
  std::vector<std::string> args = {"delete"};
  if (force) args.push_back("--force");
  args.push_back(id);
  try {
    Run(args, "delete " + id);
  } catch (const Error& e) {
    if (e.code() != Code::kNotFound) throw;
  }
}

ExecResult Cli::Exec(const std::string& id, const ExecOptions& eo) const {
  TempFile process(opts_.tmp_dir, "berth-exec-" + id + ".json", eo.process_json);
  std::string pid_file = process.path() + ".pid";
  std::vector<std::string> args = {"exec", "--process", process.path(), "--pid-file", pid_file, id};
  exec::Options o;
  o.timeout = eo.timeout;
  o.max_output = eo.max_output;
  o.stdin_data = eo.stdin_data;
  auto argv = Argv(args);
  exec::Result r;
  try {
    r = exec::Run(argv, o);
  } catch (...) {
    ::unlink(pid_file.c_str());
    throw;
  }
  ExecResult res;
  res.timed_out = r.timed_out;
  if (r.timed_out) {
    // The runtime was killed; the process it started in the container must go too.
    try {
      std::string pid = fs::ReadFile(pid_file, 64);
      int p = std::atoi(pid.c_str());
      if (p > 0) ::kill(p, SIGKILL);
    } catch (const Error&) {
    }
  }
  ::unlink(pid_file.c_str());
  // runc and crun exit with the process's status; a failure of the runtime itself (no such
  // container, bad process) leaves a JSON error line on stderr.
  if (!r.timed_out && r.exit_code != 0) {
    std::string msg = RuntimeErrorMessage(r.err);
    bool runtime_error = false;
    for (size_t pos = 0; pos < r.err.size();) {
      size_t nl = r.err.find('\n', pos);
      if (nl == std::string::npos) nl = r.err.size();
      std::string line = r.err.substr(pos, nl - pos);
      pos = nl + 1;
      if (line.rfind("{", 0) == 0 && line.find("\"level\":\"error\"") != std::string::npos)
        runtime_error = true;
    }
    if (runtime_error) {
      throw Error(IsNotExistMessage(msg, id) ? Code::kNotFound : Code::kUnknown,
                  name() + " exec " + id + ": " + msg);
    }
  }
  res.exit_code = r.exit_code;
  res.out = std::move(r.out);
  res.err = std::move(r.err);
  return res;
}

void Cli::Update(const std::string& id, const std::string& resources_json) const {
  auto j = nlohmann::json::parse(resources_json, nullptr, false);
  if (!j.is_object())
    throw Error(Code::kInvalidArgument, name() + " update " + id + ": resources are not a JSON object");
  TempFile res(opts_.tmp_dir, "berth-update-" + id + ".json", resources_json);
  Run({"update", "--resources", res.path(), id}, "update " + id);
}

std::vector<int> Cli::Ps(const std::string& id) const {
  auto o = Run({"ps", "--format", "json", id}, "ps " + id);
  auto j = nlohmann::json::parse(o.out, nullptr, false);
  std::vector<int> pids;
  if (j.is_null()) return pids;
  if (!j.is_array()) throw Error(Code::kInternal, name() + " ps " + id + ": output is not a JSON array");
  for (const auto& p : j)
    if (p.is_number_integer()) pids.push_back(p.get<int>());
  return pids;
}

void Cli::Pause(const std::string& id) const { Run({"pause", id}, "pause " + id); }
void Cli::Resume(const std::string& id) const { Run({"resume", id}, "resume " + id); }

}  // namespace berth::runtime
