#include "host_view.h"

#include <dirent.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace berth::testing {

namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> Args(int pid) {
  std::string s = Slurp("/proc/" + std::to_string(pid) + "/cmdline");
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t z = s.find('\0', pos);
    if (z == std::string::npos) z = s.size();
    out.push_back(s.substr(pos, z - pos));
    pos = z + 1;
  }
  return out;
}

std::string Unescape(const std::string& s) {  // mountinfo's \040 etc.
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out.push_back(static_cast<char>(std::strtol(s.substr(i + 1, 3).c_str(), nullptr, 8)));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::set<std::string> Names(const std::string& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    out.insert(e.path().filename().string());
  return out;
}

}  // namespace

bool ProcessAlive(int pid) {
  if (pid <= 0) return false;
  std::string st = Slurp("/proc/" + std::to_string(pid) + "/stat");
  size_t r = st.rfind(')');
  return r != std::string::npos && r + 2 < st.size() && st[r + 2] != 'Z' && st[r + 2] != 'X';
}

HostView ScanHost(const std::string& dir, const std::string& state) {
  HostView v;
  DIR* d = ::opendir("/proc");
  while (d) {
    auto* e = ::readdir(d);
    if (!e) break;
    int pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    auto a = Args(pid);
    if (a.empty()) continue;
    bool mon = a[0].find("berth-monitor") != std::string::npos,
         pause = a[0].find("berth-pause") != std::string::npos;
    if (!mon && !pause) continue;
    std::string id, bundle;
    for (size_t i = 1; i + 1 < a.size(); ++i) {
      if (a[i] == "--id") id = a[i + 1];
      if (a[i] == "--bundle") bundle = a[i + 1];
    }
    if (mon && bundle.rfind(state + "/", 0) == 0) v.monitors[id] = pid;
    if (pause && !id.empty() && std::filesystem::exists(state + "/sandboxes/" + id))
      v.pauses[id] = pid;
  }
  if (d) ::closedir(d);
  std::istringstream mi(Slurp("/proc/self/mountinfo"));
  std::string line;
  while (std::getline(mi, line)) {
    std::istringstream ls(line);
    std::string f[5];
    for (auto& x : f) ls >> x;
    std::string mp = Unescape(f[4]);
    if (mp.rfind(dir + "/", 0) == 0) v.mounts.push_back(mp);
  }
  v.netns = Names(state + "/netns");
  v.rro = Names(state + "/rro");
  v.userns = Names(state + "/userns");
  return v;
}

std::vector<std::string> ExistingCgroups(const std::string& cgroups_path) {
  std::vector<std::string> out;
  if (cgroups_path.empty() || cgroups_path[0] != '/') return out;
  std::istringstream mi(Slurp("/proc/self/mountinfo"));
  std::string line;
  std::set<std::string> seen;
  while (std::getline(mi, line)) {
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream rest(line.substr(dash + 3));
    std::string fstype;
    rest >> fstype;
    if (fstype != "cgroup" && fstype != "cgroup2") continue;
    std::istringstream ls(line);
    std::string f[5];
    for (auto& x : f) ls >> x;
    if (f[3] != "/") continue;
    std::string p = Unescape(f[4]) + cgroups_path;
    if (seen.insert(p).second && std::filesystem::exists(p)) out.push_back(p);
  }
  return out;
}

std::pair<std::string, std::string> StateOwner(const std::string& state, const std::string& path) {
  if (path.rfind(state + "/", 0) != 0) return {"", ""};
  std::string rel = path.substr(state.size() + 1);
  size_t s = rel.find('/');
  if (s == std::string::npos) return {"", ""};
  std::string kind = rel.substr(0, s), rest = rel.substr(s + 1);
  std::string id = rest.substr(0, rest.find('/'));
  if (kind == "containers" || kind == "sandboxes" || kind == "netns" || kind == "rro" ||
      kind == "userns")
    return {kind, id};
  return {"", ""};
}

}  // namespace berth::testing
