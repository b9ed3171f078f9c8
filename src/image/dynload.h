// Shared libraries loaded while in use. libarchive (layers, image archives) is not linked into
// berthd: it and the libraries it depends on (libxml2, ICU...) would cost every start their load
// time and an idle berthd memory although most of its life is spent neither unpacking nor
// importing. (Registry transfers run in berth-fetch, a process of its own: image/fetch.h.)
//
// An ArchiveUse keeps libarchive loaded for as long as it lives. The first use dlopens the
// library by its SONAME (taken from the development package at build time) and resolves every
// function berth uses at once, so that a missing symbol is reported up front rather than in the
// middle of an unpack; concurrent and nested uses share that load; when the last use ends, the
// library is unloaded again, and with it every dependency that nothing else holds, and the
// memory freed by the work is given back to the system (malloc_trim). With an idle time set
// (SetArchiveIdleTime; berthd's image service keeps it 30 s), the last use leaves the library
// loaded that long, so that pulls and imports in a row load it once; a thread that lives only
// for that wait unloads it then.
#pragma once

#include <archive.h>
#include <archive_entry.h>

#include <chrono>

namespace berth::image {

namespace dynload {
// dlopen(soname, RTLD_NOW | RTLD_LOCAL). Throws Error(kUnavailable) "<what> (<soname>) cannot be
// loaded: <dlerror>" when the library is not installed or does not load.
void* Open(const char* what, const char* soname);
// dlsym of a function. Throws Error(kInternal) naming the symbol and the library when absent.
void* Symbol(void* handle, const char* soname, const char* name);
}  // namespace dynload

// Each member is the library function of the same name without its prefix:
// Archive().read_new() is archive_read_new().
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

struct ArchiveApi {
#define BERTH_ARCHIVE_MEMBER(name) decltype(&::archive_##name) name;
  BERTH_ARCHIVE_FUNCTIONS(BERTH_ARCHIVE_MEMBER)
#undef BERTH_ARCHIVE_MEMBER
  decltype(&::archive_errno) last_errno;  // archive_errno (errno is a macro)
};

// Keeps libarchive loaded while alive. The constructor throws Error(kUnavailable) naming the
// library when it cannot be loaded (the next use tries again). Every archive handle must be freed
// before the last use ends.
class ArchiveUse {
 public:
  ArchiveUse();
  ~ArchiveUse();
  ArchiveUse(const ArchiveUse&) = delete;
  ArchiveUse& operator=(const ArchiveUse&) = delete;
};

// The function table of the loaded library. Valid only while an ArchiveUse is alive: called
// without one it throws Error(kInternal) rather than return pointers into a library that may be
// gone.
const ArchiveApi& Archive();

// How long libarchive stays loaded after the last use ends (0, the default: it is unloaded then).
void SetArchiveIdleTime(std::chrono::milliseconds idle);

// How many times libarchive has been loaded since the process started (for tests and logs).
int ArchiveLoads();

// The SONAME Archive() loads.
const char* ArchiveSoname();

}  // namespace berth::image
