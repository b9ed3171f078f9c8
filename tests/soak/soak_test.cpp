// Crash consistency through a real berthd (runc, berth-monitor, berth-pause) on a fixed root:
// SIGKILL amid concurrent CRI calls, restart, and the invariants of docs/pods.md ("Steps and
// recovery") checked against the host. Needs root, runc and busybox-static; skips otherwise.
//
//   BERTH_SOAK_KILLS=N   kill points of the soak (default 25; the long run is 500)
//   BERTH_TEST_BERTHD=P  the berthd binary to test (default: the one of this build)
//   BERTH_SOAK_SEED=S    first round's seed (default: from the clock); a failing round prints its
//                        seed, and BERTH_SOAK_SEED=<it> BERTH_SOAK_KILLS=1 replays it
#include "berthd_proc.h"  // first: its enum Signal names collide with <signal.h> macros

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "host_view.h"
#include "image_support.h"
#include "support/support.h"

namespace {

namespace v1 = runtime::v1;
using berth::testing::Deadline;
using berth::testing::TempDir;
using Clock = std::chrono::steady_clock;

const char* kImage = "docker.io/test/busybox:soak";

struct Listed {
  std::map<std::string, v1::Container> ctrs;
  std::map<std::string, v1::PodSandbox> pods;
  bool ok = false;
};

class Crash : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string reason = berth::testing::ContainerSkipReason("runc");
    if (!reason.empty()) GTEST_SKIP() << reason;
    if (berth::testing::BusyboxPath().empty()) GTEST_SKIP() << "busybox-static is not installed";
    dir_ = std::make_unique<TempDir>("berth-soak");
    // Traversable, as /run and /var/lib are: a user-namespaced pod's root reaches its bundle.
    ASSERT_EQ(::chmod(dir_->path().c_str(), 0711), 0);
    const char* berthd =
        std::getenv("BERTH_TEST_BERTHD") ? std::getenv("BERTH_TEST_BERTHD") : BERTHD_PATH;
    berth::testing::BerthdOptions bo;
    bo.env = {{"BERTH_RRO_PROBE", BERTH_RRO_PROBE_PATH}};  // user namespaces proven (Soak's mix)
    d_ = std::make_unique<berth::testing::BerthdProc>(dir_->path(), berthd, BERTH_MONITOR_PATH,
                                                      BERTH_PAUSE_PATH, bo);
    ASSERT_EQ(d_->Start(), "");
    berth::testing::TestImageOptions o;
    o.user = "";
    o.entrypoint = {};
    o.cmd = {"sh"};
    auto img = berth::testing::BuildTestImage(*dir_ / "oci", o);
    berth::testing::WriteOciArchive(img, *dir_ / "busybox.tar", kImage);
    berth::images::v1::ImportRequest req;
    req.set_path(*dir_ / "busybox.tar");
    berth::images::v1::ImportResponse resp;
    auto st = d_->admin().Import(Deadline().get(), req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    std::filesystem::create_directories(*dir_ / "vol/sub");
  }
  void TearDown() override {
    if (!d_) return;
    if (d_->pid() <= 0) d_->Start();
    RemoveAll();
    d_.reset();
  }

  void Restart() {
    d_->Kill(SIGKILL);
    std::string err = d_->Start();
    ASSERT_EQ(err, "");
  }

