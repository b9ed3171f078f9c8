// Feeds arbitrary bytes to ApplyLayer as a layer blob, extracting into a scratch directory, and
// aborts if anything appears outside of it.
#include <dirent.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>

#include "common/error.h"
#include "common/fs.h"
#include "image/unpack.h"

namespace {

std::set<std::string> Names(const std::string& dir) {
  std::set<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.insert(n);
    }
    ::closedir(d);
  }
  return out;
}

const std::string& Scratch() {
  static std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string t = std::string(tmp && *tmp ? tmp : "/tmp") + "/berth-layer-fuzz-XXXXXX";
    if (!::mkdtemp(t.data())) std::abort();
    std::atexit([] { berth::fs::RemoveAll(Scratch()); });
    return t;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& root = Scratch();
  std::string box = root + "/box";
  std::string dest = box + "/dest";
  berth::fs::RemoveAll(box);
  berth::fs::MkdirAll(dest);
  berth::fs::MkdirAll(box + "/outside");
  berth::fs::WriteFileAtomic(root + "/blob",
                             std::string_view(reinterpret_cast<const char*>(data), size));
  for (bool overlay : {false, true}) {
    try {
      berth::image::ApplyLayer(root + "/blob", dest, overlay);
    } catch (const berth::Error&) {
    }
    if (Names(box) != std::set<std::string>{"dest", "outside"} ||
        !Names(box + "/outside").empty() || Names(root) != std::set<std::string>{"blob", "box"}) {
      std::fprintf(stderr, "layer extraction wrote outside its destination\n");
      std::abort();
    }
  }
  berth::fs::RemoveAll(box);
  return 0;
}
