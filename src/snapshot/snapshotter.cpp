// The overlayfs and native snapshotters share their bookkeeping: snapshots live in
// <root>/snapshots/<id>/. Committed snapshots (key -> id, parent, creation time) are recorded in
// <root>/metadata.json, rewritten atomically and durably when they change; an active snapshot or
// a view is recorded in <root>/snapshots/<id>/meta.json, written once when it is made (a new
// file: making a container's rootfs rewrites nothing shared). All under one mutex.
//   overlayfs: <root>/snapshots/<id>/fs (the upper dir) and <root>/snapshots/<id>/work.
//   native:    <root>/snapshots/<id>/fs, a full copy of the parent's tree.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/fs.h"
#include "snapshot/internal.h"
#include "snapshot/snapshotter.h"

namespace berth::snapshot {

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kView:
      return "view";
    case Kind::kActive:
      return "active";
    case Kind::kCommitted:
      return "committed";
  }
  return "unknown";
}

namespace {

Kind ParseKind(const std::string& s) {
  if (s == "view") return Kind::kView;
  if (s == "active") return Kind::kActive;
  if (s == "committed") return Kind::kCommitted;
  throw Error(Code::kInternal, "snapshot metadata: unknown kind \"" + s + "\"");
}

struct Record {
  int64_t id = 0;
  Kind kind = Kind::kActive;
  std::string parent;
  int64_t created = 0;
};

class FileSnapshotter : public Snapshotter {
 public:
  FileSnapshotter(std::string root, bool overlay)
      : root_(std::move(root)), overlay_(overlay), placement_(MadeDir(root_ + "/snapshots")) {
    Load();
    CleanupOrphans();
  }

  std::string Name() const override { return overlay_ ? "overlayfs" : "native"; }

  std::vector<Mount> Prepare(const std::string& key, const std::string& parent) override {
    return Create(Kind::kActive, key, parent);
  }
  std::vector<Mount> View(const std::string& key, const std::string& parent) override {
    return Create(Kind::kView, key, parent);
  }

  std::vector<Mount> Mounts(const std::string& key) override {
    std::lock_guard<std::mutex> l(mu_);
    return MountsLocked(key, Get(key));
  }

  std::string ApplyDir(const std::string& key) override {
    std::lock_guard<std::mutex> l(mu_);
    const Record& r = Get(key);
    if (r.kind != Kind::kActive)
      throw Error(Code::kFailedPrecondition,
                  "snapshot " + key + " is " + KindName(r.kind) + ", not active");
    return FsDir(r.id);
  }

  void Commit(const std::string& name, const std::string& key) override {
    DoCommit(name, key, nullptr);
  }

  bool CanRebase() const override { return overlay_; }

  void CommitOnto(const std::string& name, const std::string& key,
                  const std::string& parent) override {
    if (!overlay_)
      throw Error(Code::kUnimplemented, "commit " + key + ": the native snapshotter cannot rebase");
    DoCommit(name, key, &parent);
  }

  void DoCommit(const std::string& name, const std::string& key, const std::string* parent) {
    // metadata.json first: a crash before the active record is removed leaves both, and the
    // committed one wins on load.
    CheckKey(name);
    std::lock_guard<std::mutex> l(mu_);
    Record r = Get(key);
    if (r.kind != Kind::kActive)
      throw Error(Code::kFailedPrecondition,
                  "commit " + key + ": snapshot is " + KindName(r.kind) + ", not active");
    if (parent) {
      if (!r.parent.empty())
        throw Error(Code::kFailedPrecondition,
                    "commit " + key + ": prepared on " + r.parent + ", cannot rebase");
      if (!parent->empty()) {
        const Record& p = Get(*parent);
        if (p.kind != Kind::kCommitted)
          throw Error(Code::kFailedPrecondition, "commit " + key + ": parent " + *parent + " is " +
                                                     KindName(p.kind) + ", not committed");
      }
    }
    if (snaps_.count(name))
      throw Error(Code::kAlreadyExists, "commit " + key + ": snapshot " + name + " already exists");
    for (auto& [k, s] : snaps_)
      if (s.parent == key)
        throw Error(Code::kFailedPrecondition,
                    "commit " + key + ": snapshot " + k + " is based on it");
    if (overlay_) fs::RemoveAll(Dir(r.id) + "/work");
    r.kind = Kind::kCommitted;
    if (parent) r.parent = *parent;
    auto saved = snaps_;
    snaps_.erase(key);
    snaps_[name] = r;
    try {
      Save();
    } catch (...) {
      snaps_ = saved;
      throw;
    }
    ::unlink(MetaPath(r.id).c_str());
  }

