// process.user resolution against the image's /etc/passwd and /etc/group.
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>

#include "common/error.h"
#include "oci/spec.h"

namespace berth::oci {

namespace {

// Reads <rootfs>/<rel> with every path component resolved inside rootfs (symlinks included), so
// a hostile image cannot point /etc/passwd at the host's files. "" when it does not exist.
std::string ReadInRoot(const std::string& rootfs, const char* rel) {
  int root = ::open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) ThrowErrno("failed to open container rootfs " + rootfs);
  struct open_how how = {};
  how.flags = O_RDONLY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(::syscall(SYS_openat2, root, rel, &how, sizeof how));
  int err = errno;
  ::close(root);
  if (fd < 0) {
    if (err == ENOENT || err == ENOTDIR) return "";
    ThrowErrno("failed to open " + rootfs + "/" + rel, err);
  }
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > (8u << 20)) {
      ::close(fd);
      throw Error(Code::kInvalidArgument, rootfs + "/" + rel + " is larger than 8 MiB");
    }
  }
  ::close(fd);
  return out;
}

std::vector<std::vector<std::string>> Records(const std::string& text) {
  std::vector<std::vector<std::string>> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f;
    size_t s = 0;
    for (;;) {
      size_t c = line.find(':', s);
      f.push_back(line.substr(s, c == std::string::npos ? std::string::npos : c - s));
      if (c == std::string::npos) break;
      s = c + 1;
    }
    out.push_back(std::move(f));
  }
  return out;
}

std::optional<uint32_t> ParseId(const std::string& s) {
  if (s.empty() || s.size() > 10) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > 0xFFFFFFFFull) return std::nullopt;
  return static_cast<uint32_t>(v);
}

}  // namespace

ResolvedUser ResolveUser(const std::string& rootfs, const std::string& user, const std::string& field) {
  ResolvedUser r;
  if (user.empty()) return r;
  std::string u = user, g;
  size_t colon = user.find(':');
  if (colon != std::string::npos) {
    u = user.substr(0, colon);
    g = user.substr(colon + 1);
    if (g.empty() || g.find(':') != std::string::npos)
      throw Error(Code::kInvalidArgument, field + ": invalid user \"" + user + "\"");
  }
  auto passwd = Records(ReadInRoot(rootfs, "etc/passwd"));
  auto groups = Records(ReadInRoot(rootfs, "etc/group"));
  bool found = false;
  if (auto id = ParseId(u)) {
    r.uid = *id;
    for (const auto& p : passwd)
      if (p.size() >= 4 && ParseId(p[2]) == *id) {
        r.username = p[0];
        r.gid = ParseId(p[3]).value_or(0);
        break;
      }
    found = true;
  } else {
    for (const auto& p : passwd)
      if (p.size() >= 4 && p[0] == u) {
        auto uid = ParseId(p[2]);
        auto gid = ParseId(p[3]);
        if (!uid || !gid)
          throw Error(Code::kInvalidArgument, field + ": malformed /etc/passwd entry for \"" + u + "\"");
        r.uid = *uid;
        r.gid = *gid;
        r.username = u;
        found = true;
        break;
      }
  }
  if (!found)
    throw Error(Code::kInvalidArgument,
                field + ": no user \"" + u + "\" in the image's /etc/passwd");
  if (!g.empty()) {
    if (auto gid = ParseId(g)) {
      r.gid = *gid;
    } else {
      bool gfound = false;
      for (const auto& gr : groups)
        if (gr.size() >= 3 && gr[0] == g) {
          auto gid2 = ParseId(gr[2]);
          if (!gid2) break;
          r.gid = *gid2;
          gfound = true;
          break;
        }
      if (!gfound)
        throw Error(Code::kInvalidArgument,
                    field + ": no group \"" + g + "\" in the image's /etc/group");
    }
  }
  // Groups that list the user as a member (by name), as containerd's WithAdditionalGIDs.
  if (!r.username.empty()) {
    for (const auto& gr : groups) {
      if (gr.size() < 4) continue;
      auto gid = ParseId(gr[2]);
      if (!gid) continue;
      size_t s = 0;
      const std::string& members = gr[3];
      while (s <= members.size()) {
        size_t c = members.find(',', s);
        if (c == std::string::npos) c = members.size();
        if (members.compare(s, c - s, r.username) == 0) {
          bool dup = false;
          for (auto x : r.additional_gids) dup |= x == *gid;
          if (!dup) r.additional_gids.push_back(*gid);
        }
        s = c + 1;
      }
    }
  }
  return r;
}

std::vector<uint32_t> AdditionalGids(const ResolvedUser& user,
                                     const std::vector<uint32_t>& requested, bool strict) {
  std::vector<uint32_t> out;
  auto add = [&out](uint32_t g) {
    if (std::find(out.begin(), out.end(), g) == out.end()) out.push_back(g);
  };
  add(user.gid);
  if (!strict)
    for (auto g : user.additional_gids) add(g);
  for (auto g : requested) add(g);
  return out;
}

}  // namespace berth::oci
