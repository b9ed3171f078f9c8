// berthd's log formats: text lines, or one JSON object per line with containerd's (logrus') keys.
#include <chrono>
#include <ctime>
#include <memory>
#include <string>

#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "daemon/daemon.h"

namespace berth::daemon {

namespace {

constexpr const char* kTextPattern = "%Y-%m-%dT%H:%M:%S.%fZ %l %v";

// logrus' level names, which containerd writes.
const char* LevelName(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warning";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "fatal";
    default:
      return "info";
  }
}

// RFC 3339 with nanoseconds in UTC, as containerd's "time".
std::string Rfc3339Nano(std::chrono::system_clock::time_point tp) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(tp.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ns / 1000000000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[64];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%09lldZ", static_cast<long long>(ns % 1000000000));
  return buf;
}

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    nlohmann::ordered_json j;
    j["time"] = Rfc3339Nano(msg.time);
    j["level"] = LevelName(msg.level);
    j["msg"] = std::string(msg.payload.data(), msg.payload.size());
    std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    line += '\n';
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

void SetLogFormat(const std::string& format) {
  if (format.empty() || format == "text") {
    spdlog::set_pattern(kTextPattern, spdlog::pattern_time_type::utc);
  } else if (format == "json") {
    spdlog::set_formatter(std::make_unique<JsonFormatter>());
  } else {
    throw Error(Code::kInvalidArgument,
                "[debug] format \"" + format + "\": must be \"text\" or \"json\"");
  }
}

std::string LogLevel() {
  auto l = spdlog::get_level();
  return l == spdlog::level::warn ? "warn" : LevelName(l);
}

}  // namespace berth::daemon
