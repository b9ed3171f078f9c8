#include "mount/audit.h"

#include <algorithm>
#include <set>

namespace berth::mount {

namespace {

std::string Normalize(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

std::string Reason(const MountInfo& m, const std::string& requested) {
  std::string r = m.fs_type + " on " + m.mount_point + " is writable (per-mount options " +
                  m.options + ", super options " + (m.super_options.empty() ? "none" : m.super_options) + ")";
  if (m.mount_point == requested)
    r += ": the mount requested read-only is itself writable";
  else
    r += " below read-only " + requested;
  return r;
}

}  // namespace

std::vector<AuditFinding> AuditReadOnly(const std::vector<MountInfo>& mounts,
                                        const std::vector<std::string>& readonly_paths) {
  std::vector<std::string> requests;
  if (!readonly_paths.empty()) {
    for (const auto& p : readonly_paths) requests.push_back(Normalize(p));
  } else {
    for (const auto& m : mounts)
      if (m.ReadOnly() && m.mount_point != "/") requests.push_back(Normalize(m.mount_point));
  }
  std::sort(requests.begin(), requests.end());
  requests.erase(std::unique(requests.begin(), requests.end()), requests.end());

  std::vector<AuditFinding> out;
  std::set<int> seen;
  for (const auto& m : mounts) {
    if (!m.Writable() || seen.count(m.id)) continue;
    // The closest (longest) request at or above this mount.
    const std::string* best = nullptr;
    for (const auto& r : requests)
      if (PathAtOrUnder(m.mount_point, r) && (!best || r.size() > best->size())) best = &r;
    if (!best) continue;
    // A mount stacked on the very path of an automatic request is the read-only mount's shadow,
    // not a submount; only explicit requests check the top itself.
    if (readonly_paths.empty() && m.mount_point == *best) continue;
    seen.insert(m.id);
    out.push_back({*best, m.mount_point, m.fs_type, m.source, m.id, Reason(m, *best)});
  }
  return out;
}

}  // namespace berth::mount