  v1::PodSandboxConfig Pod(const std::string& name) {
    v1::PodSandboxConfig c;
    c.mutable_metadata()->set_name(name);
    c.mutable_metadata()->set_namespace_("soak");
    c.mutable_metadata()->set_uid("uid-" + name);
    c.set_hostname(name);
    c.set_log_directory(*dir_ / ("logs/" + name));
    if (name[0] == 'u') {  // a pod with its own user namespace (KEP-127)
      auto* u = c.mutable_linux()
                    ->mutable_security_context()
                    ->mutable_namespace_options()
                    ->mutable_userns_options();
      u->set_mode(v1::POD);
      for (auto* l : {u->mutable_uids(), u->mutable_gids()}) {
        auto* m = l->Add();
        m->set_host_id(3400000000u);
        m->set_length(65536);
      }
    }
    return c;
  }
  // Whether the default handler proved it can run pods in a user namespace.
  bool UsernsSupported() {
    v1::StatusResponse resp;
    if (!d_->rt().Status(Deadline().get(), {}, &resp).ok()) return false;
    for (const auto& h : resp.runtime_handlers())
      if (h.name() == "runc") return h.features().user_namespaces();
    return false;
  }
  grpc::Status RunPod(const v1::PodSandboxConfig& c, std::string* id) {
    v1::RunPodSandboxRequest req;
    *req.mutable_config() = c;
    v1::RunPodSandboxResponse resp;
    auto st = d_->rt().RunPodSandbox(Deadline().get(), req, &resp);
    *id = resp.pod_sandbox_id();
    return st;
  }
  // volume: 0 none, 1 read-write, 2 read-only (recursively, by the handler's default), 3
  // read-only with recursive_read_only asked.
  grpc::Status Create(const std::string& pod, const v1::PodSandboxConfig& pc,
                      const std::string& name, const std::string& script, int volume,
                      std::string* id) {
    v1::CreateContainerRequest req;
    req.set_pod_sandbox_id(pod);
    *req.mutable_sandbox_config() = pc;
    auto* c = req.mutable_config();
    c->mutable_metadata()->set_name(name);
    c->mutable_image()->set_image(kImage);
    for (const char* a : {"sh", "-c"}) c->add_command(a);
    c->add_command(script);
    c->set_log_path(name + ".log");
    if (volume > 0) {
      auto* m = c->add_mounts();
      m->set_host_path(*dir_ / "vol");
      m->set_container_path("/vol");
      m->set_readonly(volume >= 2);
      if (volume == 3) {
        m->set_recursive_read_only(true);
        m->set_propagation(v1::PROPAGATION_PRIVATE);
      }
    }
    v1::CreateContainerResponse resp;
    auto st = d_->rt().CreateContainer(Deadline().get(), req, &resp);
    *id = resp.container_id();
    return st;
  }
  grpc::Status Start(const std::string& id) {
    v1::StartContainerRequest r;
    r.set_container_id(id);
    v1::StartContainerResponse rr;
    return d_->rt().StartContainer(Deadline().get(), r, &rr);
  }
  grpc::Status StopCtr(const std::string& id, int timeout) {
    v1::StopContainerRequest r;
    r.set_container_id(id);
    r.set_timeout(timeout);
    v1::StopContainerResponse rr;
    return d_->rt().StopContainer(Deadline().get(), r, &rr);
  }
  grpc::Status RemoveCtr(const std::string& id) {
    v1::RemoveContainerRequest r;
    r.set_container_id(id);
    v1::RemoveContainerResponse rr;
    return d_->rt().RemoveContainer(Deadline().get(), r, &rr);
  }
  grpc::Status StopPod(const std::string& id) {
    v1::StopPodSandboxRequest r;
    r.set_pod_sandbox_id(id);
    v1::StopPodSandboxResponse rr;
    return d_->rt().StopPodSandbox(Deadline().get(), r, &rr);
  }
  grpc::Status RemovePod(const std::string& id) {
    v1::RemovePodSandboxRequest r;
    r.set_pod_sandbox_id(id);
    v1::RemovePodSandboxResponse rr;
    return d_->rt().RemovePodSandbox(Deadline().get(), r, &rr);
  }
  grpc::Status Exec(const std::string& id, std::string* out) {
    v1::ExecSyncRequest r;
    r.set_container_id(id);
    for (const char* a : {"echo", "soak"}) r.add_cmd(a);
    r.set_timeout(20);
    v1::ExecSyncResponse rr;
    auto st = d_->rt().ExecSync(Deadline().get(), r, &rr);
    *out = rr.stdout();
    return st;
  }
  nlohmann::json Info(const std::string& id) {
    v1::ContainerStatusRequest r;
    r.set_container_id(id);
    r.set_verbose(true);
    v1::ContainerStatusResponse rr;
    if (!d_->rt().ContainerStatus(Deadline().get(), r, &rr).ok()) return nullptr;
    auto it = rr.info().find("info");
    return it == rr.info().end() ? nlohmann::json()
                                 : nlohmann::json::parse(it->second, nullptr, false);
  }
  nlohmann::json PodInfo(const std::string& id) {
    v1::PodSandboxStatusRequest r;
    r.set_pod_sandbox_id(id);
    r.set_verbose(true);
    v1::PodSandboxStatusResponse rr;
    if (!d_->rt().PodSandboxStatus(Deadline().get(), r, &rr).ok()) return nullptr;
    auto it = rr.info().find("info");
    return it == rr.info().end() ? nlohmann::json()
                                 : nlohmann::json::parse(it->second, nullptr, false);
  }
  Listed List() {
    Listed l;
    v1::ListContainersResponse c;
    v1::ListPodSandboxResponse p;
    l.ok = d_->rt().ListContainers(Deadline().get(), {}, &c).ok() &&
           d_->rt().ListPodSandbox(Deadline().get(), {}, &p).ok();
    for (const auto& x : c.containers()) l.ctrs[x.id()] = x;
    for (const auto& x : p.items()) l.pods[x.id()] = x;
    return l;
  }
  // A `<runtime> run` of this berthd is under way (a StartContainer in the middle of its work).
  bool RuntimeRunning() {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
      std::ifstream in(e.path() / "cmdline");
      std::string a((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (a.find(std::string("run\0--detach", 13)) != std::string::npos &&
          a.find(d_->cri_state()) != std::string::npos)
        return true;
    }
    return false;
  }
  void RemoveAll() {
    auto l = List();
    for (const auto& [id, p] : l.pods) RemovePod(id);
  }

  // Invariants 1 and 3: RUNNING <=> a live process with that pid; nothing on the host that no
  // record explains (helpers, mounts, netns files, rro staging). Work after replies (removals)
  // is waited for. Returns the violations.
  std::vector<std::string> CheckHost() {
    std::vector<std::string> bad;
    bool clean = berth::testing::Eventually(
        [&] {
          bad.clear();
          auto l = List();
          if (!l.ok) {
            bad.push_back("List failed");
            return false;
          }
          auto host = berth::testing::ScanHost(dir_->path(), d_->cri_state());
          for (const auto& [id, c] : l.ctrs) {
            if (c.state() != v1::CONTAINER_RUNNING) continue;
            auto info = Info(id);
            int pid = info.is_object() ? info.value("pid", 0) : 0;
            if (!berth::testing::ProcessAlive(pid))
              bad.push_back("RUNNING container " + id + " has no live pid (" + std::to_string(pid) +
                            ")");
          }
          for (const auto& [id, pid] : host.monitors) {
            auto c = l.ctrs.find(id);
            auto p = l.pods.find(id);
            bool ok = (c != l.ctrs.end() && c->second.state() == v1::CONTAINER_RUNNING) ||
                      (p != l.pods.end() && p->second.state() == v1::SANDBOX_READY);
            if (!ok)
              bad.push_back("berth-monitor " + std::to_string(pid) + " of " + id +
                            " runs, not reported running");
          }
          for (const auto& [id, pid] : host.pauses) {
            auto p = l.pods.find(id);
            if (p == l.pods.end() || p->second.state() != v1::SANDBOX_READY)
              bad.push_back("berth-pause " + std::to_string(pid) + " of " + id +
                            " runs, no ready sandbox");
          }
          for (const auto& m : host.mounts) {
            auto [kind, id] = berth::testing::StateOwner(d_->cri_state(), m);
            bool ok = kind == "containers" || kind == "rro" ? l.ctrs.count(id) > 0
                      : kind == "sandboxes" || kind == "netns" || kind == "userns"
                          ? l.pods.count(id) > 0
                          : m.rfind(d_->root_dir() + "/", 0) == 0;
            if (!ok) bad.push_back("mount " + m + " belongs to no record");
          }
          for (const auto& id : host.netns)
            if (!l.pods.count(id)) bad.push_back("netns file " + id + " belongs to no sandbox");
          for (const auto& id : host.rro)
            if (!l.ctrs.count(id)) bad.push_back("rro staging " + id + " belongs to no container");
          for (const auto& id : host.userns)
            if (!l.pods.count(id)) bad.push_back("userns pin " + id + " belongs to no sandbox");
          for (const auto& dir : {"containers", "sandboxes"}) {
            std::error_code ec;
            for (const auto& e :
                 std::filesystem::directory_iterator(d_->cri_state() + "/" + dir, ec)) {
              std::string id = e.path().filename().string();
              if (!l.ctrs.count(id) && !l.pods.count(id))
                bad.push_back(std::string(dir) + "/" + id + " belongs to no record");
            }
          }
          return bad.empty();
        },
        std::chrono::seconds(15));
    if (clean) bad.clear();
    return bad;
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<berth::testing::BerthdProc> d_;
};

// The lines of every berthd log of the run that name `id`.
std::string LogLines(const std::string& dir, const std::string& id) {
  std::string out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().filename().string().rfind("berthd.", 0) != 0) continue;
    std::ifstream in(e.path());
    std::string line;
    while (std::getline(in, line))
      if (line.find(id) != std::string::npos)
        out += e.path().filename().string() + ": " + line.substr(0, 400) + "\n";
  }
  return out;
}

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += "  " + x + "\n";
  return s;
}

