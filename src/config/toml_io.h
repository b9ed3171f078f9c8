// Private to berth_config: TOML text <-> generic tree, type names and key paths for messages.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace berth::config::detail {

using Tree = nlohmann::ordered_json;

// Parses TOML text into a tree; keys keep their order of appearance in the text. Dates and times
// become strings. Throws Error(kInvalidArgument, "<name>:<line>:<column>: <reason>").
Tree ParseToml(std::string_view text, const std::string& name);

// Serialises an object tree as TOML: in every table, plain keys (scalars, arrays) first, then
// sub-tables as [headers]. Null values are skipped. Arrays are written inline.
std::string EmitToml(const Tree& root);

// "string", "integer", "float", "boolean", "array", "table" (TOML vocabulary).
std::string TypeName(const Tree& v);

// A key as it appears in a dotted path: bare when it can be, else a quoted basic string.
std::string QuoteKey(std::string_view key);
// `parent.key` with key quoted as needed; parent may be empty.
std::string JoinKey(std::string_view parent, std::string_view key);

}  // namespace berth::config::detail
