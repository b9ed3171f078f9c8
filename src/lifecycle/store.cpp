// Sandbox and container records in SQLite: one row per object, metadata as JSON, the CRI configs
// as serialized protobuf.
#include "lifecycle/internal.h"  // first: its enum Signal names collide with <signal.h> macros

#include "common/error.h"
#include "store/db.h"

#include <spdlog/spdlog.h>

namespace berth::lifecycle {

namespace {

const std::vector<std::string> kMigrations = {
    "CREATE TABLE lifecycle_sandboxes (id TEXT PRIMARY KEY, meta TEXT NOT NULL, config BLOB NOT NULL);"
    "CREATE TABLE lifecycle_containers (id TEXT PRIMARY KEY, sandbox_id TEXT NOT NULL,"
    " meta TEXT NOT NULL, config BLOB NOT NULL);",
};

std::string Hex(const std::string& bytes) {
  static const char* d = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

std::string Unhex(const std::string& hex) {
  auto v = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return 0;
  };
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(v(hex[i]) << 4 | v(hex[i + 1])));
  return out;
}

std::vector<std::string> Strings(const nlohmann::json& m, const char* key) {
  std::vector<std::string> out;
  auto it = m.find(key);
  if (it == m.end() || !it->is_array()) return out;
  for (const auto& v : *it)
    if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

}  // namespace

RecordStore::RecordStore(std::shared_ptr<store::Database> db) : db_(std::move(db)) {
  db_->Migrate("lifecycle", kMigrations);
}

void RecordStore::Save(const SandboxRecord& s) {
  nlohmann::json m = {{"name_key", s.name_key}, {"handler", s.handler}, {"state", s.state},
                      {"created_at", s.created_at}, {"pid", s.pid}, {"monitor_pid", s.monitor_pid},
                      {"netns_path", s.netns_path}, {"cgroups_path", s.cgroups_path}, {"dir", s.dir},
                      {"image", s.image}, {"shm_mounted", s.shm_mounted},
                      {"requested_handler", s.requested_handler},
                      {"runtime_gone", s.runtime_gone}, {"direct", s.direct},
                      {"pid_start", s.pid_start}, {"steps", s.steps}};
  store::Transaction tx(db_);
  db_->Prepare("INSERT OR REPLACE INTO lifecycle_sandboxes (id, meta, config) VALUES (?, ?, ?)")
      .Bind(1, s.id)
      .Bind(2, m.dump())
      .BindBlob(3, s.config.SerializeAsString())
      .Run();
  tx.Commit();
}

void RecordStore::Save(const ContainerRecord& c) {
  nlohmann::json mounts = nlohmann::json::array();
  for (const auto& mt : c.mounts) mounts.push_back(Hex(mt.SerializeAsString()));
  nlohmann::json m = {{"name_key", c.name_key}, {"state", c.state}, {"image_id", c.image_id},
                      {"image_ref", c.image_ref}, {"created_at", c.created_at},
                      {"started_at", c.started_at}, {"finished_at", c.finished_at},
                      {"exit_code", c.exit_code}, {"reason", c.reason}, {"message", c.message},
                      {"pid", c.pid}, {"monitor_pid", c.monitor_pid}, {"dir", c.dir},
                      {"log_path", c.log_path}, {"cgroups_path", c.cgroups_path},
                      {"stop_signal", c.stop_signal}, {"rootfs_mounted", c.rootfs_mounted},
                      {"snapshot_prepared", c.snapshot_prepared}, {"runtime_gone", c.runtime_gone}, {"mounts", mounts},
                      {"resources", Hex(c.resources.SerializeAsString())}, {"uid", c.uid},
                      {"gid", c.gid}, {"groups", c.groups}, {"pid_start", c.pid_start}, {"steps", c.steps}};
  store::Transaction tx(db_);
  db_->Prepare("INSERT OR REPLACE INTO lifecycle_containers (id, sandbox_id, meta, config) VALUES (?, ?, ?, ?)")
      .Bind(1, c.id)
      .Bind(2, c.sandbox_id)
      .Bind(3, m.dump())
      .BindBlob(4, c.config.SerializeAsString())
      .Run();
  tx.Commit();
}

void RecordStore::DeleteSandbox(const std::string& id) {
  store::Transaction tx(db_);
  db_->Prepare("DELETE FROM lifecycle_sandboxes WHERE id = ?").Bind(1, id).Run();
  tx.Commit();
}

void RecordStore::DeleteContainer(const std::string& id) {
  store::Transaction tx(db_);
  db_->Prepare("DELETE FROM lifecycle_containers WHERE id = ?").Bind(1, id).Run();
  tx.Commit();
}

std::vector<SandboxRecord> RecordStore::LoadSandboxes() {
  std::vector<SandboxRecord> out;
  store::Transaction tx(db_);
  auto st = db_->Prepare("SELECT id, meta, config FROM lifecycle_sandboxes");
  while (st.Step()) {
    SandboxRecord s;
    s.id = st.Text(0);
    auto m = nlohmann::json::parse(st.Text(1), nullptr, false);
    if (m.is_discarded() || !m.is_object() || !s.config.ParseFromString(st.Text(2))) {
      SetAside("sandbox", s.id, "its record cannot be parsed");
      continue;
    }
    try {
    s.name_key = m.value("name_key", "");
    s.handler = m.value("handler", "");
    s.requested_handler = m.value("requested_handler", s.handler);
    s.state = m.value("state", kCreating);
    s.created_at = m.value("created_at", int64_t{0});
    s.pid = m.value("pid", 0);
    s.monitor_pid = m.value("monitor_pid", 0);
    s.netns_path = m.value("netns_path", "");
    s.cgroups_path = m.value("cgroups_path", "");
    s.dir = m.value("dir", "");
    s.image = m.value("image", "");
    s.shm_mounted = m.value("shm_mounted", false);
    s.runtime_gone = m.value("runtime_gone", false);
    s.direct = m.value("direct", false);
    s.pid_start = m.value("pid_start", uint64_t{0});
    s.steps = Strings(m, "steps");
    } catch (const std::exception& e) {
      SetAside("sandbox", s.id, e.what());
      continue;
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<ContainerRecord> RecordStore::LoadContainers() {
  std::vector<ContainerRecord> out;
  store::Transaction tx(db_);
  auto st = db_->Prepare("SELECT id, sandbox_id, meta, config FROM lifecycle_containers");
  while (st.Step()) {
    ContainerRecord c;
    c.id = st.Text(0);
    c.sandbox_id = st.Text(1);
    auto m = nlohmann::json::parse(st.Text(2), nullptr, false);
    if (m.is_discarded() || !m.is_object() || !c.config.ParseFromString(st.Text(3))) {
      SetAside("container", c.id, "its record cannot be parsed");
      continue;
    }
    try {
    c.name_key = m.value("name_key", "");
    c.state = m.value("state", kCreating);
    c.image_id = m.value("image_id", "");
    c.image_ref = m.value("image_ref", "");
    c.created_at = m.value("created_at", int64_t{0});
    c.started_at = m.value("started_at", int64_t{0});
    c.finished_at = m.value("finished_at", int64_t{0});
    c.exit_code = m.value("exit_code", 0);
    c.reason = m.value("reason", "");
    c.message = m.value("message", "");
    c.pid = m.value("pid", 0);
    c.monitor_pid = m.value("monitor_pid", 0);
    c.dir = m.value("dir", "");
    c.log_path = m.value("log_path", "");
    c.cgroups_path = m.value("cgroups_path", "");
    c.stop_signal = m.value("stop_signal", 15);
    c.rootfs_mounted = m.value("rootfs_mounted", false);
    c.snapshot_prepared = m.value("snapshot_prepared", false);
    c.runtime_gone = m.value("runtime_gone", false);
    if (m.contains("mounts") && m["mounts"].is_array()) {
      for (const auto& h : m["mounts"]) {
        v1::Mount mt;
        if (h.is_string() && mt.ParseFromString(Unhex(h.get<std::string>()))) c.mounts.push_back(mt);
      }
    }
    c.resources.ParseFromString(Unhex(m.value("resources", "")));
    c.uid = m.value("uid", int64_t{0});
    c.gid = m.value("gid", int64_t{0});
    c.pid_start = m.value("pid_start", uint64_t{0});
    c.steps = Strings(m, "steps");
    if (m.contains("groups") && m["groups"].is_array()) c.groups = m["groups"].get<std::vector<int64_t>>();
    } catch (const std::exception& e) {
      SetAside("container", c.id, e.what());
      continue;
    }
    out.push_back(std::move(c));
  }
  return out;
}

void RecordStore::SetAside(const std::string& kind, const std::string& id, const std::string& why) {
  // The row stays in the database, untouched: it is named here and in the recovery report, and
  // the object is not served.
  spdlog::error("lifecycle store: {} record {} set aside: {}", kind, id, why);
  set_aside_.push_back(kind + " " + id + ": " + why);
}

}  // namespace berth::lifecycle