// 30 pods started in parallel, berthd SIGKILLed one second in: after the restart every container
// whose process runs is RUNNING with its pid, a second StartContainer on it is refused and kills
// nothing, and the others start.
TEST_F(Crash, ParallelStartsKilledOneSecondIn) {
  std::vector<std::thread> ts;
  std::atomic<int> starting{0}, started{0};
  for (int i = 0; i < 30; ++i) {
    ts.emplace_back([this, i, &starting, &started] {
      auto pc = Pod("p" + std::to_string(i));
      std::string pod, ctr;
      auto st = RunPod(pc, &pod);
      if (st.ok()) st = Create(pod, pc, "c", "sleep 1000", 0, &ctr);
      if (!st.ok()) {
        if (i == 0) std::cout << "pod 0: " << st.error_message() << "\n";
        return;
      }
      ++starting;
      if (Start(ctr).ok()) ++started;
    });
  }
  // One second in on a quiet machine; on a busy one, the instant a StartContainer is under way
  // (a berth-monitor runs that no answer accounts for).
  auto t0 = Clock::now();
  while (Clock::now() - t0 < std::chrono::seconds(60)) {
    if (starting >= 4 && RuntimeRunning()) break;
  }
  d_->Kill(SIGKILL);
  auto at_kill = berth::testing::ScanHost(dir_->path(), d_->cri_state());
  std::cout << "killed with " << at_kill.monitors.size() << " berth-monitors running, " << started
            << " starts answered\n";
  if (std::getenv("BERTH_SOAK_VERBOSE"))
    std::cout << d_->Log().substr(d_->Log().size() > 6000 ? d_->Log().size() - 6000 : 0);
  for (auto& t : ts) t.join();
  ASSERT_GE(starting.load(), 4) << "no container got to StartContainer";
  ASSERT_EQ(d_->Start(), "");
  EXPECT_EQ(CheckHost(), std::vector<std::string>{}) << d_->Log();
  auto l = List();
  int running = 0, created = 0;
  for (const auto& [id, c] : l.ctrs) {
    if (c.state() == v1::CONTAINER_RUNNING) {
      ++running;
      int pid = Info(id).value("pid", 0);
      auto st = Start(id);
      EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
      EXPECT_NE(st.error_message().find("CONTAINER_RUNNING"), std::string::npos)
          << st.error_message();
      EXPECT_TRUE(berth::testing::ProcessAlive(pid)) << "a second StartContainer killed " << id;
      EXPECT_EQ(Info(id).value("pid", 0), pid);
    } else if (c.state() == v1::CONTAINER_CREATED) {
      ++created;
      auto st = Start(id);
      EXPECT_TRUE(st.ok()) << id << ": " << st.error_message() << "\n" << d_->Log();
    } else {
      ADD_FAILURE() << "container " << id << " is in state " << c.state() << " after the restart";
    }
  }
  std::cout << "after the kill: " << l.pods.size() << " pods, " << running << " running and "
            << created << " created containers\n";
  EXPECT_EQ(CheckHost(), std::vector<std::string>{});
  RemoveAll();
  EXPECT_EQ(CheckHost(), std::vector<std::string>{});
  auto host = berth::testing::ScanHost(dir_->path(), d_->cri_state());
  EXPECT_TRUE(host.monitors.empty() && host.pauses.empty() && host.netns.empty());
}

TEST_F(Crash, SecondStartOfARunningContainerIsRefusedAndKillsNothing) {
  auto pc = Pod("twice");
  std::string pod, ctr;
  ASSERT_TRUE(RunPod(pc, &pod).ok());
  ASSERT_TRUE(Create(pod, pc, "c", "sleep 1000", 0, &ctr).ok());
  ASSERT_TRUE(Start(ctr).ok());
  int pid = Info(ctr).value("pid", 0);
  auto st = Start(ctr);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("container is in CONTAINER_RUNNING state"), std::string::npos)
      << st.error_message();
  EXPECT_TRUE(berth::testing::ProcessAlive(pid));
  ASSERT_TRUE(StopCtr(ctr, 0).ok());
  st = Start(ctr);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("CONTAINER_EXITED"), std::string::npos) << st.error_message();
}

