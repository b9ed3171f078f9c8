// Container and pod statistics from cgroup v1 files and the snapshotter.
#include "lifecycle/service_impl.h"  // first: its enum Signal names collide with <signal.h> macros

#include <sstream>

#include "common/error.h"
#include "common/fs.h"
#include "snapshot/snapshotter.h"

namespace berth::lifecycle {

namespace {

std::optional<uint64_t> ReadU64(const std::string& path) {
  try {
    return std::stoull(fs::ReadFile(path, 4096));
  } catch (...) {
    return std::nullopt;
  }
}

uint64_t StatKey(const std::string& text, const std::string& key) {
  std::stringstream ss(text);
  std::string k;
  uint64_t v;
  while (ss >> k >> v) {
    if (k == key) return v;
  }
  return 0;
}

struct Sample {
  std::optional<uint64_t> cpu, mem_usage;
  uint64_t inactive_file = 0, rss = 0, pgfault = 0, pgmajfault = 0;
};

Sample ReadCgroup(const std::string& cg) {
  Sample s;
  s.cpu = ReadU64("/sys/fs/cgroup/cpuacct" + cg + "/cpuacct.usage");
  s.mem_usage = ReadU64("/sys/fs/cgroup/memory" + cg + "/memory.usage_in_bytes");
  std::string stat;
  try {
    stat = fs::ReadFile("/sys/fs/cgroup/memory" + cg + "/memory.stat", 1 << 20);
  } catch (...) {
  }
  s.inactive_file = StatKey(stat, "total_inactive_file");
  s.rss = StatKey(stat, "total_rss");
  s.pgfault = StatKey(stat, "total_pgfault");
  s.pgmajfault = StatKey(stat, "total_pgmajfault");
  return s;
}

void FillCpuMem(const Sample& s, int64_t ts, std::optional<uint64_t> nano_cores, v1::CpuUsage* cpu,
                v1::MemoryUsage* mem) {
  cpu->set_timestamp(ts);
  if (s.cpu) cpu->mutable_usage_core_nano_seconds()->set_value(*s.cpu);
  if (nano_cores) cpu->mutable_usage_nano_cores()->set_value(*nano_cores);
  mem->set_timestamp(ts);
  if (s.mem_usage) {
    uint64_t ws = *s.mem_usage > s.inactive_file ? *s.mem_usage - s.inactive_file : 0;
    mem->mutable_working_set_bytes()->set_value(ws);
    mem->mutable_usage_bytes()->set_value(*s.mem_usage);
    mem->mutable_rss_bytes()->set_value(s.rss);
    mem->mutable_page_faults()->set_value(s.pgfault);
    mem->mutable_major_page_faults()->set_value(s.pgmajfault);
  }
}

}  // namespace

// usage_nano_cores from the previous sample of the same id.
static std::optional<uint64_t> NanoCores(RuntimeService::Impl& I, const std::string& id, int64_t ts,
                                         std::optional<uint64_t> usage) {
  if (!usage) return std::nullopt;
  std::lock_guard<std::mutex> lock(I.mu);
  auto& prev = I.cpu_samples[id];
  std::optional<uint64_t> out;
  if (prev.ts > 0 && ts > prev.ts && *usage >= prev.usage) {
    out = static_cast<uint64_t>(static_cast<double>(*usage - prev.usage) * 1e9 / static_cast<double>(ts - prev.ts));
  }
  prev = {ts, *usage};
  return out;
}

static void FillContainerStats(RuntimeService::Impl& I, const ContainerRecord& c, v1::ContainerStats* st) {
  int64_t ts = NowNs();
  auto* a = st->mutable_attributes();
  a->set_id(c.id);
  *a->mutable_metadata() = c.config.metadata();
  *a->mutable_labels() = c.config.labels();
  *a->mutable_annotations() = c.config.annotations();
  Sample s = c.state == kRunning ? ReadCgroup(c.cgroups_path) : Sample{};
  FillCpuMem(s, ts, NanoCores(I, c.id, ts, s.cpu), st->mutable_cpu(), st->mutable_memory());
  auto* wl = st->mutable_writable_layer();
  wl->set_timestamp(ts);
  wl->mutable_fs_id()->set_mountpoint(fs::Join(I.opts.state_dir, "containers/" + c.id + "/rootfs"));
  if (I.opts.images) {
    try {
      auto u = I.opts.images->snapshotter().GetUsage(c.id);
      wl->mutable_used_bytes()->set_value(static_cast<uint64_t>(u.bytes));
      wl->mutable_inodes_used()->set_value(static_cast<uint64_t>(u.inodes));
    } catch (...) {
    }
  }
}

void RuntimeService::ContainerStats(const v1::ContainerStatsRequest& req, v1::ContainerStatsResponse* resp) {
  auto c = impl_->FindContainer(req.container_id());
  FillContainerStats(*impl_, *c, resp->mutable_stats());
}

void RuntimeService::ListContainerStats(const v1::ListContainerStatsRequest& req, v1::ListContainerStatsResponse* resp) {
  auto& I = *impl_;
  const auto& f = req.filter();
  std::vector<std::shared_ptr<ContainerRecord>> list;
  {
    std::lock_guard<std::mutex> lock(I.mu);
    for (auto& [id, c] : I.containers) {
      if (c->state == kCreating) continue;
      if (!f.id().empty() && id.compare(0, f.id().size(), f.id()) != 0) continue;
      if (!f.pod_sandbox_id().empty() && c->sandbox_id.compare(0, f.pod_sandbox_id().size(), f.pod_sandbox_id()) != 0) continue;
      bool match = true;
      for (const auto& [k, v] : f.label_selector()) {
        auto it = c->config.labels().find(k);
        if (it == c->config.labels().end() || it->second != v) match = false;
      }
      if (match) list.push_back(c);
    }
  }
  for (auto& c : list) FillContainerStats(I, *c, resp->add_stats());
}

static void FillPodStats(RuntimeService::Impl& I, const SandboxRecord& sb, v1::PodSandboxStats* st) {
  int64_t ts = NowNs();
  auto* a = st->mutable_attributes();
  a->set_id(sb.id);
  *a->mutable_metadata() = sb.config.metadata();
  *a->mutable_labels() = sb.config.labels();
  *a->mutable_annotations() = sb.config.annotations();
  auto* lx = st->mutable_linux();
  std::vector<std::shared_ptr<ContainerRecord>> ctrs;
  {
    std::lock_guard<std::mutex> lock(I.mu);
    for (auto& [id, c] : I.containers) {
      if (c->sandbox_id == sb.id && c->state != kCreating) ctrs.push_back(c);
    }
  }
  Sample total = sb.state == kReady ? ReadCgroup(sb.cgroups_path) : Sample{};
  for (auto& c : ctrs) {
    FillContainerStats(I, *c, lx->add_containers());
    if (c->state != kRunning) continue;
    Sample s = ReadCgroup(c->cgroups_path);
    if (s.cpu) total.cpu = total.cpu.value_or(0) + *s.cpu;
    if (s.mem_usage) total.mem_usage = total.mem_usage.value_or(0) + *s.mem_usage;
    total.inactive_file += s.inactive_file;
    total.rss += s.rss;
    total.pgfault += s.pgfault;
    total.pgmajfault += s.pgmajfault;
  }
  FillCpuMem(total, ts, NanoCores(I, sb.id, ts, total.cpu), lx->mutable_cpu(), lx->mutable_memory());
  if (lx->mutable_process()) {
    lx->mutable_process()->set_timestamp(ts);
    auto pids = ReadU64("/sys/fs/cgroup/pids" + sb.cgroups_path + "/pids.current");
    if (pids) lx->mutable_process()->mutable_process_count()->set_value(*pids);
  }
}

void RuntimeService::PodSandboxStats(const v1::PodSandboxStatsRequest& req, v1::PodSandboxStatsResponse* resp) {
  auto sb = impl_->FindSandbox(req.pod_sandbox_id());
  FillPodStats(*impl_, *sb, resp->mutable_stats());
}

void RuntimeService::ListPodSandboxStats(const v1::ListPodSandboxStatsRequest& req, v1::ListPodSandboxStatsResponse* resp) {
  auto& I = *impl_;
  const auto& f = req.filter();
  std::vector<std::shared_ptr<SandboxRecord>> list;
  {
    std::lock_guard<std::mutex> lock(I.mu);
    for (auto& [id, sb] : I.sandboxes) {
      if (sb->state == kCreating) continue;
      if (!f.id().empty() && id.compare(0, f.id().size(), f.id()) != 0) continue;
      bool match = true;
      for (const auto& [k, v] : f.label_selector()) {
        auto it = sb->config.labels().find(k);
        if (it == sb->config.labels().end() || it->second != v) match = false;
      }
      if (match) list.push_back(sb);
    }
  }
  for (auto& sb : list) FillPodStats(I, *sb, resp->add_stats());
}

}  // namespace berth::lifecycle
