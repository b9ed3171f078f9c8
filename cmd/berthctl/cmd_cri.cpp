// berthctl CRI commands: version, info, imagefsinfo, and the shared client helpers.
// The generated CRI header first: its Signal enum values collide with <signal.h> macros.
#include "runtime/v1/api.grpc.pb.h"

#include "cmd/berthctl/cmd_cri.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>
#include <google/protobuf/util/json_util.h>

#include "cmd/berthctl/commands.h"

namespace berth::berthctl::cri {

namespace v1 = ::runtime::v1;

namespace {

bool NeedsQuotes(const std::string& s) {
  if (s.empty()) return true;
  if (s == "true" || s == "false" || s == "null" || s == "~" || s == "yes" || s == "no") return true;
  if (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-' || s[0] == '.' || s[0] == '+') return true;
  for (char c : s) {
    if (c == ':' || c == '#' || c == '\n' || c == '"' || c == '\'' || c == '{' || c == '}' || c == '[' ||
        c == ']' || c == ',' || c == '&' || c == '*' || c == '!' || c == '|' || c == '>' || c == '%' ||
        c == '@' || c == '`' || static_cast<unsigned char>(c) < 0x20) {
      return true;
    }
  }
  return s.front() == ' ' || s.back() == ' ';
}

std::string Scalar(const nlohmann::ordered_json& j) {
  if (j.is_string()) {
    const auto& s = j.get_ref<const std::string&>();
    return NeedsQuotes(s) ? nlohmann::ordered_json(s).dump() : s;
  }
  return j.dump();
}

void EmitYAML(const nlohmann::ordered_json& j, int indent, std::ostringstream& out) {
  std::string pad(indent, ' ');
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      std::string key = NeedsQuotes(it.key()) ? nlohmann::ordered_json(it.key()).dump() : it.key();
      const auto& v = it.value();
      if ((v.is_object() || v.is_array()) && !v.empty()) {
        out << pad << key << ":\n";
        EmitYAML(v, v.is_array() ? indent : indent + 2, out);
      } else if (v.is_object()) {
        out << pad << key << ": {}\n";
      } else if (v.is_array()) {
        out << pad << key << ": []\n";
      } else {
        out << pad << key << ": " << Scalar(v) << "\n";
      }
    }
  } else if (j.is_array()) {
    for (const auto& v : j) {
      if (v.is_object() && !v.empty()) {
        std::ostringstream inner;
        EmitYAML(v, indent + 2, inner);
        std::string s = inner.str();
        // "- " replaces the first line's indentation.
        out << pad << "- " << s.substr(indent + 2);
      } else if (v.is_array() && !v.empty()) {
        out << pad << "-\n";
        EmitYAML(v, indent + 2, out);
      } else {
        out << pad << "- " << (v.is_object() ? "{}" : v.is_array() ? "[]" : Scalar(v)) << "\n";
      }
    }
  } else {
    out << pad << Scalar(j) << "\n";
  }
}

}  // namespace

nlohmann::ordered_json ToJSON(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.always_print_primitive_fields = false;
  auto st = google::protobuf::util::MessageToJsonString(m, &out, o);
  if (!st.ok()) throw std::runtime_error("cannot encode the answer as JSON: " + st.ToString());
  return nlohmann::ordered_json::parse(out);
}

std::string ToYAML(const nlohmann::ordered_json& j) {
  std::ostringstream out;
  if (j.empty() && (j.is_array() || j.is_object())) return j.is_array() ? "[]\n" : "{}\n";
  EmitYAML(j, 0, out);
  return out.str();
}

void PrintStructured(const nlohmann::ordered_json& j, const std::string& format) {
  if (format == "yaml") {
    std::cout << ToYAML(j);
  } else {
    std::cout << j.dump(2) << "\n";
  }
}

std::string HumanSize(uint64_t bytes) {
  static const char* units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000 && u < 5) {
    v /= 1000;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%lluB", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(buf, sizeof buf, "%.3g%s", v, units[u]);
  }
  return buf;
}

}  // namespace berth::berthctl::cri

namespace berth::berthctl {

namespace v1 = ::runtime::v1;
using cri::PrintStructured;
using cri::ToJSON;

void AddCRICommands(CLI::App& app, Globals& g) {
  auto* version = app.add_subcommand("version", "runtime version (CRI Version)");
  version->callback([&g] {
    auto stub = v1::RuntimeService::NewStub(g.Channel());
    grpc::ClientContext ctx;
    g.Prepare(ctx);
    v1::VersionRequest req;
    req.set_version("v1");
    v1::VersionResponse resp;
    Check(stub->Version(&ctx, req, &resp), "version");
    std::cout << "Version:  " << resp.version() << "\n"
              << "RuntimeName:  " << resp.runtime_name() << "\n"
              << "RuntimeVersion:  " << resp.runtime_version() << "\n"
              << "RuntimeApiVersion:  " << resp.runtime_api_version() << "\n";
  });

  auto* info = app.add_subcommand("info", "runtime status and configuration (CRI Status, verbose)");
  auto info_out = std::make_shared<std::string>();
  info->add_option("-o,--output", *info_out, "json or yaml (default json)")->check(CLI::IsMember({"table", "json", "yaml"}));
  info->callback([&g, info_out] {
    auto stub = v1::RuntimeService::NewStub(g.Channel());
    grpc::ClientContext ctx;
    g.Prepare(ctx);
    v1::StatusRequest req;
    req.set_verbose(true);
    v1::StatusResponse resp;
    Check(stub->Status(&ctx, req, &resp), "status");
    nlohmann::ordered_json j;
    j["status"] = ToJSON(resp.status());
    nlohmann::ordered_json handlers = nlohmann::ordered_json::array();
    for (const auto& h : resp.runtime_handlers()) handlers.push_back(ToJSON(h));
    j["runtimeHandlers"] = handlers;
    if (resp.has_features()) j["features"] = ToJSON(resp.features());
    std::vector<std::string> keys;
    for (const auto& [k, v] : resp.info()) keys.push_back(k);
    std::sort(keys.begin(), keys.end());
    for (const auto& k : keys) {
      if (k == "runtimeHandlers") continue;
      const std::string& v = resp.info().at(k);
      auto parsed = nlohmann::ordered_json::parse(v, nullptr, false);
      j[k] = parsed.is_discarded() ? nlohmann::ordered_json(v) : parsed;
    }
    PrintStructured(j, cri::Format(*info_out, g.output));
  });
}

}  // namespace berth::berthctl
