// Private to berth_config: typed reads from a generic tree with key-path error messages.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "config/toml_io.h"

namespace berth::config::detail {

// Reads the keys of one table. Each accessor leaves `out` untouched when the key is absent and
// throws Error(kInvalidArgument, "<path>.<key>: expected <type>, got <type>") on a wrong type.
// Finish() appends "<path>.<key>" of every key never asked for to *unknown.
class TableReader {
 public:
  TableReader(const Tree& table, std::string path, std::vector<std::string>* unknown);

  bool Has(const char* key);
  void Str(const char* key, std::string& out);
  void Bool(const char* key, bool& out);
  void Int(const char* key, int& out);
  void Int64(const char* key, int64_t& out);
  void StrList(const char* key, std::vector<std::string>& out);
  void StrMap(const char* key, std::map<std::string, std::string>& out);
  // Any value, verbatim; with must_be_table, a non-table is a type error.
  void Raw(const char* key, Tree& out, bool must_be_table);
  // The sub-table, or nullptr when absent; throws when present but not a table.
  const Tree* Table(const char* key);
  std::string Path(const std::string& key) const { return JoinKey(path_, key); }
  const std::string& path() const { return path_; }
  void Finish();

 private:
  const Tree* Get(const char* key);
  const Tree& table_;
  std::string path_;
  std::vector<std::string>* unknown_;
  std::set<std::string> seen_;
};

[[noreturn]] void ThrowType(const std::string& path, const char* expected, const Tree& got);

}  // namespace berth::config::detail
