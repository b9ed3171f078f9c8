// Manifest, index and config parsing plus platform selection on hostile documents: only
// berth::Error may come out, and a selected index entry is always in range.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "image/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace berth::image;
  std::string s(reinterpret_cast<const char*>(data), size);
  try {
    std::string mt = DetectManifestType(s, "");
    if (mediatype::IsIndex(mt)) {
      Index idx = ParseIndex(s, mt);
      for (const char* arch : {"amd64", "arm64", "arm"}) {
        int i = SelectPlatform(idx, {"linux", arch, arch == std::string("arm") ? "v7" : "", ""});
        if (i >= static_cast<int>(idx.manifests.size())) abort();
      }
    } else {
      Manifest m = ParseManifest(s, mt);
      if (m.layers.size() > kMaxLayers) abort();
    }
  } catch (const berth::Error&) {
  }
  try {
    ImageConfig c = ParseConfig(s);
    if (c.diff_ids.size() > kMaxLayers) abort();
  } catch (const berth::Error&) {
  }
  return 0;
}
