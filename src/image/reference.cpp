#include "image/reference.h"

#include <cctype>

#include "common/error.h"

namespace berth::image {
namespace {

constexpr size_t kNameTotalLengthMax = 255;
constexpr size_t kTagMax = 128;
constexpr std::string_view kDefaultDomain = "docker.io";
constexpr std::string_view kLegacyDomain = "index.docker.io";
constexpr std::string_view kOfficialPrefix = "library/";

[[noreturn]] void Invalid(std::string_view s, const std::string& why) {
  throw Error(Code::kInvalidArgument,
              "invalid image reference \"" + std::string(s.substr(0, 300)) + "\": " + why);
}

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }
bool IsHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
bool IsWord(char c) { return IsAlnum(c) || c == '_'; }

// [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*
bool ValidPathComponent(std::string_view c) {
  if (c.empty() || !IsLowerAlnum(c.front()) || !IsLowerAlnum(c.back())) return false;
  size_t i = 0;
  while (i < c.size()) {
    if (IsLowerAlnum(c[i])) {
      ++i;
      continue;
    }
    // a separator run
    size_t j = i;
    while (j < c.size() && !IsLowerAlnum(c[j])) ++j;
    std::string_view sep = c.substr(i, j - i);
    bool ok = sep == "." || sep == "_" || sep == "__" ||
              sep.find_first_not_of('-') == std::string_view::npos;
    if (!ok) return false;
    i = j;
  }
  return true;
}

// (?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])
bool ValidDomainComponent(std::string_view c) {
  if (c.empty() || !IsAlnum(c.front()) || !IsAlnum(c.back())) return false;
  for (char ch : c)
    if (!IsAlnum(ch) && ch != '-') return false;
  return true;
}

// host[:port] where host is dotted domain components or [ipv6].
bool ValidDomain(std::string_view d) {
  if (d.empty()) return false;
  std::string_view host = d, port;
  if (d.front() == '[') {
    size_t close = d.find(']');
    if (close == std::string_view::npos) return false;
    std::string_view v6 = d.substr(1, close - 1);
    if (v6.empty()) return false;
    for (char c : v6)
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':') return false;
    std::string_view rest = d.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
      if (port.empty()) return false;
    }
    host = {};
  } else {
    size_t colon = d.find(':');
    if (colon != std::string_view::npos) {
      host = d.substr(0, colon);
      port = d.substr(colon + 1);
      if (port.empty()) return false;
    }
    size_t start = 0;
    while (true) {
      size_t dot = host.find('.', start);
      std::string_view comp = host.substr(start, dot == std::string_view::npos ? host.npos : dot - start);
      if (!ValidDomainComponent(comp)) return false;
      if (dot == std::string_view::npos) break;
      start = dot + 1;
    }
  }
  for (char c : port)
    if (c < '0' || c > '9') return false;
  return true;
}

bool ValidTag(std::string_view t) {
  if (t.empty() || t.size() > kTagMax || !IsWord(t.front())) return false;
  for (char c : t)
    if (!IsWord(c) && c != '.' && c != '-') return false;
  return true;
}

bool IsHex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!IsHex(c)) return false;
  return true;
}

}  // namespace

bool IsValidDigest(std::string_view digest) {
  size_t colon = digest.find(':');
  if (colon == std::string_view::npos) return false;
  std::string_view alg = digest.substr(0, colon), hex = digest.substr(colon + 1);
  size_t want = 0;
  if (alg == "sha256") want = 64;
  else if (alg == "sha384") want = 96;
  else if (alg == "sha512") want = 128;
  else return false;
  if (hex.size() != want) return false;
  for (char c : hex)
    if (!IsHex(c)) return false;
  return true;
}

std::string Reference::Repository() const { return domain + "/" + path; }

std::string Reference::String() const {
  std::string s = Repository();
  if (!tag.empty()) s += ":" + tag;
  if (!digest.empty()) s += "@" + digest;
  return s;
}

std::string Reference::Familiar() const {
  std::string s;
  std::string first = path.substr(0, path.find('/'));
  bool first_looks_like_host = path.find('/') != std::string::npos &&
                               (first.find_first_of(".:") != std::string::npos || first == "localhost");
  if (domain == kDefaultDomain && !first_looks_like_host) {
    s = path.rfind(kOfficialPrefix, 0) == 0 && path.find('/', kOfficialPrefix.size()) == std::string::npos
            ? path.substr(kOfficialPrefix.size())
            : path;
  } else {
    s = Repository();
  }
  if (!tag.empty()) s += ":" + tag;
  if (!digest.empty()) s += "@" + digest;
  return s;
}

