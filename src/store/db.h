// SQLite metadata database: one connection per file, WAL journal, busy timeout, foreign keys,
// prepared statements, RAII transactions and per-component schema migrations.
//
// Every access goes through a Transaction, which holds the database's lock for its lifetime (so
// one Database may be shared by threads) and rolls back unless Commit() was called.
//
// Adding tables for another component (e.g. sandboxes/containers):
//   db->Migrate("containers", {"CREATE TABLE ...", "ALTER TABLE ... ADD COLUMN ..."});
// step i (0-based) brings the component's schema from version i to i+1; each step runs once, in
// its own transaction, and the version is recorded in the table schema_versions.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace berth::store {

class Database;

// A prepared statement, reset and cleared on destruction. Parameters are 1-based, columns 0-based.
class Statement {
 public:
  Statement(Database& db, const std::string& sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;

  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, const std::string& value);
  Statement& Bind(int index, const char* value) { return Bind(index, std::string(value)); }
  Statement& BindBlob(int index, const std::string& value);
  Statement& BindNull(int index);
  // Runs one step: true when a row is available, false when done. Errors throw Error naming the
  // SQL.
  bool Step();
  // Runs to completion (for INSERT/UPDATE/DELETE); returns sqlite3_changes().
  int Run();
  void Reset();

  bool IsNull(int col) const;
  int64_t Int(int col) const;
  std::string Text(int col) const;

 private:
  Database* db_;
  sqlite3_stmt* stmt_ = nullptr;
  std::string sql_;
};

class Database {
 public:
  // Opens (creating) the file and its parent directory. Throws Error naming the path.
  static std::shared_ptr<Database> Open(const std::string& path);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  const std::string& path() const { return path_; }
  // Runs one or more ';'-separated statements without results.
  void Exec(const std::string& sql);
  // Gives the connection's page cache back (sqlite3_db_release_memory), e.g. after many rows
  // were removed; the cache refills on demand.
  void ReleaseMemory();
  Statement Prepare(const std::string& sql) { return Statement(*this, sql); }
  int64_t LastInsertRowId() const;

  // Applies the steps of `component` not yet applied (see the top of this file).
  // Returns the component's version afterwards. A database newer than the steps known ->
  // Error(kFailedPrecondition).
  int Migrate(const std::string& component, const std::vector<std::string>& steps);
  int SchemaVersion(const std::string& component);

  std::recursive_mutex& mutex() { return mu_; }
  sqlite3* handle() { return db_; }

 private:
  Database(std::string path, sqlite3* db);
  std::string path_;
  sqlite3* db_;
  std::recursive_mutex mu_;
};

// BEGIN IMMEDIATE on construction (holding the database lock), ROLLBACK on destruction unless
// Commit() succeeded. Nested transactions become savepoints.
class Transaction {
 public:
  explicit Transaction(Database& db);
  explicit Transaction(const std::shared_ptr<Database>& db) : Transaction(*db) {}
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void Commit();
  Database& db() { return db_; }

 private:
  Database& db_;
  std::unique_lock<std::recursive_mutex> lock_;
  std::string savepoint_;  // empty for the outermost transaction
  bool done_ = false;
};

}  // namespace berth::store
