#include "store/db.h"

#include <sqlite3.h>

#include <atomic>

#include "common/error.h"
#include "common/fs.h"

namespace berth::store {
namespace {

Code CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Code::kUnavailable;
    case SQLITE_CONSTRAINT:
      return Code::kAlreadyExists;
    case SQLITE_NOTFOUND:
      return Code::kNotFound;
    case SQLITE_FULL:
      return Code::kResourceExhausted;
    default:
      return Code::kInternal;
  }
}

[[noreturn]] void Fail(sqlite3* db, int rc, const std::string& what) {
  std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  throw Error(CodeFor(rc), "database: " + what + ": " + msg);
}

std::string Short(const std::string& sql) {
  return sql.size() > 120 ? sql.substr(0, 120) + "..." : sql;
}

}  // namespace

Statement::Statement(Database& db, const std::string& sql) : db_(&db), sql_(sql) {
  int rc =
      sqlite3_prepare_v2(db.handle(), sql.c_str(), static_cast<int>(sql.size()), &stmt_, nullptr);
  if (rc != SQLITE_OK) Fail(db.handle(), rc, "prepare \"" + Short(sql) + "\"");
}

Statement::Statement(Statement&& o) noexcept : db_(o.db_), stmt_(o.stmt_), sql_(std::move(o.sql_)) {
  o.stmt_ = nullptr;
}

Statement::~Statement() {
  if (stmt_) sqlite3_finalize(stmt_);
}

Statement& Statement::Bind(int i, int64_t v) {
  int rc = sqlite3_bind_int64(stmt_, i, v);
  if (rc != SQLITE_OK)
    Fail(db_->handle(), rc, "bind parameter " + std::to_string(i) + " of \"" + Short(sql_) + "\"");
  return *this;
}

Statement& Statement::Bind(int i, const std::string& v) {
  int rc = sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK)
    Fail(db_->handle(), rc, "bind parameter " + std::to_string(i) + " of \"" + Short(sql_) + "\"");
  return *this;
}

Statement& Statement::BindBlob(int i, const std::string& v) {
  int rc = sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK)
    Fail(db_->handle(), rc, "bind parameter " + std::to_string(i) + " of \"" + Short(sql_) + "\"");
  return *this;
}

Statement& Statement::BindNull(int i) {
  int rc = sqlite3_bind_null(stmt_, i);
  if (rc != SQLITE_OK)
    Fail(db_->handle(), rc, "bind parameter " + std::to_string(i) + " of \"" + Short(sql_) + "\"");
  return *this;
}

bool Statement::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  Fail(db_->handle(), rc, "run \"" + Short(sql_) + "\"");
}

int Statement::Run() {
  while (Step()) {
  }
  return sqlite3_changes(db_->handle());
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

bool Statement::IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
int64_t Statement::Int(int col) const { return sqlite3_column_int64(stmt_, col); }
std::string Statement::Text(int col) const {
  const void* p = sqlite3_column_blob(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
}

void Database::ReleaseMemory() {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  sqlite3_db_release_memory(db_);
}

std::shared_ptr<Database> Database::Open(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) fs::MkdirAll(path.substr(0, slash), 0700);
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW,
      nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    throw Error(CodeFor(rc), "open database " + path + ": " + msg);
  }
  std::shared_ptr<Database> d(new Database(path, db));
  sqlite3_busy_timeout(db, 10000);
  sqlite3_extended_result_codes(db, 1);
  d->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;");
  d->Exec(
      "CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT "
      "NULL)");
  return d;
}

Database::Database(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}

Database::~Database() { sqlite3_close_v2(db_); }

void Database::Exec(const std::string& sql) {
  std::lock_guard<std::recursive_mutex> l(mu_);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    throw Error(CodeFor(rc), "database " + path_ + ": \"" + Short(sql) + "\": " + msg);
  }
}

int64_t Database::LastInsertRowId() const { return sqlite3_last_insert_rowid(db_); }

int Database::SchemaVersion(const std::string& component) {
  Transaction tx(*this);
  auto st = Prepare("SELECT version FROM schema_versions WHERE component = ?1");
  st.Bind(1, component);
  return st.Step() ? static_cast<int>(st.Int(0)) : 0;
}

int Database::Migrate(const std::string& component, const std::vector<std::string>& steps) {
  std::lock_guard<std::recursive_mutex> l(mu_);
  int version = SchemaVersion(component);
  if (version > static_cast<int>(steps.size()))
    throw Error(Code::kFailedPrecondition, "database " + path_ + ": schema of " + component +
                                               " is at version " + std::to_string(version) +
                                               ", newer than this program knows (" +
                                               std::to_string(steps.size()) + ")");
  for (size_t i = static_cast<size_t>(version); i < steps.size(); ++i) {
    Transaction tx(*this);
    try {
      Exec(steps[i]);
    } catch (const Error& e) {
      throw Error(e.code(), "migrate " + component + " to version " + std::to_string(i + 1) + ": " +
                                e.what());
    }
    auto st = Prepare(
        "INSERT INTO schema_versions(component, version) VALUES(?1, ?2) "
        "ON CONFLICT(component) DO UPDATE SET version = excluded.version");
    st.Bind(1, component).Bind(2, static_cast<int64_t>(i + 1)).Run();
    tx.Commit();
  }
  return static_cast<int>(steps.size());
}

namespace {
std::atomic<uint64_t> savepoint_counter{0};
}

Transaction::Transaction(Database& db) : db_(db), lock_(db.mutex()) {
  if (sqlite3_get_autocommit(db.handle())) {
    db_.Exec("BEGIN IMMEDIATE");
  } else {
    savepoint_ = "sp" + std::to_string(++savepoint_counter);
    db_.Exec("SAVEPOINT " + savepoint_);
  }
}

Transaction::~Transaction() {
  if (done_) return;
  try {
    if (savepoint_.empty()) {
      db_.Exec("ROLLBACK");
    } else {
      db_.Exec("ROLLBACK TO " + savepoint_ + "; RELEASE " + savepoint_);
    }
  } catch (...) {
  }
}

void Transaction::Commit() {
  if (done_)
    throw Error(Code::kFailedPrecondition,
                "database " + db_.path() + ": transaction already finished");
  db_.Exec(savepoint_.empty() ? std::string("COMMIT") : "RELEASE " + savepoint_);
  done_ = true;
}

}  // namespace berth::store
