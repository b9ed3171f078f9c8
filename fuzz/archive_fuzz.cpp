// Feeds arbitrary bytes to ImportArchive as an image archive; every blob left in the content
// store must match its digest.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "common/fs.h"
#include "content/store.h"
#include "image/archive.h"

namespace {

const std::string& Scratch() {
  static std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string t = std::string(tmp && *tmp ? tmp : "/tmp") + "/berth-archive-fuzz-XXXXXX";
    if (!::mkdtemp(t.data())) std::abort();
    std::atexit([] { berth::fs::RemoveAll(Scratch()); });
    return t;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& root = Scratch();
  berth::fs::RemoveAll(root + "/content");
  berth::fs::WriteFileAtomic(root + "/archive.tar",
                             std::string_view(reinterpret_cast<const char*>(data), size));
  berth::content::Store store(root + "/content");
  try {
    berth::image::ImportArchive(root + "/archive.tar", store);
  } catch (const berth::Error&) {
  }
  for (const auto& d : store.List()) {
    if (berth::content::Sha256Digest(store.Read(d, 1u << 30)) != d) {
      std::fprintf(stderr, "blob %s does not match its digest\n", d.c_str());
      std::abort();
    }
  }
  return 0;
}
