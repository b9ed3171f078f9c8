// Fuzzes config loading end to end: parse (LoadString, with migration of older versions), CRI
// decode and validation, and TOML output, which must parse back to the same config.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/error.h"
#include "config/config.h"
#include "config/cri.h"

using namespace berth::config;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1u << 16)) return 0;
  std::string text(reinterpret_cast<const char*>(data), size);
  LoadResult r;
  try {
    // Imports would read files named by the input; keep the target hermetic.
    if (text.find("imports") != std::string::npos) return 0;
    r = LoadString(text, "fuzz.toml");
  } catch (const berth::Error&) {
    return 0;
  }
  // Migrating again is a no-op for a version-3 config.
  std::vector<std::string> warnings;
  MigrateToV3(r.config, r.file_version, warnings);

  std::vector<std::string> unknown;
  const auto& p = r.config.plugins;
  auto table = [&](const char* uri) {
    auto it = p.find(uri);
    return it == p.end() ? nlohmann::ordered_json() : *it;
  };
  try {
    RuntimeConfig rc = DecodeRuntimeConfig(table(kCRIRuntimePluginURI), &unknown);
    ValidateRuntimeConfig(rc);
    DecodeRuntimeConfig(Encode(rc));
  } catch (const berth::Error&) {
  }
  try {
    ImageConfig ic = DecodeImageConfig(table(kCRIImagesPluginURI), &unknown);
    ValidateImageConfig(ic);
    DecodeImageConfig(Encode(ic));
  } catch (const berth::Error&) {
  }
  try {
    ServerConfig sc = DecodeServerConfig(table(kCRIServerPluginURI), &unknown);
    ValidateServerConfig(sc);
    DecodeServerConfig(Encode(sc));
  } catch (const berth::Error&) {
  }
  UnimplementedPluginWarnings(r.config, {kCRIRuntimePluginURI});

  // The output is valid TOML that loads back as version 3 with the same content.
  std::string out = ToToml(r.config);
  LoadResult again;
  try {
    again = LoadString(out, "roundtrip.toml");
  } catch (const berth::Error& e) {
    std::fprintf(stderr, "ToToml output does not load: %s\n%s\n", e.what(), out.c_str());
    std::abort();
  }
  if (again.file_version != 3 ||
      nlohmann::json::parse(ToTree(again.config).dump()) !=
          nlohmann::json::parse(ToTree(r.config).dump())) {
    std::fprintf(stderr, "ToToml round trip differs:\n%s\n", out.c_str());
    std::abort();
  }
  return 0;
}