  void Remove(const std::string& key) override {
    Record r;
    {
      std::lock_guard<std::mutex> l(mu_);
      r = Get(key);
      for (auto& [k, s] : snaps_)
        if (s.parent == key)
          throw Error(Code::kFailedPrecondition,
                      "remove snapshot " + key + ": snapshot " + k + " is based on it");
      snaps_.erase(key);
      // The record first: a crash leaves an orphan directory that the next start removes.
      if (r.kind == Kind::kCommitted) {
        try {
          Save();
        } catch (...) {
          snaps_[key] = r;
          throw;
        }
      } else if (::unlink(MetaPath(r.id).c_str()) != 0 && errno != ENOENT) {
        int err = errno;
        snaps_[key] = r;
        ThrowErrno("remove snapshot " + key + ": " + MetaPath(r.id), err);
      }
    }
    // Outside the lock: the directory is no snapshot's any more (ids are not reused), and
    // unmounting and deleting a container's files takes a while (it runs at low priority after
    // a removal's reply) while others make snapshots.
    RemoveDir(r.id);
  }

  std::optional<Info> Stat(const std::string& key) override {
    std::lock_guard<std::mutex> l(mu_);
    auto it = snaps_.find(key);
    if (it == snaps_.end()) return std::nullopt;
    return ToInfo(it->first, it->second);
  }

  Usage GetUsage(const std::string& key) override {
    int64_t id;
    {
      std::lock_guard<std::mutex> l(mu_);
      id = Get(key).id;
    }
    return internal::DiskUsage(FsDir(id));
  }

  std::vector<Info> List() override {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<Info> out;
    for (auto& [k, r] : snaps_) out.push_back(ToInfo(k, r));
    return out;
  }

 private:
  static void CheckKey(const std::string& key) {
    if (key.empty() || key.size() > 4096 || key.find('\0') != std::string::npos)
      throw Error(Code::kInvalidArgument, "invalid snapshot key \"" + key.substr(0, 100) + "\"");
  }
  static Info ToInfo(const std::string& name, const Record& r) {
    return Info{name, r.parent, r.kind, r.created};
  }
  std::string Dir(int64_t id) const { return root_ + "/snapshots/" + std::to_string(id); }
  std::string FsDir(int64_t id) const { return Dir(id) + "/fs"; }
  std::string MetaPath(int64_t id) const { return Dir(id) + "/meta.json"; }

  const Record& Get(const std::string& key) const {
    auto it = snaps_.find(key);
    if (it == snaps_.end()) throw Error(Code::kNotFound, "snapshot " + key + ": not found");
    return it->second;
  }

  // Ids of key and its ancestors, nearest first.
  std::vector<int64_t> Chain(const std::string& key) const {
    std::vector<int64_t> ids;
    std::string k = key;
    while (!k.empty()) {
      const Record& r = Get(k);
      ids.push_back(r.id);
      k = r.parent;
      if (ids.size() > 100000)
        throw Error(Code::kInternal, "snapshot " + key + ": parent chain loops");
    }
    return ids;
  }

  std::vector<Mount> Create(Kind kind, const std::string& key, const std::string& parent) {
    CheckKey(key);
    std::lock_guard<std::mutex> l(mu_);
    if (snaps_.count(key)) throw Error(Code::kAlreadyExists, "snapshot " + key + " already exists");
    if (!parent.empty()) {
      const Record& p = Get(parent);
      if (p.kind != Kind::kCommitted)
        throw Error(Code::kFailedPrecondition, "snapshot " + key + ": parent " + parent + " is " +
                                                   KindName(p.kind) + ", not committed");
    }
    if (next_id_ >= reserved_) {
      // Ids come from a block recorded in metadata.json, so that none is used twice, also after
      // a restart, without a metadata.json write per snapshot.
      int64_t old = reserved_;
      reserved_ = next_id_ + kIdBlock;
      try {
        Save(/*durable=*/false);  // committed snapshots save it durably; active ones need not
      } catch (...) {
        reserved_ = old;
        throw;
      }
    }
    Record r;
    r.id = next_id_++;
    r.kind = kind;
    r.parent = parent;
    r.created = static_cast<int64_t>(::time(nullptr));
    std::string dir = Dir(r.id);
    try {
      RemoveTree(dir);
      placement_.MakeDir(std::to_string(r.id), 0700);
      if (overlay_) {
        fs::MkdirAll(dir + "/fs", 0755);
        if (kind == Kind::kActive) fs::MkdirAll(dir + "/work", 0700);
      } else if (parent.empty()) {
        fs::MkdirAll(dir + "/fs", 0755);
      } else {
        internal::CopyTree(FsDir(Get(parent).id), dir + "/fs");
      }
      WriteMeta(key, r);  // not durable: see Save()
      snaps_[key] = r;
    } catch (...) {
      snaps_.erase(key);
      try {
        RemoveDir(r.id);
      } catch (...) {
      }
      throw;
    }
    return MountsLocked(key, r);
  }