// A berth-monitor SIGKILLed: the container is reported EXITED (the monitor cannot tell its code:
// reason Unknown), its process is gone, and its log keeps the lines written before the kill;
// also across a berthd restart.
TEST_F(Crash, MonitorKilled) {
  auto pc = Pod("mon");
  std::string pod, a, b;
  ASSERT_TRUE(RunPod(pc, &pod).ok());
  ASSERT_TRUE(Create(pod, pc, "a", "echo before; sleep 1000", 0, &a).ok());
  ASSERT_TRUE(Create(pod, pc, "b", "echo before-b; sleep 1000", 0, &b).ok());
  ASSERT_TRUE(Start(a).ok());
  ASSERT_TRUE(Start(b).ok());
  std::string log_a = *dir_ / "logs/mon/a.log", log_b = *dir_ / "logs/mon/b.log";
  ASSERT_TRUE(berth::testing::Eventually([&] {
    std::ifstream in(log_a), in2(log_b);
    std::stringstream s, s2;
    s << in.rdbuf();
    s2 << in2.rdbuf();
    return s.str().find("before") != std::string::npos &&
           s2.str().find("before-b") != std::string::npos;
  }));
  // a: while berthd runs; b: while it is down.
  auto ia = Info(a), ib = Info(b);
  ASSERT_EQ(::kill(ia.value("monitorPid", 0), SIGKILL), 0);
  d_->Kill(SIGKILL);
  ASSERT_EQ(::kill(ib.value("monitorPid", 0), SIGKILL), 0);
  ASSERT_EQ(d_->Start(), "");
  for (const auto& [id, info, log, line] :
       {std::tuple{a, ia, log_a, "before"}, std::tuple{b, ib, log_b, "before-b"}}) {
    ASSERT_TRUE(berth::testing::Eventually([&] {
      v1::ContainerStatusRequest r;
      r.set_container_id(id);
      v1::ContainerStatusResponse rr;
      return d_->rt().ContainerStatus(Deadline().get(), r, &rr).ok() &&
             rr.status().state() == v1::CONTAINER_EXITED;
    })) << id;
    EXPECT_TRUE(berth::testing::Eventually([&, pid = info.value("pid", 0)] {
      return !berth::testing::ProcessAlive(pid);
    })) << "the init of "
        << id << " outlived its monitor";
    std::ifstream in(log);
    std::stringstream s;
    s << in.rdbuf();
    EXPECT_NE(s.str().find(line), std::string::npos) << s.str();
  }
  EXPECT_EQ(CheckHost(), std::vector<std::string>{});
}

