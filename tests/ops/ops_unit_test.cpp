// Unit tests of the metrics library (its exposition read by prometheus_client's parser), the
// metrics endpoint's request handling, and the check line format.
#include <unistd.h>

#include <chrono>
#include <map>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/exec.h"
#include "daemon/check.h"
#include "metrics/http.h"
#include "metrics/metrics.h"
#include "metrics/pull.h"

namespace {

using nlohmann::json;
namespace m = berth::metrics;

json Parse(const std::string& text, std::string* error = nullptr) {
  berth::exec::Options o;
  o.stdin_data = text;
  auto r = berth::exec::Run({"/usr/bin/python3", PROM_PARSE_PY}, o);
  if (error) *error = r.err;
  return r.ok() ? json::parse(r.out) : json();
}

double Value(const json& parsed, const std::string& name,
             const std::map<std::string, std::string>& want = {}) {
  double sum = 0;
  for (const auto& s : parsed["samples"]) {
    if (s[0] != name) continue;
    bool match = true;
    for (const auto& [k, v] : want) match = match && s[1].contains(k) && s[1][k] == v;
    if (match) sum += s[2].get<double>();
  }
  return sum;
}

struct Sized {
  int64_t size;
};

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "python3 is not installed";
    if (berth::exec::Run({"/usr/bin/python3", "-c", "import prometheus_client"}).exit_code != 0) {
      GTEST_SKIP() << "python3-prometheus-client is not installed";
    }
    m::ResetForTest();
    m::SetGrpcHistogram(true);
  }
  void TearDown() override { m::SetGrpcHistogram(false); }
};

TEST_F(MetricsTest, ExpositionParsesAndCounts) {
  m::GrpcHandled("/runtime.v1.RuntimeService/RunPodSandbox", 0, 0.02);
  m::GrpcHandled("/runtime.v1.RuntimeService/RunPodSandbox", 0, 3.0);
  m::GrpcHandled("/runtime.v1.RuntimeService/ContainerStatus", 5, 0.001);
  m::ContainerEvent(1, "");
  m::ContainerEvent(2, "Completed");
  m::ContainerEvent(2, "OOMKilled");
  m::ContainerEvent(3, "");
  m::VolumeMount(true, true, false);
  m::VolumeMount(true, true, true);
  m::VolumeMount(true, false, false);
  m::VolumeMount(false, false, false);
  m::AddCollector([](std::string& out) {
    m::WriteHeader(out, "berth_test_info", "gauge",
                   "A label with \"quotes\", a \\ and a\nnewline.");
    m::WriteSample(out, "berth_test_info", m::Label("v", "a\"b\\c\nd"), 1);
  });
  std::string error;
  json p = Parse(m::Render(), &error);
  ASSERT_TRUE(p.is_object()) << error;
  EXPECT_EQ(Value(p, "berth_grpc_server_handled_total",
                  {{"grpc_method", "RunPodSandbox"}, {"grpc_code", "ok"}}),
            2);
  EXPECT_EQ(Value(p, "berth_grpc_server_handled_total",
                  {{"grpc_method", "ContainerStatus"}, {"grpc_code", "not_found"}}),
            1);
  EXPECT_EQ(Value(p, "berth_grpc_server_handling_seconds_bucket",
                  {{"grpc_method", "RunPodSandbox"}, {"le", "0.025"}}),
            1);
  EXPECT_EQ(Value(p, "berth_grpc_server_handling_seconds_bucket",
                  {{"grpc_method", "RunPodSandbox"}, {"le", "5"}}),
            2);
  EXPECT_EQ(Value(p, "berth_grpc_server_handling_seconds_bucket",
                  {{"grpc_method", "RunPodSandbox"}, {"le", "+Inf"}}),
            2);
  EXPECT_DOUBLE_EQ(
      Value(p, "berth_grpc_server_handling_seconds_sum", {{"grpc_method", "RunPodSandbox"}}), 3.02);
  EXPECT_EQ(p["families"]["berth_grpc_server_handling_seconds"], "histogram");
  EXPECT_EQ(Value(p, "berth_container_starts_total"), 1);
  EXPECT_EQ(Value(p, "berth_container_exits_total"), 2);
  EXPECT_EQ(Value(p, "berth_container_oom_kills_total"), 1);
  EXPECT_EQ(Value(p, "berth_volume_mounts_total", {{"kind", "rro"}}), 1);
  EXPECT_EQ(Value(p, "berth_volume_mounts_total", {{"kind", "rro_staged"}}), 1);
  EXPECT_EQ(Value(p, "berth_volume_mounts_total", {{"kind", "ro_top_only"}}), 1);
  EXPECT_EQ(Value(p, "berth_volume_mounts_total", {{"kind", "writable"}}), 1);
  EXPECT_EQ(Value(p, "berth_test_info", {{"v", "a\"b\\c\nd"}}), 1);
  EXPECT_GT(Value(p, "berth_process_resident_memory_bytes"), 0);
  EXPECT_GT(Value(p, "berth_process_open_fds"), 0);
}

