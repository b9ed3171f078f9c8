#include "image/dynload.h"

#include <dlfcn.h>

#include <string>

#include "common/error.h"

#ifndef BERTH_CURL_SONAME
#error "BERTH_CURL_SONAME must name libcurl's SONAME (set by src/image/CMakeLists.txt)"
#endif
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

// The handle stays open for the life of the process: the resolved pointers point into it.
CurlApi LoadCurl() {
  void* h = dynload::Open("libcurl", BERTH_CURL_SONAME);
  CurlApi api;
#define BERTH_CURL_RESOLVE(name) \
  api.name = reinterpret_cast<decltype(api.name)>(dynload::Symbol(h, BERTH_CURL_SONAME, "curl_" #name));
  BERTH_CURL_FUNCTIONS(BERTH_CURL_RESOLVE)
#undef BERTH_CURL_RESOLVE
  // Not thread-safe by libcurl's contract: done once, under the static initialisation guard.
  CURLcode rc = api.global_init(CURL_GLOBAL_DEFAULT);
  if (rc != CURLE_OK) {
    throw Error(Code::kInternal, std::string("curl_global_init failed: ") + api.easy_strerror(rc));
  }
  return api;
}

ArchiveApi LoadArchive() {
  void* h = dynload::Open("libarchive", BERTH_ARCHIVE_SONAME);
  ArchiveApi api;
#define BERTH_ARCHIVE_RESOLVE(name) \
  api.name = reinterpret_cast<decltype(api.name)>(dynload::Symbol(h, BERTH_ARCHIVE_SONAME, "archive_" #name));
  BERTH_ARCHIVE_FUNCTIONS(BERTH_ARCHIVE_RESOLVE)
#undef BERTH_ARCHIVE_RESOLVE
  api.last_errno =
      reinterpret_cast<decltype(api.last_errno)>(dynload::Symbol(h, BERTH_ARCHIVE_SONAME, "archive_errno"));
  return api;
}

}  // namespace

// A function-local static whose initialiser throws is initialised again by the next call.
const CurlApi& Curl() {
  static const CurlApi api = LoadCurl();
  return api;
}

const ArchiveApi& Archive() {
  static const ArchiveApi api = LoadArchive();
  return api;
}

const char* CurlSoname() { return BERTH_CURL_SONAME; }
const char* ArchiveSoname() { return BERTH_ARCHIVE_SONAME; }

}  // namespace berth::image