  std::vector<Mount> MountsLocked(const std::string& key, const Record& r) const {
    std::string ro = r.kind == Kind::kActive ? "rw" : "ro";
    if (!overlay_) return {Mount{"bind", FsDir(r.id), {ro, "rbind"}}};
    if (r.kind == Kind::kActive) {
      if (r.parent.empty()) return {Mount{"bind", FsDir(r.id), {"rw", "rbind"}}};
      std::string lower;
      for (int64_t id : Chain(r.parent)) lower += (lower.empty() ? "" : ":") + FsDir(id);
      std::vector<std::string> opts = BaseOverlayOptions();
      opts.push_back("workdir=" + Dir(r.id) + "/work");
      opts.push_back("upperdir=" + FsDir(r.id));
      opts.push_back("lowerdir=" + lower);
      return {Mount{"overlay", "overlay", opts}};
    }
    // Read-only: a view (or committed snapshot) with a single layer is a read-only bind mount.
    std::vector<int64_t> ids =
        r.kind == Kind::kView ? (r.parent.empty() ? std::vector<int64_t>{r.id} : Chain(r.parent))
                              : Chain(key);
    if (ids.size() == 1) return {Mount{"bind", FsDir(ids[0]), {"ro", "rbind"}}};
    std::string lower;
    for (int64_t id : ids) lower += (lower.empty() ? "" : ":") + FsDir(id);
    std::vector<std::string> opts = BaseOverlayOptions();
    opts.push_back("lowerdir=" + lower);
    return {Mount{"overlay", "overlay", opts}};
  }

  // Like containerd: turn the overlay inode index off where the module knows the option, so that
  // one layer can be the lower dir of many overlays and snapshots can be moved between hosts.
  static std::vector<std::string> BaseOverlayOptions() {
    static const bool index = fs::Exists("/sys/module/overlay/parameters/index");
    if (index) return {"index=off"};
    return {};
  }

  void RemoveDir(int64_t id) {
    std::string dir = Dir(id);
    UnmountAll(dir + "/fs");
    RemoveTree(dir);
  }

  void RemoveTree(const std::string& dir) {
    fs::InodeSpan span;
    try {
      fs::RemoveAll(dir, &span);
    } catch (...) {
      placement_.Freed(span);
      throw;
    }
    placement_.Freed(span);
  }

  static std::string MadeDir(const std::string& dir) {
    fs::MkdirAll(dir, 0700);
    return dir;
  }

  static nlohmann::json ToJSON(const Record& r) {
    return {{"id", r.id}, {"kind", KindName(r.kind)}, {"parent", r.parent}, {"created", r.created}};
  }
  static Record FromJSON(const nlohmann::json& v) {
    Record r;
    r.id = v.at("id").get<int64_t>();
    r.kind = ParseKind(v.at("kind").get<std::string>());
    r.parent = v.value("parent", "");
    r.created = v.value("created", int64_t{0});
    return r;
  }

  void WriteMeta(const std::string& key, const Record& r) {
    nlohmann::json j = ToJSON(r);
    j["key"] = key;
    fs::WriteFileAtomic(MetaPath(r.id), j.dump(), 0600, /*durable=*/false);
  }