TEST_F(MetricsTest, HistogramOffLeavesOnlyCounts) {
  m::SetGrpcHistogram(false);
  m::GrpcHandled("/berth.admin.v1.Admin/ListPlugins", 0, 0.01);
  json p = Parse(m::Render());
  EXPECT_EQ(Value(p, "berth_grpc_server_handled_total", {{"grpc_service", "berth.admin.v1.Admin"}}),
            1);
  EXPECT_FALSE(p["families"].contains("berth_grpc_server_handling_seconds"));
}

TEST_F(MetricsTest, PullsAndFailuresByReason) {
  auto ok = m::ObservePull([] { return Sized{1234}; });
  EXPECT_EQ(ok.size, 1234);
  EXPECT_THROW(m::ObservePull([]() -> Sized {
                 throw berth::Error(berth::Code::kNotFound, "no such manifest");
               }),
               berth::Error);
  EXPECT_THROW(
      m::ObservePull([]() -> Sized { throw berth::Error(berth::Code::kPermissionDenied, "403"); }),
      berth::Error);
  EXPECT_THROW(m::ObservePull([]() -> Sized { throw std::runtime_error("x"); }),
               std::runtime_error);
  json p = Parse(m::Render());
  EXPECT_EQ(Value(p, "berth_image_pulls_total"), 1);
  EXPECT_EQ(Value(p, "berth_image_pull_bytes_total"), 1234);
  EXPECT_EQ(Value(p, "berth_image_pull_duration_seconds_count"), 1);
  EXPECT_EQ(Value(p, "berth_image_pull_failures_total", {{"reason", "not_found"}}), 1);
  EXPECT_EQ(Value(p, "berth_image_pull_failures_total", {{"reason", "permission_denied"}}), 1);
  EXPECT_EQ(Value(p, "berth_image_pull_failures_total", {{"reason", "unknown"}}), 1);
}

TEST(MetricsHttp, RequestLines) {
  std::string err;
  auto r = m::ParseRequestLine("GET /v1/metrics HTTP/1.1\r\nHost: x\r\n\r\n", &err);
  ASSERT_TRUE(r) << err;
  EXPECT_EQ(r->method, "GET");
  EXPECT_EQ(r->target, "/v1/metrics");
  for (const char* bad :
       {"GET /v1/metrics HTTP/1.1", "GET  /v1/metrics HTTP/1.1\r\n", "GET v1 HTTP/1.1\r\n",
        "GET /v1 HTTP/2\r\n", "G(T /v1 HTTP/1.1\r\n", "\r\n", "GET /a b HTTP/1.1\r\n"}) {
    EXPECT_FALSE(m::ParseRequestLine(bad, &err)) << bad;
    EXPECT_FALSE(err.empty());
  }
  EXPECT_EQ(m::Respond("GET /v1/metrics?x=1 HTTP/1.0\r\n\r\n").rfind("HTTP/1.1 200 OK", 0), 0u);
  std::string head = m::Respond("HEAD /v1/metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n");
  EXPECT_EQ(m::Respond("GET /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(m::Respond("DELETE /v1/metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
}

TEST(MetricsHttp, BadAddresses) {
  EXPECT_THROW(m::HttpServer("no-port"), berth::Error);
  EXPECT_THROW(m::HttpServer("127.0.0.1:http"), berth::Error);
  m::HttpServer s("127.0.0.1:0");
  EXPECT_GT(s.port(), 0);
  try {
    m::HttpServer again("127.0.0.1:" + std::to_string(s.port()));
    FAIL() << "a second listener on the same port";
  } catch (const berth::Error& e) {
    EXPECT_NE(std::string(e.what()).find("failed to listen on [metrics] address 127.0.0.1:"),
              std::string::npos)
        << e.what();
  }
}

TEST(CheckFormat, OneLinePerCheck) {
  using berth::daemon::CheckResult;
  CheckResult ok{"disk.root", CheckResult::Status::kOk, false, "/var/lib/berth: 10 MiB free",
                 "unused"};
  EXPECT_EQ(berth::daemon::FormatCheckLine(ok), "ok   disk.root: /var/lib/berth: 10 MiB free");
  CheckResult fail{"runtime.runc", CheckResult::Status::kFail, true, "runc not found",
                   "install runc"};
  EXPECT_EQ(berth::daemon::FormatCheckLine(fail),
            "fail runtime.runc: runc not found [fatal]; fix: install runc");
  EXPECT_TRUE(berth::daemon::AnyFatal({ok, fail}));
  fail.fatal = false;
  EXPECT_FALSE(berth::daemon::AnyFatal({ok, fail}));
}

}  // namespace
