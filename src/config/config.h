// containerd-compatible config.toml: loading (versions 1, 2 and 3, imports), defaults, TOML output,
// and the containerd-2-style migration of the CRI plugin tables to version 3.
//
// The generic tree of a config is nlohmann::ordered_json (TOML tables -> objects, arrays -> arrays,
// strings/integers/floats/booleans -> the same; TOML dates and times -> strings). Config holds
// trees by value, so this header includes the full nlohmann/json.hpp (json_fwd.hpp cannot declare
// by-value members); toml++ is used only inside the library.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace berth::config {

inline constexpr int kCurrentVersion = 3;

// Plugin URIs of the three CRI plugins (version 3 layout).
inline constexpr const char* kCRIRuntimePluginURI = "io.containerd.cri.v1.runtime";
inline constexpr const char* kCRIImagesPluginURI = "io.containerd.cri.v1.images";
inline constexpr const char* kCRIServerPluginURI = "io.containerd.grpc.v1.cri";

struct GrpcConfig {
  std::string address = "/run/berth/berth.sock";
  std::string tcp_address;
  std::string tcp_tls_ca, tcp_tls_cert, tcp_tls_key;
  int uid = 0, gid = 0;
  int64_t max_recv_message_size = 16 << 20, max_send_message_size = 16 << 20;
};

struct DebugConfig {
  std::string address;
  std::string level = "info";
  std::string format;
  int uid = 0, gid = 0;
};

// Top level of config.toml.
struct Config {
  int version = kCurrentVersion;
  std::string root = "/var/lib/berth", state = "/run/berth", temp, plugin_dir;
  GrpcConfig grpc;
  DebugConfig debug;
  int oom_score = 0;
  std::vector<std::string> disabled_plugins, required_plugins, imports;
  // Raw plugin tables keyed by full URI ("io.containerd.cri.v1.runtime"), verbatim.
  nlohmann::ordered_json plugins = nlohmann::ordered_json::object();
  // Every other top-level key, verbatim (ttrpc, metrics, cgroup, timeouts, proxy_plugins,
  // stream_processors, ...). Unknown keys inside [grpc]/[debug] are kept as extra["grpc"][k].
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
};

struct LoadResult {
  Config config;        // merged and migrated: always version 3
  int file_version = 0; // version of the main file (1 when the key is absent, as containerd)
  std::vector<std::string> warnings;
  std::vector<std::string> files;  // main file first, then every imported file in merge order
};

// Parses a file, migrates it to version 3 when older (v1 plugin names, then the CRI table split,
// see MigrateToV3), then applies `imports`: glob patterns ('*'), relative ones relative to the
// importing file's directory, each imported file migrated before it is merged; later files
// override scalars, the top-level lists are unions, plugin tables merge recursively, entries of
// timeouts/proxy_plugins/stream_processors are replaced whole (see docs/config.md).
// Throws Error(kInvalidArgument) naming file, line and column for malformed TOML, the key path and
// expected type for wrong types, and the version for unsupported versions; Error(kNotFound) for a
// missing main file. The plugins' migration hooks are no-ops on the result (idempotent).
LoadResult LoadFile(const std::string& path);
// Same for text; `name` is used in messages. Relative imports resolve against the current
// directory.
LoadResult LoadString(std::string_view toml, const std::string& name);

// Embedded defaults: version 3 with the default tables of the three CRI plugins.
Config Default();

// Complete TOML text of a config (`version` is c.version), stable key order: top-level scalars,
// [grpc], [debug], other top-level tables, [plugins...]; in every table plain keys first.
std::string ToToml(const Config& c);
// The generic tree of a whole config (what ToToml serialises).
nlohmann::ordered_json ToTree(const Config& c);

// Maps version-1 short plugin names ("cri", "linux", "overlayfs", ...) to full URIs, in place.
// Names that are already full URIs are left alone.
void MigrateV1PluginNames(nlohmann::ordered_json& plugins, std::vector<std::string>& warnings);

// containerd-2-style migration of the CRI tables; each CRI plugin's migration hook calls one of
// these. `version` is the file's version; they do nothing for version >= 3. Keys that cannot be
// placed are reported in `warnings` by their full key path; nothing is dropped silently.
void MigrateCRIRuntime(int version, nlohmann::ordered_json& plugins,
                       std::vector<std::string>& warnings);
void MigrateCRIImages(int version, nlohmann::ordered_json& plugins,
                      std::vector<std::string>& warnings);
void MigrateCRIServer(int version, nlohmann::ordered_json& plugins,
                      std::vector<std::string>& warnings);
// v1 names (if from_version < 2, also in disabled_plugins/required_plugins), then images,
// runtime, server; sets c.version = 3. Used by `berthd config migrate`.
void MigrateToV3(Config& c, int from_version, std::vector<std::string>& warnings);

// One warning per plugin table whose URI is not in known_uris:
// "plugin \"io.containerd.foo.v1.bar\" is configured but not implemented by berth; its table is kept verbatim".
std::vector<std::string> UnimplementedPluginWarnings(const Config& c,
                                                     const std::set<std::string>& known_uris);

}  // namespace berth::config