  void Load() {
    std::string path = root_ + "/metadata.json";
    std::vector<std::pair<std::string, Record>> legacy;  // active ones recorded by older versions
    if (fs::Exists(path)) {
      auto j = nlohmann::json::parse(fs::ReadFile(path), nullptr, false);
      if (!j.is_object())
        throw Error(Code::kInternal, "snapshot metadata " + path + ": not valid JSON");
      try {
        next_id_ = j.value("next_id", int64_t{1});
        for (auto& [k, v] : j.at("snapshots").items()) {
          Record r = FromJSON(v);
          if (r.kind == Kind::kCommitted) {
            snaps_[k] = r;
          } else {
            legacy.emplace_back(k, r);
          }
          if (r.id >= next_id_) next_id_ = r.id + 1;
        }
      } catch (const nlohmann::json::exception& e) {
        throw Error(Code::kInternal, "snapshot metadata " + path + ": " + e.what());
      }
    }
    std::map<int64_t, bool> committed;
    for (auto& [k, r] : snaps_) committed[r.id] = true;
    // Active snapshots and views: a record in each directory. One whose id is committed is the
    // leftover of a commit cut short; one that cannot be read makes its directory an orphan.
    for (int64_t id : DirIds()) {
      if (committed.count(id)) {
        ::unlink(MetaPath(id).c_str());
        continue;
      }
      if (id >= next_id_) next_id_ = id + 1;
      if (!fs::Exists(MetaPath(id))) continue;
      try {
        auto j = nlohmann::json::parse(fs::ReadFile(MetaPath(id), 1 << 20));
        Record r = FromJSON(j);
        std::string key = j.at("key").get<std::string>();
        if (r.id != id || r.kind == Kind::kCommitted || key.empty() || snaps_.count(key)) continue;
        snaps_[key] = r;
      } catch (const std::exception&) {
      }
    }
    // Records of older versions move into their directories.
    for (auto& [k, r] : legacy) {
      if (snaps_.count(k) || !fs::IsDir(Dir(r.id))) continue;
      WriteMeta(k, r);
      snaps_[k] = r;
    }
    reserved_ = next_id_;
    if (!legacy.empty()) Save();
  }

  // The ids of the snapshot directories; `leftovers` (optional) gets the names of directories a
  // crash left in the middle of a placement.
  std::vector<int64_t> DirIds(std::vector<std::string>* leftovers = nullptr) const {
    std::vector<int64_t> ids;
    std::string dir = root_ + "/snapshots";
    DIR* d = ::opendir(dir.c_str());
    if (!d) return ids;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (leftovers && internal::Placement::IsLeftover(n)) leftovers->push_back(n);
      if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos || n.size() > 18)
        continue;
      ids.push_back(std::stoll(n));
    }
    ::closedir(d);
    return ids;
  }

  // metadata.json: the committed snapshots (image layers), written durably, and the end of the
  // block of ids handed out. Records of active snapshots and views (a container's rootfs) are not
  // fsynced: they matter only as long as their container, whose record is not durable either,
  // and a record or directory lost with a power cut is swept (CleanupOrphans at start; the
  // lifecycle removes its containers' snapshots).
  void Save(bool durable = true) {
    nlohmann::json j;
    j["next_id"] = std::max(reserved_, next_id_);
    j["snapshots"] = nlohmann::json::object();
    for (auto& [k, r] : snaps_) {
      if (r.kind == Kind::kCommitted) j["snapshots"][k] = ToJSON(r);
    }
    fs::WriteFileAtomic(root_ + "/metadata.json", j.dump(), 0600, durable);
  }

  void CleanupOrphans() {
    std::map<int64_t, bool> known;
    for (auto& [k, r] : snaps_) known[r.id] = true;
    std::vector<int64_t> orphans;
    std::vector<std::string> leftovers;
    for (int64_t id : DirIds(&leftovers)) {
      if (!known.count(id)) orphans.push_back(id);
    }
    for (const auto& n : leftovers) fs::RemoveAll(root_ + "/snapshots/" + n);
    for (int64_t id : orphans) {
      try {
        RemoveDir(id);
      } catch (const Error&) {
      }
    }
  }

  std::string root_;
  bool overlay_;
  internal::Placement placement_;
  std::mutex mu_;
  std::map<std::string, Record> snaps_;
  static constexpr int64_t kIdBlock = 256;
  int64_t next_id_ = 1;   // the next id handed out
  int64_t reserved_ = 1;  // ids below it are covered by metadata.json's next_id
};

}  // namespace

std::unique_ptr<Snapshotter> NewOverlay(const std::string& root) {
  return std::make_unique<FileSnapshotter>(root, true);
}
std::unique_ptr<Snapshotter> NewNative(const std::string& root) {
  return std::make_unique<FileSnapshotter>(root, false);
}

}  // namespace berth::snapshot
