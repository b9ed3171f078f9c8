// Shared libraries loaded while in use. libcurl (registry pulls) and libarchive (layers, image
// archives) are not linked into berthd: they and the ~80 libraries they depend on (GnuTLS,
// Kerberos, LDAP, libssh2, libxml2, ICU...) would cost every start their load time and an idle
// berthd a few MiB of memory although most of its life is spent neither pulling nor unpacking.
//
// A CurlUse or ArchiveUse keeps its library loaded for as long as it lives. The first use dlopens
// the library by its SONAME (taken from the development package at build time) and resolves every
// function berth uses at once, so that a missing symbol is reported up front rather than in the
// middle of a transfer; concurrent and nested uses share that load; when the last use ends, the
// library is unloaded again (libcurl after curl_global_cleanup), and with it every dependency
// that nothing else holds, and the memory freed by the work is given back to the system
// (malloc_trim). Dependencies that mark themselves NODELETE (OpenSSL's libssl and
// libcrypto, p11-kit) stay mapped for the life of the process: glibc never unloads them.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>

namespace berth::image {

namespace dynload {
// dlopen(soname, RTLD_NOW | RTLD_LOCAL). Throws Error(kUnavailable) "<what> (<soname>) cannot be
// loaded: <dlerror>" when the library is not installed or does not load.
void* Open(const char* what, const char* soname);
// dlsym of a function. Throws Error(kInternal) naming the symbol and the library when absent.
void* Symbol(void* handle, const char* soname, const char* name);
}  // namespace dynload

// Each member is the library function of the same name without its prefix:
// Curl().easy_init() is curl_easy_init(), Archive().read_new() is archive_read_new().
#define BERTH_CURL_FUNCTIONS(X) \
  X(global_init)                \
  X(global_cleanup)             \
  X(easy_init)                  \
  X(easy_cleanup)               \
  X(easy_reset)                 \
  X(easy_setopt)                \
  X(easy_getinfo)               \
  X(easy_perform)               \
  X(easy_strerror)              \
  X(slist_append)               \
  X(slist_free_all)

#define BERTH_ARCHIVE_FUNCTIONS(X) \
  X(read_new)                      \
  X(read_free)                     \
  X(read_support_filter_gzip)      \
  X(read_support_filter_zstd)      \
  X(read_support_format_tar)       \
  X(read_support_format_raw)       \
  X(read_open)                     \
  X(read_open_fd)                  \
  X(read_open_filename)            \
  X(read_next_header)              \
  X(read_data)                     \
  X(read_data_block)               \
  X(error_string)                  \
  X(set_error)                     \
  X(entry_pathname)                \
  X(entry_filetype)                \
  X(entry_perm)                    \
  X(entry_uid)                     \
  X(entry_gid)                     \
  X(entry_size)                    \
  X(entry_size_is_set)             \
  X(entry_hardlink)                \
  X(entry_symlink)                 \
  X(entry_rdevmajor)               \
  X(entry_rdevminor)               \
  X(entry_atime)                   \
  X(entry_atime_nsec)              \
  X(entry_atime_is_set)            \
  X(entry_mtime)                   \
  X(entry_mtime_nsec)              \
  X(entry_xattr_reset)             \
  X(entry_xattr_next)

struct CurlApi {
#define BERTH_CURL_MEMBER(name) decltype(&::curl_##name) name;
  BERTH_CURL_FUNCTIONS(BERTH_CURL_MEMBER)
#undef BERTH_CURL_MEMBER
};

struct ArchiveApi {
#define BERTH_ARCHIVE_MEMBER(name) decltype(&::archive_##name) name;
  BERTH_ARCHIVE_FUNCTIONS(BERTH_ARCHIVE_MEMBER)
#undef BERTH_ARCHIVE_MEMBER
  decltype(&::archive_errno) last_errno;  // archive_errno (errno is a macro)
};

// Keeps libcurl loaded and initialised (curl_global_init) while alive. The constructor throws
// Error(kUnavailable) naming the library when it cannot be loaded (the next use tries again).
// Every CURL handle must be cleaned up before the last use ends.
class CurlUse {
 public:
  CurlUse();
  ~CurlUse();
  CurlUse(const CurlUse&) = delete;
  CurlUse& operator=(const CurlUse&) = delete;
};

// Keeps libarchive loaded while alive; same contract as CurlUse, for archive handles.
class ArchiveUse {
 public:
  ArchiveUse();
  ~ArchiveUse();
  ArchiveUse(const ArchiveUse&) = delete;
  ArchiveUse& operator=(const ArchiveUse&) = delete;
};

// The function tables of the loaded libraries. Valid only while a CurlUse (ArchiveUse) is alive:
// called without one they throw Error(kInternal) rather than return pointers into a library that
// may be gone.
const CurlApi& Curl();
const ArchiveApi& Archive();

// How many times each library has been loaded since the process started (for tests and logs).
int CurlLoads();
int ArchiveLoads();

// The SONAMEs Curl() and Archive() load.
const char* CurlSoname();
const char* ArchiveSoname();

}  // namespace berth::image
