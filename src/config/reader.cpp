#include "config/reader.h"

#include <limits>

#include "common/error.h"

namespace berth::config::detail {

void ThrowType(const std::string& path, const char* expected, const Tree& got) {
  throw Error(Code::kInvalidArgument,
              path + ": expected " + expected + ", got " + TypeName(got));
}

TableReader::TableReader(const Tree& table, std::string path, std::vector<std::string>* unknown)
    : table_(table), path_(std::move(path)), unknown_(unknown) {}

const Tree* TableReader::Get(const char* key) {
  seen_.insert(key);
  if (!table_.is_object()) return nullptr;
  auto it = table_.find(key);
  if (it == table_.end() || it->is_null()) return nullptr;
  return &*it;
}

bool TableReader::Has(const char* key) {
  return table_.is_object() && table_.contains(key);
}

void TableReader::Str(const char* key, std::string& out) {
  const Tree* v = Get(key);
  if (!v) return;
  if (!v->is_string()) ThrowType(Path(key), "string", *v);
  out = v->get<std::string>();
}

void TableReader::Bool(const char* key, bool& out) {
  const Tree* v = Get(key);
  if (!v) return;
  if (!v->is_boolean()) ThrowType(Path(key), "boolean", *v);
  out = v->get<bool>();
}

void TableReader::Int64(const char* key, int64_t& out) {
  const Tree* v = Get(key);
  if (!v) return;
  if (v->is_number_unsigned()) {
    if (v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw Error(Code::kInvalidArgument, Path(key) + ": integer out of range");
    out = static_cast<int64_t>(v->get<uint64_t>());
    return;
  }
  if (!v->is_number_integer()) ThrowType(Path(key), "integer", *v);
  out = v->get<int64_t>();
}

void TableReader::Int(const char* key, int& out) {
  int64_t v = out;
  Int64(key, v);
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
    throw Error(Code::kInvalidArgument,
                Path(key) + ": integer " + std::to_string(v) + " out of range");
  out = static_cast<int>(v);
}

void TableReader::StrList(const char* key, std::vector<std::string>& out) {
  const Tree* v = Get(key);
  if (!v) return;
  if (!v->is_array()) ThrowType(Path(key), "array of strings", *v);
  std::vector<std::string> list;
  for (size_t i = 0; i < v->size(); ++i) {
    const Tree& e = (*v)[i];
    if (!e.is_string())
      ThrowType(Path(key) + "[" + std::to_string(i) + "]", "string", e);
    list.push_back(e.get<std::string>());
  }
  out = std::move(list);
}

void TableReader::StrMap(const char* key, std::map<std::string, std::string>& out) {
  const Tree* v = Get(key);
  if (!v) return;
  if (!v->is_object()) ThrowType(Path(key), "table", *v);
  std::map<std::string, std::string> m;
  for (const auto& [k, e] : v->items()) {
    if (!e.is_string()) ThrowType(JoinKey(Path(key), k), "string", e);
    m[k] = e.get<std::string>();
  }
  out = std::move(m);
}

void TableReader::Raw(const char* key, Tree& out, bool must_be_table) {
  const Tree* v = Get(key);
  if (!v) return;
  if (must_be_table && !v->is_object()) ThrowType(Path(key), "table", *v);
  out = *v;
}

const Tree* TableReader::Table(const char* key) {
  const Tree* v = Get(key);
  if (!v) return nullptr;
  if (!v->is_object()) ThrowType(Path(key), "table", *v);
  return v;
}

void TableReader::Finish() {
  if (!unknown_ || !table_.is_object()) return;
  for (const auto& [k, v] : table_.items()) {
    if (!seen_.count(k)) unknown_->push_back(Path(k));
  }
}

}  // namespace berth::config::detail
