#include "config/toml_io.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "common/error.h"

namespace berth::config::detail {
namespace {

bool SourceLess(const toml::node& a, const toml::node& b) {
  const auto& pa = a.source().begin;
  const auto& pb = b.source().begin;
  if (pa.line != pb.line) return pa.line < pb.line;
  return pa.column < pb.column;
}

// Deeper nesting than any real config; keeps recursion (here and in every consumer) bounded.
constexpr int kMaxDepth = 128;

struct TooDeep {
  toml::source_position where;
};

Tree Convert(const toml::node& node, int depth);

Tree ConvertTable(const toml::table& table, int depth) {
  if (depth > kMaxDepth) throw TooDeep{table.source().begin};
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  entries.reserve(table.size());
  for (const auto& [k, v] : table) entries.emplace_back(&k, &v);
  std::stable_sort(entries.begin(), entries.end(),
                   [](const auto& a, const auto& b) { return SourceLess(*a.second, *b.second); });
  Tree out = Tree::object();
  for (const auto& [k, v] : entries) out[std::string(k->str())] = Convert(*v, depth + 1);
  return out;
}

template <typename T>
std::string Stringify(const T& v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

Tree Convert(const toml::node& node, int depth) {
  switch (node.type()) {
    case toml::node_type::table:
      return ConvertTable(*node.as_table(), depth);
    case toml::node_type::array: {
      if (depth > kMaxDepth) throw TooDeep{node.source().begin};
      Tree out = Tree::array();
      for (const auto& e : *node.as_array()) out.push_back(Convert(e, depth + 1));
      return out;
    }
    case toml::node_type::string:
      return Tree(node.as_string()->get());
    case toml::node_type::integer:
      return Tree(node.as_integer()->get());
    case toml::node_type::floating_point:
      return Tree(node.as_floating_point()->get());
    case toml::node_type::boolean:
      return Tree(node.as_boolean()->get());
    case toml::node_type::date:
      return Tree(Stringify(node.as_date()->get()));
    case toml::node_type::time:
      return Tree(Stringify(node.as_time()->get()));
    case toml::node_type::date_time:
      return Tree(Stringify(node.as_date_time()->get()));
    default:
      return Tree();
  }
}

bool IsBareKey(std::string_view k) {
  if (k.empty()) return false;
  for (char c : k) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '-'))
      return false;
  }
  return true;
}

std::string QuoteString(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\f': out += "\\f"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04X", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  return out;
}

std::string FormatFloat(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", d);
  // Shortest representation that round-trips.
  for (int prec = 1; prec <= 17; ++prec) {
    char tmp[64];
    std::snprintf(tmp, sizeof tmp, "%.*g", prec, d);
    if (std::strtod(tmp, nullptr) == d) {
      std::snprintf(buf, sizeof buf, "%s", tmp);
      break;
    }
  }
  std::string s = buf;
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string InlineValue(const Tree& v) {
  switch (v.type()) {
    case Tree::value_t::string:
      return QuoteString(v.get_ref<const std::string&>());
    case Tree::value_t::boolean:
      return v.get<bool>() ? "true" : "false";
    case Tree::value_t::number_integer:
      return std::to_string(v.get<int64_t>());
    case Tree::value_t::number_unsigned:
      return std::to_string(v.get<uint64_t>());
    case Tree::value_t::number_float:
      return FormatFloat(v.get<double>());
    case Tree::value_t::array: {
      std::string out = "[";
      bool first = true;
      for (const auto& e : v) {
        if (e.is_null()) continue;
        out += first ? "" : ", ";
        out += InlineValue(e);
        first = false;
      }
      return out + "]";
    }
    case Tree::value_t::object: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, e] : v.items()) {
        if (e.is_null()) continue;
        out += first ? " " : ", ";
        out += QuoteKey(k) + " = " + InlineValue(e);
        first = false;
      }
      return out + (first ? "}" : " }");
    }
    default:
      return "\"\"";
  }
}

void EmitTable(const Tree& table, const std::string& path, int depth, std::string& out) {
  const std::string key_indent(depth > 0 ? 2 * depth : 0, ' ');
  for (const auto& [k, v] : table.items()) {
    if (v.is_null() || v.is_object()) continue;
    out += key_indent + QuoteKey(k) + " = " + InlineValue(v) + "\n";
  }
  for (const auto& [k, v] : table.items()) {
    if (!v.is_object()) continue;
    std::string sub = path.empty() ? QuoteKey(k) : path + "." + QuoteKey(k);
    out += "\n" + std::string(2 * depth, ' ') + "[" + sub + "]\n";
    EmitTable(v, sub, depth + 1, out);
  }
}

}  // namespace

Tree ParseToml(std::string_view text, const std::string& name) {
  try {
    toml::table table = toml::parse(text, std::string_view(name));
    return ConvertTable(table, 0);
  } catch (const TooDeep& e) {
    throw Error(Code::kInvalidArgument,
                name + ":" + std::to_string(e.where.line) + ":" + std::to_string(e.where.column) +
                    ": tables and arrays nested deeper than " + std::to_string(kMaxDepth) +
                    " levels");
  } catch (const toml::parse_error& e) {
    const auto& pos = e.source().begin;
    throw Error(Code::kInvalidArgument, name + ":" + std::to_string(pos.line) + ":" +
                                            std::to_string(pos.column) +
                                            ": invalid TOML: " + std::string(e.description()));
  }
}

std::string EmitToml(const Tree& root) {
  std::string out;
  if (!root.is_object()) return out;
  EmitTable(root, "", 0, out);
  return out;
}

std::string TypeName(const Tree& v) {
  switch (v.type()) {
    case Tree::value_t::string: return "string";
    case Tree::value_t::boolean: return "boolean";
    case Tree::value_t::number_integer:
    case Tree::value_t::number_unsigned: return "integer";
    case Tree::value_t::number_float: return "float";
    case Tree::value_t::array: return "array";
    case Tree::value_t::object: return "table";
    case Tree::value_t::null: return "nothing";
    default: return "unknown";
  }
}

std::string QuoteKey(std::string_view key) {
  return IsBareKey(key) ? std::string(key) : QuoteString(key);
}

std::string JoinKey(std::string_view parent, std::string_view key) {
  if (parent.empty()) return QuoteKey(key);
  return std::string(parent) + "." + QuoteKey(key);
}

}  // namespace berth::config::detail
