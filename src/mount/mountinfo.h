// Parsing /proc/<pid>/mountinfo (proc(5)): one mount per line,
//   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
// Paths are unescaped (\040 space, \011 tab, \012 newline, \134 backslash).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace berth::mount {

struct MountInfo {
  int id = 0;
  int parent_id = 0;
  unsigned major = 0;
  unsigned minor = 0;
  std::string root;         // root of the mount within its file system
  std::string mount_point;  // relative to the reader's root
  std::string options;      // per-mount options: "rw,nosuid,relatime"
  std::vector<std::string> optional_fields;  // "shared:1", "master:2", "propagate_from:3", ...
  std::string fs_type;
  std::string source;
  std::string super_options;  // per-super-block options: "rw,size=1024k"

  // Per-mount option "ro" present (the mount itself is read-only).
  bool ReadOnly() const;
  // Super-block option "ro" present (the whole file system is read-only).
  bool SuperReadOnly() const;
  // Writes through this mount are possible as far as the options go: per-mount rw and super rw.
  bool Writable() const { return !ReadOnly() && !SuperReadOnly(); }
};

// Parses a whole mountinfo text. Throws Error(kInvalidArgument) "mountinfo line N: <cause>" on a
// malformed line (missing fields, no "-" separator, bad numbers). Empty lines are skipped.
std::vector<MountInfo> ParseMountInfo(std::string_view text);

// Undoes the kernel's octal escapes ("\040" -> " "); other backslashes are kept as they are.
std::string UnescapeMountPath(std::string_view s);

// Reads and parses /proc/<pid>/mountinfo ("self" when pid is 0). Throws Error naming the file.
std::vector<MountInfo> ReadMountInfo(int pid = 0);

// True when `options` (comma-separated) contains exactly `opt`.
bool HasOption(std::string_view options, std::string_view opt);

// True when `path` is `base` or lies below it ("/a/b" is under "/a", "/ab" is not).
bool PathAtOrUnder(std::string_view path, std::string_view base);

}  // namespace berth::mount
