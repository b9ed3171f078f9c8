// berthctl as a CRI client (crictl-like): output helpers shared by cmd_cri.cpp and cmd_images.cpp.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace google::protobuf {
class Message;
}

namespace berth::berthctl::cri {

// The message as JSON (proto3 JSON mapping, lowerCamelCase names as crictl prints them).
nlohmann::ordered_json ToJSON(const google::protobuf::Message& m);
// JSON -> YAML text (block style).
std::string ToYAML(const nlohmann::ordered_json& j);
// Prints j as "yaml", otherwise as indented JSON.
void PrintStructured(const nlohmann::ordered_json& j, const std::string& format);
// A human-readable size like crictl's: "4.43MB" (base 1000).
std::string HumanSize(uint64_t bytes);
// The output format: the command's own -o when given, else the global one.
inline std::string Format(const std::string& local, const std::string& global) {
  return local.empty() ? global : local;
}

}  // namespace berth::berthctl::cri
