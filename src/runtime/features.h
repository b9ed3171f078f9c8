// OCI runtime features (runtime-spec features.md): what `<runtime> features` prints, parsed into
// typed accessors while the whole document is kept for introspection.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace berth::runtime {

class Features {
 public:
  // The whole document as printed by the runtime.
  const nlohmann::json& document() const { return *doc_; }
  std::string oci_version_min, oci_version_max;
  std::vector<std::string> hooks;
  std::vector<std::string> mount_options;
  std::vector<std::string> namespaces;    // linux.namespaces
  std::vector<std::string> capabilities;  // linux.capabilities
  std::optional<bool> seccomp_enabled;    // linux.seccomp.enabled
  std::vector<std::string> seccomp_actions;
  std::optional<bool> apparmor_enabled, selinux_enabled;
  std::optional<bool> cgroup_v1, cgroup_v2, cgroup_systemd;
  std::optional<bool> idmap_enabled;  // linux.mountExtensions.idmap.enabled

  bool HasMountOption(std::string_view opt) const;
  bool SupportsRRO() const { return HasMountOption("rro"); }
  bool HasNamespace(std::string_view ns) const;
  // User namespaces: "user" among linux.namespaces.
  bool SupportsUserns() const { return HasNamespace("user"); }

 private:
  friend Features ParseFeatures(std::string_view text);
  std::shared_ptr<const nlohmann::json> doc_;
};

// Parses runtime-spec features JSON. Throws Error(kInvalidArgument) naming the problem: not JSON,
// not an object, missing or non-string "ociVersionMin"/"ociVersionMax", or a known field with
// the wrong type ("linux.namespaces: expected an array of strings").
Features ParseFeatures(std::string_view text);

// The OCI runtime binary of a runtime handler: options.BinaryName, else runtime_path, else "runc",
// resolved with exec::LookPath. Throws Error(kNotFound) naming the binary when it is missing.
std::string ResolveRuntimeBinary(const std::string& binary_name, const std::string& runtime_path);

struct FeaturesQuery {
  std::string binary;                  // absolute path
  bool has_features_command = false;   // exited 0
  std::optional<Features> features;    // set when the output parsed
  std::string error;                   // why there are no features
  bool cached = false;                 // answered from the on-disk cache
};

// Runs `<binary> features` with a timeout. A non-zero exit (crun 1.8 prints "unknown command
// features" and exits 1) gives has_features_command=false and the runtime's message in `error`;
// exit 0 with output that does not parse gives has_features_command=true and the parse error.
// Results are cached in memory per binary path, modification time, size and inode. With a
// `cache_dir`, they are also kept on disk in <cache_dir>/features-<path>.json under the same key,
// so that a restart of the daemon does not exec the runtime again; a replaced or updated binary
// changes the key. Only definite answers are written (exit 0, or a plain non-zero exit: not a
// timeout or a signal). A damaged or stale file is ignored and rewritten atomically. Throws only
// when `binary` cannot be executed at all.
FeaturesQuery QueryFeatures(const std::string& binary,
                            std::chrono::milliseconds timeout = std::chrono::seconds(10),
                            const std::string& cache_dir = "");
// Drops the cache (tests).
void ClearFeaturesCache();

}  // namespace berth::runtime
