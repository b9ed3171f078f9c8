// Builds tar archives (optionally gzip/zstd compressed) with libarchive for the unpack tests.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace berth::testing {

struct TarEntry {
  std::string name;
  unsigned type = AE_IFREG;
  unsigned perm = 0644;
  std::string data;  // regular files
  std::string link;  // symlink target, or hard link target when hardlink
  bool hardlink = false;
  int64_t uid = 0, gid = 0;
  unsigned rdev_major = 0, rdev_minor = 0;
  int64_t mtime = 1600000000;
  std::map<std::string, std::string> xattrs;
};

enum class TarCompression { kNone, kGzip, kZstd };

inline la_ssize_t TarBuilderWrite(struct archive*, void* ud, const void* buf, size_t n) {
  static_cast<std::string*>(ud)->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

inline std::string BuildTar(const std::vector<TarEntry>& entries,
                            TarCompression c = TarCompression::kNone) {
  std::string out;
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (c == TarCompression::kGzip) archive_write_add_filter_gzip(a);
  if (c == TarCompression::kZstd) archive_write_add_filter_zstd(a);
  archive_write_set_bytes_in_last_block(a, 1);
  if (archive_write_open(a, &out, nullptr, TarBuilderWrite, nullptr) != ARCHIVE_OK)
    throw std::runtime_error(archive_error_string(a));
  for (const auto& t : entries) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, t.name.c_str());
    archive_entry_set_uid(e, t.uid);
    archive_entry_set_gid(e, t.gid);
    archive_entry_set_mtime(e, t.mtime, 0);
    if (t.hardlink) {
      archive_entry_set_filetype(e, AE_IFREG);
      archive_entry_set_perm(e, t.perm);
      archive_entry_set_hardlink(e, t.link.c_str());
      archive_entry_set_size(e, 0);
    } else {
      archive_entry_set_filetype(e, t.type);
      archive_entry_set_perm(e, t.perm);
      if (t.type == AE_IFLNK) archive_entry_set_symlink(e, t.link.c_str());
      if (t.type == AE_IFCHR || t.type == AE_IFBLK) {
        archive_entry_set_rdevmajor(e, t.rdev_major);
        archive_entry_set_rdevminor(e, t.rdev_minor);
      }
      archive_entry_set_size(e, t.type == AE_IFREG ? static_cast<la_int64_t>(t.data.size()) : 0);
    }
    for (auto& [k, v] : t.xattrs) archive_entry_xattr_add_entry(e, k.c_str(), v.data(), v.size());
    if (archive_write_header(a, e) != ARCHIVE_OK) throw std::runtime_error(archive_error_string(a));
    if (!t.hardlink && t.type == AE_IFREG && !t.data.empty())
      archive_write_data(a, t.data.data(), t.data.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

inline TarEntry File(const std::string& name, const std::string& data, unsigned perm = 0644) {
  TarEntry e;
  e.name = name;
  e.data = data;
  e.perm = perm;
  return e;
}
inline TarEntry Dir(const std::string& name, unsigned perm = 0755) {
  TarEntry e;
  e.name = name;
  e.type = AE_IFDIR;
  e.perm = perm;
  return e;
}
inline TarEntry Symlink(const std::string& name, const std::string& target) {
  TarEntry e;
  e.name = name;
  e.type = AE_IFLNK;
  e.perm = 0777;
  e.link = target;
  return e;
}
inline TarEntry Hardlink(const std::string& name, const std::string& target) {
  TarEntry e;
  e.name = name;
  e.hardlink = true;
  e.link = target;
  return e;
}

}  // namespace berth::testing
