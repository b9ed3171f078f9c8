// berthd's Prometheus metrics: counters and histograms that other code bumps with one-line hooks,
// collectors that report state at scrape time, and the text exposition format (version 0.0.4).
// Thread-safe. Metric names follow Prometheus conventions (berth_ prefix, base units, _total,
// _seconds); docs/operations.md lists them.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace berth::metrics {

// --- hooks
// ----------------------------------------------------------------------------------------

// A finished gRPC call: "/runtime.v1.RuntimeService/RunPodSandbox", its status code (0-16) and how
// long it took.
void GrpcHandled(std::string_view full_method, int code, double seconds);
// A container event as the CRI numbers them (runtime.v1.ContainerEventType): 1 started,
// 2 stopped (an exit; reason "OOMKilled" counts an OOM kill too). Others are ignored.
void ContainerEvent(int cri_event_type, std::string_view reason);
// An image pull that ended: bytes pulled (0 on failure), how long it took, and "" on success or
// the failure's reason (a gRPC code name in snake case, e.g. "not_found").
void ImagePull(uint64_t bytes, double seconds, std::string_view failure_reason);
// A volume mount of a container as made: recursively read-only through the runtime's rro option,
// through berth's staged tree, or read-only only at its top (submounts writable) because the
// handler's treat_ro_mounts_as_rro resolved off.
void VolumeMount(bool read_only, bool rro, bool staged);
// The gRPC code's name in snake case ("ok", "not_found", "deadline_exceeded", ...).
std::string_view CodeName(int code);

// --- configuration and scraping
// -------------------------------------------------------------------

// With grpc_histogram (containerd's [metrics] key) the gRPC latency histogram is recorded.
void SetGrpcHistogram(bool on);
bool GrpcHistogram();

// Appends families to the exposition; `out` is the text so far. Called at every scrape, in
// registration order, after the built-in families.
using Collector = std::function<void(std::string& out)>;
void AddCollector(Collector c);
// Clears counters, histograms and collectors (tests).
void ResetForTest();

// The whole exposition: counters, histograms, collectors, and berthd's process metrics.
std::string Render();

// Writers for collectors.
// "# HELP name help\n# TYPE name type\n"
void WriteHeader(std::string& out, std::string_view name, std::string_view type,
                 std::string_view help);
// name{labels} value\n; labels is "" or `a="x",b="y"` (values escaped with Label()).
void WriteSample(std::string& out, std::string_view name, std::string_view labels, double value);
// key="escaped value"
std::string Label(std::string_view key, std::string_view value);

}  // namespace berth::metrics