// A container's init SIGKILLed (while berthd runs and while it is down): EXITED with 137.
TEST_F(Crash, InitKilled) {
  auto pc = Pod("init");
  std::string pod, a, b;
  ASSERT_TRUE(RunPod(pc, &pod).ok());
  ASSERT_TRUE(Create(pod, pc, "a", "sleep 1000", 0, &a).ok());
  ASSERT_TRUE(Create(pod, pc, "b", "sleep 1000", 0, &b).ok());
  ASSERT_TRUE(Start(a).ok());
  ASSERT_TRUE(Start(b).ok());
  int pa = Info(a).value("pid", 0), pb = Info(b).value("pid", 0);
  ASSERT_EQ(::kill(pa, SIGKILL), 0);
  d_->Kill(SIGKILL);
  ASSERT_EQ(::kill(pb, SIGKILL), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(d_->Start(), "");
  for (const auto& id : {a, b}) {
    v1::ContainerStatusRequest r;
    r.set_container_id(id);
    v1::ContainerStatusResponse rr;
    ASSERT_TRUE(berth::testing::Eventually([&] {
      rr.Clear();
      return d_->rt().ContainerStatus(Deadline().get(), r, &rr).ok() &&
             rr.status().state() == v1::CONTAINER_EXITED;
    }));
    EXPECT_EQ(rr.status().exit_code(), 137) << id;
  }
  EXPECT_EQ(CheckHost(), std::vector<std::string>{});
}

// SIGTERM lets a call in flight finish, then berthd exits; the container keeps running and is
// RUNNING again after the restart.
TEST_F(Crash, SigtermLetsCallsFinishAndLeavesContainers) {
  auto pc = Pod("term");
  std::string pod, ctr;
  ASSERT_TRUE(RunPod(pc, &pod).ok());
  ASSERT_TRUE(Create(pod, pc, "c", "sleep 1000", 0, &ctr).ok());
  ASSERT_TRUE(Start(ctr).ok());
  int pid = Info(ctr).value("pid", 0);
  grpc::Status exec_status;
  v1::ExecSyncResponse exec_out;
  std::thread t([&] {
    v1::ExecSyncRequest r;
    r.set_container_id(ctr);
    for (const char* a : {"sh", "-c", "sleep 2; echo done"}) r.add_cmd(a);
    r.set_timeout(30);
    exec_status = d_->rt().ExecSync(Deadline().get(), r, &exec_out);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  auto t0 = Clock::now();
  d_->Kill(SIGTERM);
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  t.join();
  EXPECT_TRUE(exec_status.ok()) << exec_status.error_message();
  EXPECT_EQ(exec_out.stdout(), "done\n");
  EXPECT_LT(secs, 15.0);
  EXPECT_TRUE(berth::testing::ProcessAlive(pid));
  ASSERT_EQ(d_->Start(), "");
  auto l = List();
  EXPECT_EQ(l.ctrs[ctr].state(), v1::CONTAINER_RUNNING);
  EXPECT_EQ(Info(ctr).value("pid", 0), pid);
}

// A damaged record: berthd starts, serves the rest and names what it set aside.
TEST_F(Crash, DamagedRecordIsSetAside) {
  auto pc = Pod("dmg");
  std::string pod, a, b;
  ASSERT_TRUE(RunPod(pc, &pod).ok());
  ASSERT_TRUE(Create(pod, pc, "a", "sleep 1000", 0, &a).ok());
  ASSERT_TRUE(Create(pod, pc, "b", "sleep 1000", 0, &b).ok());
  ASSERT_TRUE(Start(a).ok());
  d_->Kill(SIGKILL);
  std::string db = d_->root_dir() + "/io.containerd.grpc.v1.cri/lifecycle/lifecycle.db";
  if (!std::filesystem::exists(db)) {
    for (const auto& e : std::filesystem::recursive_directory_iterator(d_->root_dir()))
      if (e.path().filename() == "lifecycle.db") db = e.path().string();
  }
  std::string sql =
      "UPDATE lifecycle_containers SET meta = '{\"state\": [1,' WHERE id = '" + b + "';";
  ASSERT_EQ(std::system(("sqlite3 '" + db + "' \"" + sql + "\"").c_str()), 0)
      << "sqlite3 CLI needed";
  ASSERT_EQ(d_->Start(), "");
  auto l = List();
  EXPECT_EQ(l.ctrs.count(a), 1u);
  EXPECT_EQ(l.ctrs.count(b), 0u);
  EXPECT_EQ(l.ctrs[a].state(), v1::CONTAINER_RUNNING);
  EXPECT_NE(d_->Log().find("container record " + b + " set aside"), std::string::npos) << d_->Log();
}

// A crash at every cut point of the calls that stop and remove (and at the main ones of those
// that create): berthd SIGKILLs itself once the step is recorded (BERTH_CRASH_AT), the call gets
// no answer, and after the restart recovery has finished or undone it as docs/pods.md says,
// with nothing on the host that no record explains.
TEST_F(Crash, EveryCutPointIsRecovered) {
  enum Want { kPodGone, kCtrGone, kCtrCreated, kCtrRunning, kCtrExited, kPodNotReady };
  struct Cut {
    const char* call;
    const char* step;
    Want want;
  };
  const std::vector<Cut> cuts = {
      {"StopContainer", "stop-signal", kCtrRunning},
      {"StopContainer", "stop-kill", kCtrExited},
      {"StopContainer", "stop-exited", kCtrExited},
      {"RemoveContainer", "remove-stop", kCtrGone},
      {"RemoveContainer", "remove-runtime", kCtrGone},
      {"RemoveContainer", "remove-staging", kCtrGone},
      {"RemoveContainer", "remove-record", kCtrGone},
      {"StopPodSandbox", "stop-containers", kPodNotReady},
      {"StopPodSandbox", "stop-pause", kPodNotReady},
      {"StopPodSandbox", "stop-shm", kPodNotReady},
      {"StopPodSandbox", "stop-network", kPodNotReady},
      {"StopPodSandbox", "stop-netns", kPodNotReady},
      {"StopPodSandbox", "stop-notready", kPodNotReady},
      {"RemovePodSandbox", "remove-stop", kPodGone},
      {"RemovePodSandbox", "remove-cgroups", kPodGone},
      {"RemovePodSandbox", "remove-containers", kPodGone},
      {"RemovePodSandbox", "remove-record", kPodGone},
      {"RunPodSandbox", "pause", kPodGone},
      {"RunPodSandbox", "ready", kPodGone},
      {"CreateContainer", "rootfs", kCtrGone},
      {"CreateContainer", "created", kCtrGone},
      {"StartContainer", "monitor", kCtrCreated},
      {"StartContainer", "running", kCtrRunning},
  };
  int n = 0;
  for (const auto& cut : cuts) {
    std::string where = std::string(cut.call) + ":" + cut.step;
    SCOPED_TRACE(where);
    auto pc = Pod("cut" + std::to_string(n++));
    std::string pod, ctr;
    std::string call = cut.call;
    if (call != "RunPodSandbox") {
      ASSERT_TRUE(RunPod(pc, &pod).ok());
      if (call != "CreateContainer") {
        ASSERT_TRUE(Create(pod, pc, "c", "echo up; sleep 1000", 3, &ctr).ok());
        if (call != "StartContainer") {
          ASSERT_TRUE(Start(ctr).ok());
        }
      }
    }
    ::setenv("BERTH_CRASH_AT", where.c_str(), 1);
    d_->Kill(SIGKILL);
    std::string err = d_->Start();
    ::unsetenv("BERTH_CRASH_AT");
    ASSERT_EQ(err, "");
    grpc::Status st;
    if (call == "StopContainer") st = StopCtr(ctr, 30);
    if (call == "RemoveContainer") st = RemoveCtr(ctr);
    if (call == "StopPodSandbox") st = StopPod(pod);
    if (call == "RemovePodSandbox") st = RemovePod(pod);
    if (call == "RunPodSandbox") st = RunPod(pc, &pod);
    if (call == "CreateContainer") st = Create(pod, pc, "c", "echo up; sleep 1000", 3, &ctr);
    if (call == "StartContainer") st = Start(ctr);
    ASSERT_FALSE(st.ok()) << "berthd did not crash at " << where;
    std::string crashed_log = d_->Log();
    d_->Kill(SIGKILL);  // reaps it
    ASSERT_EQ(d_->Start(), "");
    EXPECT_EQ(CheckHost(), std::vector<std::string>{});
    auto l = List();
    if (cut.want == kPodGone) {
      EXPECT_EQ(l.pods.size() + l.ctrs.size(), 0u) << d_->Log();
    } else {
      EXPECT_EQ(l.pods.count(pod), 1u);
    }
    if (cut.want == kCtrGone) {
      EXPECT_EQ(l.ctrs.count(ctr), 0u) << d_->Log();
    }
    if (cut.want == kCtrCreated) {
      EXPECT_EQ(l.ctrs[ctr].state(), v1::CONTAINER_CREATED);
    }
    if (cut.want == kCtrRunning) {
      EXPECT_EQ(l.ctrs[ctr].state(), v1::CONTAINER_RUNNING);
    }
    if (cut.want == kCtrExited || cut.want == kPodNotReady) {
      EXPECT_EQ(l.ctrs[ctr].state(), v1::CONTAINER_EXITED);
      v1::ContainerStatusRequest r;
      r.set_container_id(ctr);
      v1::ContainerStatusResponse rr;
      ASSERT_TRUE(d_->rt().ContainerStatus(Deadline().get(), r, &rr).ok());
      int code = rr.status().exit_code();  // killed: by the stop signal or SIGKILL
      EXPECT_TRUE(code == 143 || code == 137) << code << " " << rr.status().message();
    }
    if (cut.want == kPodNotReady) {
      EXPECT_EQ(l.pods[pod].state(), v1::SANDBOX_NOTREADY);
    }
    if (call.rfind("Stop", 0) == 0 || call.rfind("Remove", 0) == 0) {
      EXPECT_NE(d_->Log().find(call + " was cut short after step " + cut.step), std::string::npos)
          << d_->Log();
    }
    if (!pod.empty()) {
      EXPECT_TRUE(RemovePod(pod).ok());
    }
    if (::testing::Test::HasFailure()) break;
  }
  EXPECT_EQ(CheckHost(), std::vector<std::string>{});
}

// --- the soak ---------------------------------------------------------------------------------

struct ModelCtr {
  std::string pod;
  int code = -1;  // exit code of a quick container; -1: a sleeper (only a kill ends it: 137)
  enum St { kCreated, kStarted, kStopped } st = kCreated;
  bool uncertain = false;
};
struct ModelPod {
  v1::PodSandboxConfig cfg;
  bool stopped = false, uncertain = false, busy = false;
};

class Soak : public Crash {
 protected:
  std::mutex mu_;
  std::map<std::string, ModelPod> pods_;
  std::map<std::string, ModelCtr> ctrs_;
  std::set<std::string> removed_;               // answered removals: must never come back
  std::map<std::string, std::string> cgroups_;  // id -> cgroupsPath, for the end
  std::string pulled_ref_;
  int pulled_ = 0;  // 1 pulled (answered), 0 removed (answered), -1 unknown
  std::atomic<bool> stop_{false};
  std::atomic<int> names_{0};
  std::atomic<long> calls_{0};
  bool userns_ = false;  // a third of the new pods get their own user namespace
  std::atomic<int> userns_pods_{0};

  void Worker(uint64_t seed);
  void Op(std::mt19937_64& rng);
  std::vector<std::string> CheckModel();
  void Adopt();
};

bool Lost(const grpc::Status& st) {  // berthd was killed under the call: its outcome is unknown
  return st.error_code() == grpc::StatusCode::UNAVAILABLE ||
         st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
         st.error_code() == grpc::StatusCode::CANCELLED ||
         st.error_code() == grpc::StatusCode::UNKNOWN;
}

void Soak::Op(std::mt19937_64& rng) {
  std::unique_lock<std::mutex> lock(mu_);
  std::vector<std::string> free_pods;
  for (auto& [id, p] : pods_)
    if (!p.busy) free_pods.push_back(id);
  int op = static_cast<int>(rng() % 100);
  if (op < 6 && !pulled_ref_.empty()) {  // image pull / removal
    bool pull = rng() % 2;
    lock.unlock();
    ++calls_;
    grpc::Status st;
    if (pull) {
      v1::PullImageRequest r;
      r.mutable_image()->set_image(pulled_ref_);
      v1::PullImageResponse rr;
      st = d_->img().PullImage(Deadline(120).get(), r, &rr);
    } else {
      v1::RemoveImageRequest r;
      r.mutable_image()->set_image(pulled_ref_);
      v1::RemoveImageResponse rr;
      st = d_->img().RemoveImage(Deadline().get(), r, &rr);
    }
    lock.lock();
    if (st.ok())
      pulled_ = pull ? 1 : 0;
    else if (Lost(st))
      pulled_ = -1;
    return;
  }
  if (op < 20 && pods_.size() < 6) {  // a new pod
    auto cfg = Pod((userns_ && rng() % 3 == 0 ? "u" : "s") + std::to_string(names_++));
    lock.unlock();
    ++calls_;
    std::string id;
    auto st = RunPod(cfg, &id);
    lock.lock();
    if (st.ok()) pods_[id] = ModelPod{cfg};
    if (st.ok() && cfg.metadata().name()[0] == 'u') ++userns_pods_;
    return;
  }
  if (free_pods.empty()) return;
  std::string pid = free_pods[rng() % free_pods.size()];
  ModelPod& pod = pods_[pid];
  pod.busy = true;
  std::vector<std::string> mine;
  for (auto& [id, c] : ctrs_)
    if (c.pod == pid) mine.push_back(id);
  auto done = [&] { pods_[pid].busy = false; };
  if (op < 25) {  // remove the pod
    lock.unlock();
    ++calls_;
    auto st = RemovePod(pid);
    lock.lock();
    if (st.ok()) {
      pods_.erase(pid);
      removed_.insert(pid);
      for (auto& id : mine) {
        ctrs_.erase(id);
        removed_.insert(id);
      }
      return;
    }
    if (Lost(st)) pods_[pid].uncertain = true;
    return done();
  }
  if (op < 30) {  // stop the pod
    lock.unlock();
    ++calls_;
    auto st = StopPod(pid);
    lock.lock();
    if (st.ok()) {
      pods_[pid].stopped = true;
      for (auto& id : mine)
        if (ctrs_[id].st == ModelCtr::kStarted) ctrs_[id].st = ModelCtr::kStopped;
    } else if (Lost(st)) {
      pods_[pid].uncertain = true;
      for (auto& id : mine) ctrs_[id].uncertain = true;
    }
    return done();
  }
  if (op < 50 || mine.empty()) {  // a new container
    if (pod.stopped) return done();
    ModelCtr c;
    c.pod = pid;
    c.code = rng() % 3 == 0 ? static_cast<int>(rng() % 100) : -1;
    std::string script =
        c.code >= 0 ? "echo quick; exit " + std::to_string(c.code) : "echo sleeper; sleep 1000";
    int volume = static_cast<int>(rng() % 4);
    auto cfg = pod.cfg;
    std::string name = "c" + std::to_string(names_++);
    lock.unlock();
    ++calls_;
    std::string id;
    auto st = Create(pid, cfg, name, script, volume, &id);
    lock.lock();
    if (st.ok()) ctrs_[id] = c;
    return done();
  }
  std::string cid = mine[rng() % mine.size()];
  ModelCtr c = ctrs_[cid];
  lock.unlock();
  ++calls_;
  grpc::Status st;
  int which = static_cast<int>(rng() % 4);
  std::string out;
  if (which == 0)
    st = Start(cid);
  else if (which == 1)
    st = StopCtr(cid, static_cast<int>(rng() % 2));
  else if (which == 2)
    st = RemoveCtr(cid);
  else
    st = Exec(cid, &out);
  lock.lock();
  if (!ctrs_.count(cid)) return done();
  auto& mc = ctrs_[cid];
  if (Lost(st)) {
    mc.uncertain = true;
  } else if (st.ok()) {
    if (which == 0) mc.st = ModelCtr::kStarted;
    if (which == 1 && mc.st != ModelCtr::kCreated) mc.st = ModelCtr::kStopped;
    if (which == 2) {
      ctrs_.erase(cid);
      removed_.insert(cid);
    }
    if (which == 3 && out != "soak\n") ADD_FAILURE() << "ExecSync answered " << out;
  }
  done();
}

void Soak::Worker(uint64_t seed) {
  std::mt19937_64 rng(seed);
  while (!stop_) Op(rng);
}

// Invariants 2 and 4 against the model: answered calls are not lost, exit codes are real.
std::vector<std::string> Soak::CheckModel() {
  std::vector<std::string> bad;
  auto l = List();
  for (const auto& id : removed_)
    if (l.ctrs.count(id) || l.pods.count(id))
      bad.push_back(id + " was removed (answered) and is back");
  for (const auto& [id, p] : pods_) {
    auto it = l.pods.find(id);
    if (it == l.pods.end()) {
      if (!p.uncertain) bad.push_back("pod " + id + " (answered) is lost");
      continue;
    }
    if (!p.uncertain && p.stopped && it->second.state() != v1::SANDBOX_NOTREADY)
      bad.push_back("stopped pod " + id + " is ready");
  }
  for (const auto& [id, c] : ctrs_) {
    auto it = l.ctrs.find(id);
    if (it == l.ctrs.end()) {
      if (!c.uncertain && !pods_[c.pod].uncertain)
        bad.push_back("container " + id + " (answered) is lost");
      continue;
    }
    auto state = it->second.state();
    bool certain = !c.uncertain && !pods_[c.pod].uncertain;
    if (certain && c.st == ModelCtr::kCreated && state != v1::CONTAINER_CREATED)
      bad.push_back("created container " + id + " is in state " + std::to_string(state));
    if (certain && c.st == ModelCtr::kStarted && c.code < 0 && state != v1::CONTAINER_RUNNING)
      bad.push_back("started sleeper " + id + " is in state " + std::to_string(state));
    if (certain && c.st == ModelCtr::kStopped && state != v1::CONTAINER_EXITED)
      bad.push_back("stopped container " + id + " is in state " + std::to_string(state));
    if (state == v1::CONTAINER_EXITED) {
      v1::ContainerStatusRequest r;
      r.set_container_id(id);
      v1::ContainerStatusResponse rr;
      d_->rt().ContainerStatus(Deadline().get(), r, &rr);
      int code = rr.status().exit_code();
      if (code != 137 && code != 143 && code != c.code)
        bad.push_back("container " + id + " exited with " + std::to_string(code) + " (" +
                      rr.status().reason() + ": " + rr.status().message() +
                      "), its process returns " + std::to_string(c.code) +
                      " or is killed (137, 143)");
    }
  }
  if (pulled_ >= 0 && !pulled_ref_.empty()) {
    v1::ImageStatusRequest r;
    r.mutable_image()->set_image(pulled_ref_);
    v1::ImageStatusResponse rr;
    d_->img().ImageStatus(Deadline().get(), r, &rr);
    if (rr.has_image() != (pulled_ == 1))
      bad.push_back(std::string("the pulled image is ") + (rr.has_image() ? "listed" : "missing"));
  }
  return bad;
}

// After a check: the model takes what berthd reports for what was uncertain.
void Soak::Adopt() {
  auto l = List();
  for (auto it = pods_.begin(); it != pods_.end();) {
    auto p = l.pods.find(it->first);
    if (p == l.pods.end()) {
      removed_.insert(it->first);
      it = pods_.erase(it);
      continue;
    }
    it->second.uncertain = it->second.busy = false;
    it->second.stopped = p->second.state() != v1::SANDBOX_READY;
    ++it;
  }
  for (const auto& [id, p] : l.pods) {
    if (!pods_.count(id)) {
      ModelPod mp;
      mp.cfg = Pod(p.metadata().name());
      mp.stopped = p.state() != v1::SANDBOX_READY;
      pods_[id] = mp;
    }
  }
  for (auto it = ctrs_.begin(); it != ctrs_.end();) {
    auto c = l.ctrs.find(it->first);
    if (c == l.ctrs.end()) {
      removed_.insert(it->first);
      it = ctrs_.erase(it);
      continue;
    }
    it->second.uncertain = false;
    auto s = c->second.state();
    it->second.st = s == v1::CONTAINER_CREATED   ? ModelCtr::kCreated
                    : s == v1::CONTAINER_RUNNING ? ModelCtr::kStarted
                                                 : ModelCtr::kStopped;
    ++it;
  }
  for (const auto& [id, c] : l.ctrs) {
    if (ctrs_.count(id)) continue;
    ModelCtr mc;
    mc.pod = c.pod_sandbox_id();
    auto info = Info(id);
    // The script tells what the process returns.
    std::string script =
        info.is_object() ? info["runtimeSpec"]["process"]["args"].back().get<std::string>() : "";
    size_t e = script.find("exit ");
    mc.code = e == std::string::npos ? -1 : std::atoi(script.c_str() + e + 5);
    auto s = c.state();
    mc.st = s == v1::CONTAINER_CREATED   ? ModelCtr::kCreated
            : s == v1::CONTAINER_RUNNING ? ModelCtr::kStarted
                                         : ModelCtr::kStopped;
    ctrs_[id] = mc;
  }
  for (const auto& [id, p] : pods_)
    if (!cgroups_.count(id)) cgroups_[id] = PodInfo(id).value("cgroupsPath", "");
  for (const auto& [id, c] : ctrs_)
    if (!cgroups_.count(id)) cgroups_[id] = Info(id).value("cgroupsPath", "");
  if (pulled_ < 0) {
    v1::ImageStatusRequest r;
    r.mutable_image()->set_image(pulled_ref_);
    v1::ImageStatusResponse rr;
    d_->img().ImageStatus(Deadline().get(), r, &rr);
    pulled_ = rr.has_image() ? 1 : 0;
  }
}

TEST_F(Soak, RandomKillsKeepTheInvariants) {
  int kills = std::getenv("BERTH_SOAK_KILLS") ? std::atoi(std::getenv("BERTH_SOAK_KILLS")) : 25;
  uint64_t seed = std::getenv("BERTH_SOAK_SEED")
                      ? std::strtoull(std::getenv("BERTH_SOAK_SEED"), nullptr, 10)
                      : static_cast<uint64_t>(Clock::now().time_since_epoch().count() % 1000000007);
  std::unique_ptr<berth::testing::LocalRegistry> reg;
  if (berth::testing::RegistrySkipReason().empty()) {
    reg = std::make_unique<berth::testing::LocalRegistry>();
    berth::testing::TestImageOptions o;
    o.id = "pulled";
    auto img = berth::testing::BuildTestImage(*dir_ / "oci-pulled", o);
    berth::testing::PushImage(img, reg->host(), "test/pulled:v1");
    pulled_ref_ = reg->host() + "/test/pulled:v1";
  } else {
    std::cout << "no pulls: " << berth::testing::RegistrySkipReason() << "\n";
  }
  userns_ = UsernsSupported();
  std::cout << (userns_ ? "with" : "without") << " user-namespaced pods\n";
  auto baseline = berth::testing::ScanHost(dir_->path(), d_->cri_state());
  auto start = Clock::now();
  int violations = 0;
  for (int round = 0; round < kills; ++round) {
    uint64_t s = seed + static_cast<uint64_t>(round);
    std::mt19937_64 rng(s);
    stop_ = false;
    std::vector<std::thread> workers;
    for (int w = 0; w < 3; ++w)
      workers.emplace_back([this, s, w] { Worker(s * 31 + static_cast<uint64_t>(w)); });
    std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 1900));
    d_->Kill(SIGKILL);
    stop_ = true;
    for (auto& t : workers) t.join();
    std::string err = d_->Start();
    ASSERT_EQ(err, "") << "round seed " << s;
    auto bad = CheckHost();
    auto model = CheckModel();
    bad.insert(bad.end(), model.begin(), model.end());
    if (!bad.empty()) {
      ++violations;
      ADD_FAILURE() << "round " << round << " (seed " << s << ", replay with BERTH_SOAK_SEED=" << s
                    << " BERTH_SOAK_KILLS=1) broke invariants:\n"
                    << Join(bad) << "log:\n"
                    << d_->Log();
    }
    Adopt();
    std::cout << "round " << round << " (seed " << s << "): " << pods_.size() << " pods, "
              << ctrs_.size() << " containers after the restart\n";
    if (violations >= 3) break;
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::cout << "soak: " << kills << " kill points, " << violations << " rounds with violations, "
            << calls_ << " calls, " << userns_pods_ << " user-namespaced pods, " << secs
            << " s, first seed " << seed << "\n";
  // Invariant 5: after everything is removed, the host is as before the run.
  RemoveAll();
  if (!pulled_ref_.empty()) {
    v1::RemoveImageRequest r;
    r.mutable_image()->set_image(pulled_ref_);
    v1::RemoveImageResponse rr;
    d_->img().RemoveImage(Deadline().get(), r, &rr);
  }
  EXPECT_EQ(CheckHost(), std::vector<std::string>{});
  auto after = berth::testing::ScanHost(dir_->path(), d_->cri_state());
  EXPECT_EQ(after.mounts, baseline.mounts);
  EXPECT_TRUE(after.monitors.empty() && after.pauses.empty() && after.netns.empty() &&
              after.rro.empty() && after.userns.empty());
  for (const auto& [id, path] : cgroups_)
    EXPECT_EQ(berth::testing::ExistingCgroups(path), std::vector<std::string>{})
        << id << ":\n"
        << LogLines(dir_->path(), id);
  for (const char* sub : {"containers", "sandboxes"}) {
    std::error_code ec;
    EXPECT_TRUE(std::filesystem::is_empty(d_->cri_state() + "/" + sub, ec)) << sub;
  }
}

// After a soak was interrupted (its directory is kept then): BERTH_SOAK_CLEAN_DIR=<dir> starts
// berthd on it and removes every pod, container and the berthd.
TEST(SoakCleanup, RemovesWhatAnInterruptedRunLeft) {
  const char* dir = std::getenv("BERTH_SOAK_CLEAN_DIR");
  if (!dir) GTEST_SKIP() << "BERTH_SOAK_CLEAN_DIR is not set";
  berth::testing::BerthdProc d(dir, BERTHD_PATH, BERTH_MONITOR_PATH, BERTH_PAUSE_PATH);
  ASSERT_EQ(d.Start(), "");
  v1::ListPodSandboxResponse pods;
  ASSERT_TRUE(d.rt().ListPodSandbox(Deadline().get(), {}, &pods).ok());
  for (const auto& p : pods.items()) {
    v1::RemovePodSandboxRequest r;
    r.set_pod_sandbox_id(p.id());
    v1::RemovePodSandboxResponse rr;
    EXPECT_TRUE(d.rt().RemovePodSandbox(Deadline().get(), r, &rr).ok());
  }
}

}  // namespace
