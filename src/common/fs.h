// Small file-system helpers; every error names the path and errno.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace berth::fs {

// Whole file as a string; throws Error (NotFound, ...) naming the path. Refuses files over
// max_size.
std::string ReadFile(const std::string& path, size_t max_size = 64u << 20);
// Writes to "<path>.tmp-XXXX" with exactly `mode` (whatever the umask), fsyncs, renames over path.
// durable = false skips the fsync: for files of the state dir (a tmpfs rebuilt at boot).
void WriteFileAtomic(const std::string& path, std::string_view data, unsigned mode = 0644,
                     bool durable = true);
// mkdir -p; existing directories are fine.
void MkdirAll(const std::string& path, unsigned mode = 0755);
// The inode numbers a RemoveAll freed: lowest, highest and how many (count 0: none).
struct InodeSpan {
  unsigned long long lo = 0, hi = 0, count = 0;
};
// rm -rf that does not cross mount points and never follows symlinks. Missing path is fine.
void RemoveAll(const std::string& path, InodeSpan* removed = nullptr);
bool Exists(const std::string& path);
bool IsDir(const std::string& path);
// The names of a directory's entries (without "." and ".."), in the order readdir gives them.
std::vector<std::string> ListDir(const std::string& dir);
// Joins with exactly one '/' between parts.
std::string Join(std::string_view a, std::string_view b);

}  // namespace berth::fs
