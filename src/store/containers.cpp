#include "store/containers.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "store/db.h"

namespace berth::store {

namespace {

const std::vector<std::string> kMigrations = {
    "CREATE TABLE sandboxes ("
    " id TEXT PRIMARY KEY, name TEXT NOT NULL, namespace TEXT NOT NULL, uid TEXT NOT NULL,"
    " attempt INTEGER NOT NULL, state TEXT NOT NULL, pid INTEGER NOT NULL,"
    " monitor_pid INTEGER NOT NULL, created_at INTEGER NOT NULL, runtime_handler TEXT NOT NULL,"
    " netns_path TEXT NOT NULL, ip TEXT NOT NULL, log_directory TEXT NOT NULL,"
    " state_dir TEXT NOT NULL, labels TEXT NOT NULL, annotations TEXT NOT NULL,"
    " config BLOB NOT NULL,"
    " UNIQUE (name, namespace, uid, attempt));"
    "CREATE TABLE containers ("
    " id TEXT PRIMARY KEY, sandbox_id TEXT NOT NULL REFERENCES sandboxes(id),"
    " name TEXT NOT NULL, attempt INTEGER NOT NULL, state TEXT NOT NULL, pid INTEGER NOT NULL,"
    " monitor_pid INTEGER NOT NULL, created_at INTEGER NOT NULL, started_at INTEGER NOT NULL,"
    " finished_at INTEGER NOT NULL, exit_code INTEGER NOT NULL, reason TEXT NOT NULL,"
    " message TEXT NOT NULL, labels TEXT NOT NULL, annotations TEXT NOT NULL,"
    " config BLOB NOT NULL, runtime_handler TEXT NOT NULL, log_path TEXT NOT NULL,"
    " image_ref TEXT NOT NULL, image_id TEXT NOT NULL, mounts TEXT NOT NULL, bundle TEXT NOT NULL,"
    " UNIQUE (sandbox_id, name, attempt));"
    "CREATE INDEX containers_by_sandbox ON containers(sandbox_id);",
};

std::string MapToJson(const std::map<std::string, std::string>& m) { return nlohmann::json(m).dump(); }

std::map<std::string, std::string> JsonToMap(const std::string& s) {
  std::map<std::string, std::string> out;
  auto j = nlohmann::json::parse(s, nullptr, false);
  if (!j.is_object()) return out;
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.value().is_string()) out[it.key()] = it.value().get<std::string>();
  return out;
}

const char* kSandboxCols =
    "id, name, namespace, uid, attempt, state, pid, monitor_pid, created_at, runtime_handler,"
    " netns_path, ip, log_directory, state_dir, labels, annotations, config";

void BindSandbox(Statement& s, const SandboxRecord& r) {
  s.Bind(1, r.id).Bind(2, r.name).Bind(3, r.namespace_).Bind(4, r.uid)
      .Bind(5, static_cast<int64_t>(r.attempt)).Bind(6, r.state).Bind(7, static_cast<int64_t>(r.pid))
      .Bind(8, static_cast<int64_t>(r.monitor_pid)).Bind(9, r.created_at).Bind(10, r.runtime_handler)
      .Bind(11, r.netns_path).Bind(12, r.ip).Bind(13, r.log_directory).Bind(14, r.state_dir)
      .Bind(15, MapToJson(r.labels)).Bind(16, MapToJson(r.annotations)).BindBlob(17, r.config);
}

SandboxRecord ReadSandbox(Statement& s) {
  SandboxRecord r;
  r.id = s.Text(0);
  r.name = s.Text(1);
  r.namespace_ = s.Text(2);
  r.uid = s.Text(3);
  r.attempt = static_cast<uint32_t>(s.Int(4));
  r.state = s.Text(5);
  r.pid = static_cast<int>(s.Int(6));
  r.monitor_pid = static_cast<int>(s.Int(7));
  r.created_at = s.Int(8);
  r.runtime_handler = s.Text(9);
  r.netns_path = s.Text(10);
  r.ip = s.Text(11);
  r.log_directory = s.Text(12);
  r.state_dir = s.Text(13);
  r.labels = JsonToMap(s.Text(14));
  r.annotations = JsonToMap(s.Text(15));
  r.config = s.Text(16);
  return r;
}

const char* kContainerCols =
    "id, sandbox_id, name, attempt, state, pid, monitor_pid, created_at, started_at, finished_at,"
    " exit_code, reason, message, labels, annotations, config, runtime_handler, log_path,"
    " image_ref, image_id, mounts, bundle";

void BindContainer(Statement& s, const ContainerRecord& r) {
  s.Bind(1, r.id).Bind(2, r.sandbox_id).Bind(3, r.name).Bind(4, static_cast<int64_t>(r.attempt))
      .Bind(5, r.state).Bind(6, static_cast<int64_t>(r.pid)).Bind(7, static_cast<int64_t>(r.monitor_pid))
      .Bind(8, r.created_at).Bind(9, r.started_at).Bind(10, r.finished_at)
      .Bind(11, static_cast<int64_t>(r.exit_code)).Bind(12, r.reason).Bind(13, r.message)
      .Bind(14, MapToJson(r.labels)).Bind(15, MapToJson(r.annotations)).BindBlob(16, r.config)
      .Bind(17, r.runtime_handler).Bind(18, r.log_path).Bind(19, r.image_ref).Bind(20, r.image_id)
      .Bind(21, r.mounts_json).Bind(22, r.bundle);
}

ContainerRecord ReadContainer(Statement& s) {
  ContainerRecord r;
  r.id = s.Text(0);
  r.sandbox_id = s.Text(1);
  r.name = s.Text(2);
  r.attempt = static_cast<uint32_t>(s.Int(3));
  r.state = s.Text(4);
  r.pid = static_cast<int>(s.Int(5));
  r.monitor_pid = static_cast<int>(s.Int(6));
  r.created_at = s.Int(7);
  r.started_at = s.Int(8);
  r.finished_at = s.Int(9);
  r.exit_code = static_cast<int>(s.Int(10));
  r.reason = s.Text(11);
  r.message = s.Text(12);
  r.labels = JsonToMap(s.Text(13));
  r.annotations = JsonToMap(s.Text(14));
  r.config = s.Text(15);
  r.runtime_handler = s.Text(16);
  r.log_path = s.Text(17);
  r.image_ref = s.Text(18);
  r.image_id = s.Text(19);
  r.mounts_json = s.Text(20);
  r.bundle = s.Text(21);
  return r;
}

void CheckId(const std::string& id, const char* what) {
  if (id.empty()) throw Error(Code::kInvalidArgument, std::string(what) + " id is empty");
}

std::string Placeholders(int n) {
  std::string s;
  for (int i = 1; i <= n; ++i) s += (i > 1 ? ", ?" : "?") + std::to_string(i);
  return s;
}

// Escapes LIKE wildcards so that ids match literally.
std::string LikePrefix(const std::string& p) {
  std::string out;
  for (char c : p) {
    if (c == '%' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  return out + "%";
}

}  // namespace

ContainerStore::ContainerStore(std::shared_ptr<Database> db) : db_(std::move(db)) {
  db_->Migrate("containers", kMigrations);
}

void ContainerStore::CreateSandbox(const SandboxRecord& r) {
  CheckId(r.id, "sandbox");
  Transaction tx(db_);
  {
    auto s = db_->Prepare("SELECT id FROM sandboxes WHERE id = ?1");
    s.Bind(1, r.id);
    if (s.Step()) throw Error(Code::kAlreadyExists, "sandbox " + r.id + " already exists");
  }
  {
    auto s = db_->Prepare("SELECT id FROM sandboxes WHERE name = ?1 AND namespace = ?2 AND uid = ?3 AND attempt = ?4");
    s.Bind(1, r.name).Bind(2, r.namespace_).Bind(3, r.uid).Bind(4, static_cast<int64_t>(r.attempt));
    if (s.Step())
      throw Error(Code::kAlreadyExists, "sandbox name \"" + r.name + "_" + r.namespace_ + "_" + r.uid + "_" +
                                            std::to_string(r.attempt) + "\" is reserved for " + s.Text(0));
  }
  auto s = db_->Prepare(std::string("INSERT INTO sandboxes (") + kSandboxCols + ") VALUES (" + Placeholders(17) + ")");
  BindSandbox(s, r);
  s.Run();
  tx.Commit();
}

void ContainerStore::UpdateSandbox(const SandboxRecord& r) {
  Transaction tx(db_);
  auto s = db_->Prepare(
      "UPDATE sandboxes SET name = ?2, namespace = ?3, uid = ?4, attempt = ?5, state = ?6, pid = ?7,"
      " monitor_pid = ?8, created_at = ?9, runtime_handler = ?10, netns_path = ?11, ip = ?12,"
      " log_directory = ?13, state_dir = ?14, labels = ?15, annotations = ?16, config = ?17"
      " WHERE id = ?1");
  BindSandbox(s, r);
  if (s.Run() == 0) throw Error(Code::kNotFound, "sandbox " + r.id + " not found");
  tx.Commit();
}

std::optional<SandboxRecord> ContainerStore::GetSandbox(const std::string& id) {
  Transaction tx(db_);
  auto s = db_->Prepare(std::string("SELECT ") + kSandboxCols + " FROM sandboxes WHERE id = ?1");
  s.Bind(1, id);
  if (!s.Step()) return std::nullopt;
  return ReadSandbox(s);
}

std::vector<SandboxRecord> ContainerStore::ListSandboxes() {
  Transaction tx(db_);
  auto s = db_->Prepare(std::string("SELECT ") + kSandboxCols + " FROM sandboxes ORDER BY created_at, id");
  std::vector<SandboxRecord> out;
  while (s.Step()) out.push_back(ReadSandbox(s));
  return out;
}

void ContainerStore::DeleteSandbox(const std::string& id) {
  Transaction tx(db_);
  {
    auto s = db_->Prepare("SELECT COUNT(*) FROM containers WHERE sandbox_id = ?1");
    s.Bind(1, id);
    s.Step();
    if (s.Int(0) > 0)
      throw Error(Code::kFailedPrecondition,
                  "sandbox " + id + " still has " + std::to_string(s.Int(0)) + " container(s)");
  }
  auto s = db_->Prepare("DELETE FROM sandboxes WHERE id = ?1");
  s.Bind(1, id);
  if (s.Run() == 0) throw Error(Code::kNotFound, "sandbox " + id + " not found");
  tx.Commit();
}

void ContainerStore::SetSandboxState(const std::string& id, const std::string& state) {
  Transaction tx(db_);
  auto s = db_->Prepare("UPDATE sandboxes SET state = ?2 WHERE id = ?1");
  s.Bind(1, id).Bind(2, state);
  if (s.Run() == 0) throw Error(Code::kNotFound, "sandbox " + id + " not found");
  tx.Commit();
}

void ContainerStore::CreateContainer(const ContainerRecord& r) {
  CheckId(r.id, "container");
  Transaction tx(db_);
  {
    auto s = db_->Prepare("SELECT id FROM sandboxes WHERE id = ?1");
    s.Bind(1, r.sandbox_id);
    if (!s.Step()) throw Error(Code::kNotFound, "sandbox " + r.sandbox_id + " of container " + r.id + " not found");
  }
  {
    auto s = db_->Prepare("SELECT id FROM containers WHERE id = ?1");
    s.Bind(1, r.id);
    if (s.Step()) throw Error(Code::kAlreadyExists, "container " + r.id + " already exists");
  }
  {
    auto s = db_->Prepare("SELECT id FROM containers WHERE sandbox_id = ?1 AND name = ?2 AND attempt = ?3");
    s.Bind(1, r.sandbox_id).Bind(2, r.name).Bind(3, static_cast<int64_t>(r.attempt));
    if (s.Step())
      throw Error(Code::kAlreadyExists, "container name \"" + r.name + "\" attempt " + std::to_string(r.attempt) +
                                            " in sandbox " + r.sandbox_id + " is reserved for " + s.Text(0));
  }
  auto s = db_->Prepare(std::string("INSERT INTO containers (") + kContainerCols + ") VALUES (" + Placeholders(22) + ")");
  BindContainer(s, r);
  s.Run();
  tx.Commit();
}

void ContainerStore::UpdateContainer(const ContainerRecord& r) {
  Transaction tx(db_);
  auto s = db_->Prepare(
      "UPDATE containers SET sandbox_id = ?2, name = ?3, attempt = ?4, state = ?5, pid = ?6,"
      " monitor_pid = ?7, created_at = ?8, started_at = ?9, finished_at = ?10, exit_code = ?11,"
      " reason = ?12, message = ?13, labels = ?14, annotations = ?15, config = ?16,"
      " runtime_handler = ?17, log_path = ?18, image_ref = ?19, image_id = ?20, mounts = ?21,"
      " bundle = ?22 WHERE id = ?1");
  BindContainer(s, r);
  if (s.Run() == 0) throw Error(Code::kNotFound, "container " + r.id + " not found");
  tx.Commit();
}

std::optional<ContainerRecord> ContainerStore::GetContainer(const std::string& id) {
  Transaction tx(db_);
  auto s = db_->Prepare(std::string("SELECT ") + kContainerCols + " FROM containers WHERE id = ?1");
  s.Bind(1, id);
  if (!s.Step()) return std::nullopt;
  return ReadContainer(s);
}

std::vector<ContainerRecord> ContainerStore::ListContainers(const std::string& sandbox_id) {
  Transaction tx(db_);
  std::string sql = std::string("SELECT ") + kContainerCols + " FROM containers";
  if (!sandbox_id.empty()) sql += " WHERE sandbox_id = ?1";
  sql += " ORDER BY created_at, id";
  auto s = db_->Prepare(sql);
  if (!sandbox_id.empty()) s.Bind(1, sandbox_id);
  std::vector<ContainerRecord> out;
  while (s.Step()) out.push_back(ReadContainer(s));
  return out;
}

void ContainerStore::DeleteContainer(const std::string& id) {
  Transaction tx(db_);
  auto s = db_->Prepare("DELETE FROM containers WHERE id = ?1");
  s.Bind(1, id);
  if (s.Run() == 0) throw Error(Code::kNotFound, "container " + id + " not found");
  tx.Commit();
}

void ContainerStore::MarkContainerStarted(const std::string& id, int pid, int64_t started_at) {
  Transaction tx(db_);
  auto s = db_->Prepare("SELECT state FROM containers WHERE id = ?1");
  s.Bind(1, id);
  if (!s.Step()) throw Error(Code::kNotFound, "container " + id + " not found");
  std::string state = s.Text(0);
  if (state != kContainerCreated)
    throw Error(Code::kFailedPrecondition, "container " + id + " is " + state + ", not created");
  auto u = db_->Prepare("UPDATE containers SET state = ?2, pid = ?3, started_at = ?4 WHERE id = ?1");
  u.Bind(1, id).Bind(2, kContainerRunning).Bind(3, static_cast<int64_t>(pid)).Bind(4, started_at);
  u.Run();
  tx.Commit();
}

void ContainerStore::MarkContainerExited(const std::string& id, int exit_code, int64_t finished_at,
                                         const std::string& reason, const std::string& message) {
  Transaction tx(db_);
  auto u = db_->Prepare(
      "UPDATE containers SET state = ?2, exit_code = ?3, finished_at = ?4, reason = ?5, message = ?6"
      " WHERE id = ?1");
  u.Bind(1, id).Bind(2, kContainerExited).Bind(3, static_cast<int64_t>(exit_code)).Bind(4, finished_at)
      .Bind(5, reason).Bind(6, message);
  if (u.Run() == 0) throw Error(Code::kNotFound, "container " + id + " not found");
  tx.Commit();
}

namespace {
std::string Resolve(Database& db, const char* table, const char* what, const std::string& prefix) {
  if (prefix.empty()) throw Error(Code::kInvalidArgument, std::string(what) + " id is empty");
  Transaction tx(db);
  auto s = db.Prepare(std::string("SELECT id FROM ") + table + " WHERE id LIKE ?1 ESCAPE '\\' LIMIT 2");
  s.Bind(1, LikePrefix(prefix));
  if (!s.Step()) throw Error(Code::kNotFound, std::string(what) + " " + prefix + " not found");
  std::string id = s.Text(0);
  if (id == prefix) return id;
  if (s.Step()) {
    // An exact match wins over longer ids with the same prefix.
    auto e = db.Prepare(std::string("SELECT id FROM ") + table + " WHERE id = ?1");
    e.Bind(1, prefix);
    if (e.Step()) return prefix;
    throw Error(Code::kInvalidArgument, std::string(what) + " id prefix " + prefix + " is ambiguous");
  }
  return id;
}
}  // namespace

std::string ContainerStore::ResolveSandboxId(const std::string& prefix) {
  return Resolve(*db_, "sandboxes", "sandbox", prefix);
}
std::string ContainerStore::ResolveContainerId(const std::string& prefix) {
  return Resolve(*db_, "containers", "container", prefix);
}

}  // namespace berth::store
