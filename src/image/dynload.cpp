#include "image/dynload.h"

#include <dlfcn.h>
#include <malloc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "common/error.h"

#ifndef BERTH_ARCHIVE_SONAME
#error "BERTH_ARCHIVE_SONAME must name libarchive's SONAME (set by src/image/CMakeLists.txt)"
#endif

namespace berth::image {

namespace dynload {

void* Open(const char* what, const char* soname) {
  ::dlerror();
  void* h = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* why = ::dlerror();
    throw Error(Code::kUnavailable, std::string(what) + " (" + soname + ") cannot be loaded: " +
                                        (why ? why : "unknown dlopen error"));
  }
  return h;
}

void* Symbol(void* handle, const char* soname, const char* name) {
  ::dlerror();
  void* p = ::dlsym(handle, name);
  if (!p) {
    const char* why = ::dlerror();
    throw Error(Code::kInternal, std::string(soname) + " lacks the function " + name +
                                     (why ? std::string(": ") + why : std::string()));
  }
  return p;
}

}  // namespace dynload

namespace {

// One dynamically loaded library: its handle and function table, valid while `users` > 0. Only
// trivially destructible members, so that a use ending during exit finds it intact.
template <class Api>
struct Library {
  std::mutex mu;              // serialises loading and unloading
  std::atomic<int> users{0};  // live uses; the table is valid while > 0
  std::atomic<int> loads{0};
  void* handle = nullptr;  // non-null while loaded (in use, or idle before unloading)
  Api api{};
  std::atomic<int64_t> idle_ms{0};  // how long the library stays loaded after its last use
  int64_t unload_at_ns = 0;         // steady clock: when an idle library is unloaded
  bool reaper = false;              // a thread waits to unload it
};

constinit Library<ArchiveApi> g_archive;

// dlclose, logging rather than throwing: a use ends in a destructor.
void Close(void* handle, const char* soname) {
  ::dlerror();
  if (::dlclose(handle) != 0) {
    const char* why = ::dlerror();
    spdlog::warn("unloading {} failed: {}", soname, why ? why : "unknown dlclose error");
    return;
  }
  spdlog::debug("unloaded {}", soname);
}

// The end of the last use is the end of an import or an unpack: their buffers (layer
// blocks, decompressor state, the library's own allocations) are free now, and glibc keeps freed
// memory below the top of a heap mapped. Give the whole free pages back to the system.
void ReleaseFreedMemory() { ::malloc_trim(0); }

ArchiveApi ResolveArchive(void* h) {
  ArchiveApi api;
#define BERTH_ARCHIVE_RESOLVE(name)                \
  api.name = reinterpret_cast<decltype(api.name)>( \
      dynload::Symbol(h, BERTH_ARCHIVE_SONAME, "archive_" #name));
  BERTH_ARCHIVE_FUNCTIONS(BERTH_ARCHIVE_RESOLVE)
#undef BERTH_ARCHIVE_RESOLVE
  api.last_errno = reinterpret_cast<decltype(api.last_errno)>(
      dynload::Symbol(h, BERTH_ARCHIVE_SONAME, "archive_errno"));
  return api;
}

}  // namespace

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Under g_archive.mu, with no use alive.
void UnloadArchive() {
  g_archive.api = ArchiveApi{};
  Close(std::exchange(g_archive.handle, nullptr), BERTH_ARCHIVE_SONAME);
}

// Waits until the idle library's time is up, then unloads it; gives up when a use began (the
// end of that use starts another wait).
void ReapArchive() {
  for (;;) {
    int64_t at;
    {
      std::lock_guard<std::mutex> lk(g_archive.mu);
      if (g_archive.users.load() > 0 || !g_archive.handle) {
        g_archive.reaper = false;
        return;
      }
      at = g_archive.unload_at_ns;
      if (NowNs() >= at) {
        UnloadArchive();
        g_archive.reaper = false;
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::nanoseconds(at - NowNs()));
  }
  ReleaseFreedMemory();
}

}  // namespace

void SetArchiveIdleTime(std::chrono::milliseconds idle) {
  g_archive.idle_ms.store(std::max<int64_t>(0, idle.count()));
}

ArchiveUse::ArchiveUse() {
  std::lock_guard<std::mutex> lk(g_archive.mu);
  if (!g_archive.handle) {
    void* h = dynload::Open("libarchive", BERTH_ARCHIVE_SONAME);
    try {
      g_archive.api = ResolveArchive(h);
    } catch (...) {
      Close(h, BERTH_ARCHIVE_SONAME);
      throw;
    }
    g_archive.handle = h;
    g_archive.loads.fetch_add(1);
    spdlog::debug("loaded {}", BERTH_ARCHIVE_SONAME);
  }
  g_archive.users.fetch_add(1);
}

ArchiveUse::~ArchiveUse() {
  {
    std::lock_guard<std::mutex> lk(g_archive.mu);
    if (g_archive.users.fetch_sub(1) != 1) return;
    if (int64_t idle = g_archive.idle_ms.load(); idle > 0) {
      g_archive.unload_at_ns = NowNs() + idle * 1000000;
      if (g_archive.reaper) return;
      try {
        std::thread(ReapArchive).detach();
        g_archive.reaper = true;
        return;
      } catch (const std::system_error& e) {
        spdlog::warn("unloading {} now: {}", BERTH_ARCHIVE_SONAME, e.what());
      }
    }
    UnloadArchive();
  }
  ReleaseFreedMemory();
}

const ArchiveApi& Archive() {
  if (g_archive.users.load() <= 0)
    throw Error(Code::kInternal, "libarchive used without an ArchiveUse");
  return g_archive.api;
}

int ArchiveLoads() { return g_archive.loads.load(); }

const char* ArchiveSoname() { return BERTH_ARCHIVE_SONAME; }

}  // namespace berth::image