Reference ParseReference(std::string_view s) {
  if (s.empty()) Invalid(s, "empty reference");
  if (s.size() > 4096) Invalid(s, "reference is too long");
  for (char c : s) {
    if (static_cast<unsigned char>(c) <= ' ' || static_cast<unsigned char>(c) >= 0x7f)
      Invalid(s, "contains a space, control or non-ASCII character");
  }
  if (IsHex64(s))
    Invalid(s, "cannot specify 64-byte hexadecimal strings as a repository name (use an image ID "
               "\"sha256:...\" or a name)");

  Reference ref;
  std::string_view rest = s;
  // Digest: everything after the first '@'.
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    std::string_view dg = rest.substr(at + 1);
    if (!IsValidDigest(dg)) {
      if (dg.find(':') == std::string_view::npos)
        Invalid(s, "digest \"" + std::string(dg.substr(0, 140)) + "\" has no algorithm prefix");
      Invalid(s, "invalid digest \"" + std::string(dg.substr(0, 140)) +
                     "\" (want sha256:<64 lowercase hex>, sha384 or sha512)");
    }
    ref.digest = std::string(dg);
    rest = rest.substr(0, at);
  }
  // Tag: after the last ':' that follows the last '/'.
  {
    size_t slash = rest.rfind('/');
    size_t colon = rest.rfind(':');
    if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
      std::string_view tag = rest.substr(colon + 1);
      if (!ValidTag(tag)) {
        if (tag.size() > kTagMax) Invalid(s, "tag is longer than 128 characters");
        Invalid(s, "invalid tag \"" + std::string(tag.substr(0, 140)) +
                       "\" (allowed: letters, digits, '_', '.', '-'; not starting with '.' or '-')");
      }
      ref.tag = std::string(tag);
      rest = rest.substr(0, colon);
    }
  }
  if (rest.empty()) Invalid(s, "repository name is empty");
  // Domain: the first component when it looks like a host (has '.' or ':', is "localhost", or has
  // uppercase letters).
  std::string_view remote = rest;
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    ref.domain = std::string(kDefaultDomain);
  } else {
    std::string_view first = rest.substr(0, slash);
    bool has_upper = false;
    for (char c : first) has_upper |= (c >= 'A' && c <= 'Z');
    if (first.find('.') == std::string_view::npos && first.find(':') == std::string_view::npos &&
        first != "localhost" && !has_upper) {
      ref.domain = std::string(kDefaultDomain);
    } else {
      if (!ValidDomain(first)) Invalid(s, "invalid registry host \"" + std::string(first) + "\"");
      ref.domain = std::string(first);
      remote = rest.substr(slash + 1);
    }
  }
  if (ref.domain == kLegacyDomain) ref.domain = std::string(kDefaultDomain);
  if (remote.empty()) Invalid(s, "repository path is empty");
  // Path components.
  size_t start = 0;
  while (true) {
    size_t sl = remote.find('/', start);
    std::string_view comp = remote.substr(start, sl == std::string_view::npos ? remote.npos : sl - start);
    if (comp.empty()) Invalid(s, "repository path has an empty component");
    for (char c : comp)
      if (c >= 'A' && c <= 'Z') Invalid(s, "repository name must be lowercase");
    if (!ValidPathComponent(comp))
      Invalid(s, "invalid repository path component \"" + std::string(comp.substr(0, 140)) +
                     "\" (allowed: lowercase letters, digits and separators '.', '_', '__', '-')");
    if (sl == std::string_view::npos) break;
    start = sl + 1;
  }
  ref.path = std::string(remote);
  if (ref.domain == kDefaultDomain && ref.path.find('/') == std::string::npos)
    ref.path = std::string(kOfficialPrefix) + ref.path;
  // Length of the normalised name (domain + path), as in distribution/reference.
  if (ref.Repository().size() > kNameTotalLengthMax)
    Invalid(s, "repository name must not be more than 255 characters");
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

}  // namespace berth::image
