#include "image/service.h"

#include <fcntl.h>
#include <ftw.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <future>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <thread>
#include <unordered_set>

#include "common/error.h"
#include "common/fs.h"
#include "content/store.h"
#include "image/dynload.h"
#include "image/hosts.h"
#include "image/manifest.h"
#include "image/pipe.h"
#include "image/progress.h"
#include "image/reference.h"
#include "image/registry.h"
#include "image/unpack.h"
#include "snapshot/snapshotter.h"
#include "store/db.h"
#include "store/images.h"

namespace berth::image {

namespace {

constexpr const char* kLabelManifest = "berth.manifest";  // platform manifest digest
constexpr const char* kLabelManaged = "io.cri-containerd.image";

bool IsHexString(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return !s.empty();
}

int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string RandomKey() {
  static std::atomic<uint64_t> counter{0};
  return std::to_string(::getpid()) + "-" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) + "-" +
         std::to_string(counter++);
}

std::string NormalizeOrEmpty(const std::string& s) {
  try {
    return ParseReference(s).String();
  } catch (const Error&) {
    return "";
  }
}

}  // namespace

struct ImageService::Impl {
  Options opts;
  Platform platform;
  std::unique_ptr<content::Store> content;
  std::unique_ptr<snapshot::Snapshotter> snap;
  std::shared_ptr<store::Database> db;
  std::unique_ptr<store::ImageStore> images;
  std::set<std::string> pinned;  // normalised names

  std::mutex inflight_mu;
  std::map<std::string, std::shared_future<Image>> pulls;      // by normalised reference
  std::map<std::string, std::shared_future<void>> blobs;       // by digest
  std::map<std::string, std::shared_ptr<PullState>> progress;  // by normalised reference

  // Pulls and imports hold it shared; the garbage collector takes it exclusively (try_lock) so it
  // never deletes content an operation in progress is about to reference.
  std::shared_mutex gc_mu;
  std::atomic<bool> gc_pending{false};
  std::mutex meta_mu;  // record updates and removals

  // ---- records -> Image ----
  bool IsPinned(const std::vector<store::ImageRecord>& recs) const {
    for (const auto& r : recs)
      if (pinned.count(r.name)) return true;
    return false;
  }

  Image Build(const std::string& config_digest, const std::vector<store::ImageRecord>& recs) {
    Image img;
    img.id = config_digest;
    for (const auto& r : recs) {
      if (r.name.find('@') != std::string::npos) {
        if (NormalizeOrEmpty(r.name) == r.name) img.repo_digests.push_back(r.name);
      } else if (NormalizeOrEmpty(r.name) == r.name) {
        img.repo_tags.push_back(r.name);
      }
      img.size = std::max(img.size, r.size);
      if (img.chain_id.empty()) img.chain_id = r.chain_id;
      if (img.manifest_digest.empty()) {
        auto it = r.labels.find(kLabelManifest);
        img.manifest_digest = it != r.labels.end() ? it->second : r.target_digest;
      }
    }
    std::sort(img.repo_tags.begin(), img.repo_tags.end());
    std::sort(img.repo_digests.begin(), img.repo_digests.end());
    img.repo_digests.erase(std::unique(img.repo_digests.begin(), img.repo_digests.end()),
                           img.repo_digests.end());
    img.pinned = IsPinned(recs);
    try {
      img.config_json = content->Read(config_digest, kMaxConfigSize);
      img.user = ParseConfig(img.config_json).user;
    } catch (const Error& e) {
      spdlog::warn("image {}: cannot read its config: {}", config_digest, e.what());
    }
    return img;
  }

  // Records of the image named by an id, a reference, or a unique id prefix ("sha256:" optional,
  // as containerd's digest set resolves them); empty when absent. Throws Error(kInvalidArgument)
  // when a prefix matches several images.
  std::vector<store::ImageRecord> Find(const std::string& s, std::string* config_digest) {
    if (s.empty()) return {};
    std::string id;
    if (s.rfind("sha256:", 0) == 0 && IsValidDigest(s)) {
      id = s;
    } else if (s.size() == 64 && IsHexString(s)) {
      id = "sha256:" + s;
    }
    if (!id.empty()) {
      auto recs = images->ByConfig(id);
      if (!recs.empty() && config_digest) *config_digest = id;
      if (!recs.empty() || s.size() != 64) return recs;
    }
    if (auto recs = FindByReference(s, config_digest); !recs.empty()) return recs;
    id = FindByIdPrefix(s.rfind("sha256:", 0) == 0 ? s.substr(7) : s);
    if (id.empty()) return {};
    if (config_digest) *config_digest = id;
    return images->ByConfig(id);
  }

  std::vector<store::ImageRecord> FindByReference(const std::string& s,
                                                  std::string* config_digest) {
    Reference ref;
    try {
      ref = ParseReference(s);
    } catch (const Error&) {
      return {};
    }
    std::optional<store::ImageRecord> rec = images->Get(ref.String());
    if (!rec && !ref.digest.empty()) rec = images->Get(ref.Repository() + "@" + ref.digest);
    if (!rec) return {};
    if (config_digest) *config_digest = rec->config_digest;
    return images->ByConfig(rec->config_digest);
  }

  // The config digest whose hex starts with `hex`; "" when none does.
  std::string FindByIdPrefix(const std::string& hex) {
    if (hex.empty() || hex.size() >= 64 || !IsHexString(hex)) return "";
    std::set<std::string> found;
    for (const auto& r : images->List())
      if (r.config_digest.size() > 7 && r.config_digest.compare(7, hex.size(), hex) == 0)
        found.insert(r.config_digest);
    if (found.size() > 1) {
      throw Error(Code::kInvalidArgument, "ID prefix \"" + hex + "\" is ambiguous: it matches " +
                                              std::to_string(found.size()) + " images");
    }
    return found.empty() ? "" : *found.begin();
  }

  // ---- pulling ----
  // The bytes a resumed download already has, from its partial file; false when cancelled.
  static bool SendPartial(content::Store::Writer& w, ChunkWriter& out, int64_t& sent) {
    const std::string path = w.DataPath();
    const int64_t have = w.Offset();
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) ThrowErrno("open " + path);
    std::string buf(1 << 20, '\0');
    bool ok = true;
    while (ok && sent < have) {
      ssize_t n = ::pread(fd, buf.data(),
                          static_cast<size_t>(std::min<int64_t>(1 << 20, have - sent)), sent);
      if (n <= 0) {
        ::close(fd);
        throw Error(Code::kInternal, "read " + path + ": short read");
      }
      ok = out.Write(buf.data(), static_cast<size_t>(n));
      sent += n;
    }
    ::close(fd);
    return ok;
  }

  // Makes sure the blob is in the content store: fetched once however many pulls want it at the
  // same time. With `stream`, its bytes also go into the pipe as they arrive (or from the store
  // when it is there, or once another pull has fetched it).
  void EnsureBlob(RegistryClient& client, const Descriptor& d, std::atomic<int64_t>& received,
                  ChunkPipe* stream = nullptr) {
    auto from_store = [&] {
      if (stream) ProduceFromFile(content->Path(d.digest), *stream);
    };
    if (content->Has(d.digest)) return from_store();
    std::promise<void> promise;
    std::shared_future<void> fut;
    bool owner = false;
    {
      std::lock_guard<std::mutex> lk(inflight_mu);
      auto it = blobs.find(d.digest);
      if (it != blobs.end()) {
        fut = it->second;
      } else {
        fut = promise.get_future().share();
        blobs.emplace(d.digest, fut);
        owner = true;
      }
    }
    if (!owner) {
      fut.get();
      return from_store();
    }
    bool fetched = false;
    try {
      if (!content->Has(d.digest)) {
        Fetch(client, d, received, stream);
        fetched = true;
      }
      promise.set_value();
    } catch (...) {
      promise.set_exception(std::current_exception());
    }
    {
      std::lock_guard<std::mutex> lk(inflight_mu);
      blobs.erase(d.digest);
    }
    fut.get();
    if (!fetched) from_store();
  }

  // Downloads a blob into the store; with `stream`, tees its bytes into the pipe (a partial
  // download from an earlier attempt is sent first from its file).
  void Fetch(RegistryClient& client, const Descriptor& d, std::atomic<int64_t>& received,
             ChunkPipe* stream) {
    auto w = content->OpenWriter(d.digest);
    if (!stream) return client.FetchBlob(d, *w, &received);
    ChunkWriter out(*stream);
    int64_t forwarded = 0;
    if (w->Offset() > 0 && !SendPartial(*w, out, forwarded)) return;  // cancelled
    RegistryClient::Tee tee = [&](int64_t at, const char* p, size_t n) {
      if (n == 0) return out.Flush();  // all in: the last bytes go before the blob's commit
      int64_t end = at + static_cast<int64_t>(n);
      if (end <= forwarded) return true;  // sent already (a restart from zero)
      if (at > forwarded) return false;   // cannot happen: the writer appends
      size_t skip = static_cast<size_t>(forwarded - at);
      forwarded = end;
      return out.Write(p + skip, n - skip);
    };
    client.FetchBlob(d, *w, &received, &tee);
    out.Flush();
  }

  void FetchLayers(RegistryClient& client, PullState& ps) {
    std::vector<size_t> todo;
    std::set<std::string> seen;
    for (size_t i = 0; i < ps.layers.size(); ++i) {
      if (!seen.insert(ps.layers[i].digest).second) continue;
      if (content->Has(ps.layers[i].digest)) {
        ps.state[i] = PullState::kExists;
        continue;
      }
      todo.push_back(i);
    }
    if (todo.empty()) return;
    std::atomic<size_t> next{0};
    std::mutex err_mu;
    std::exception_ptr first_error;
    auto worker = [&] {
      for (size_t k; (k = next++) < todo.size();) {
        {
          std::lock_guard<std::mutex> lk(err_mu);
          if (first_error) return;
        }
        const size_t i = todo[k];
        try {
          ps.state[i] = PullState::kPulling;
          EnsureBlob(client, ps.layers[i], ps.received[i]);
          ps.state[i] = PullState::kDone;
        } catch (...) {
          std::lock_guard<std::mutex> lk(err_mu);
          if (!first_error) first_error = std::current_exception();
        }
      }
    };
    RunWorkers(todo.size(), worker);
    if (first_error) std::rethrow_exception(first_error);
  }

  // Reads a blob from the content store, or fetches and stores it.
  std::string SmallBlob(RegistryClient& client, const Descriptor& d, size_t max, bool manifest) {
    if (content->Has(d.digest)) return content->Read(d.digest, max);
    std::string body = client.FetchBytes(d, max, manifest);
    content->Write(body, d.digest);
    return body;
  }

  struct Resolved {
    std::string target_digest, target_media_type, manifest_digest;
    Manifest manifest;
    std::string config_digest;
    ImageConfig config;
  };

  Resolved ResolveManifest(const std::string& top_digest, const std::string& top_type,
                           const std::string& top_body,
                           const std::function<std::string(const Descriptor&, size_t, bool)>& get,
                           const std::string& name) {
    Resolved r;
    r.target_digest = top_digest;
    r.target_media_type = top_type;
    std::string body = top_body, type = top_type;
    r.manifest_digest = top_digest;
    if (mediatype::IsIndex(top_type)) {
      Index idx = ParseIndex(top_body, top_type);
      int i = SelectPlatform(idx, platform);
      if (i < 0) {
        std::string avail;
        for (const auto& m : idx.manifests)
          if (m.has_platform)
            avail += (avail.empty() ? "" : ", ") + PlatformString(NormalizePlatform(m.platform));
        throw Error(Code::kNotFound, "image " + name + " has no manifest for platform " +
                                         PlatformString(platform) +
                                         " (available: " + (avail.empty() ? "none" : avail) + ")");
      }
      const Descriptor& md = idx.manifests[static_cast<size_t>(i)];
      body = get(md, kMaxManifestSize, true);
      type = md.media_type.empty() ? DetectManifestType(body, "") : md.media_type;
      r.manifest_digest = md.digest;
    }
    r.manifest = ParseManifest(body, type);
    r.config_digest = r.manifest.config.digest;
    r.config = ParseConfig(get(r.manifest.config, kMaxConfigSize, false));
    if (r.config.diff_ids.size() != r.manifest.layers.size())
      throw Error(Code::kInvalidArgument, "image " + name + ": config has " +
                                              std::to_string(r.config.diff_ids.size()) +
                                              " diff_ids but the manifest has " +
                                              std::to_string(r.manifest.layers.size()) + " layers");
    return r;
  }

  std::string UnpackImage(const Resolved& r) {
    std::vector<std::string> digests;
    for (const auto& l : r.manifest.layers) digests.push_back(l.digest);
    if (digests.empty()) return "";
    return Unpack(*content, *snap, digests, r.config.diff_ids, opts.pull_with_sync_fs);
  }

  // Fetches and unpacks the layers: each in its own pipeline (fetch -> verify -> decompress ->
  // unpack) into its own staging snapshot, up to max_concurrent_downloads at a time, committed in
  // order once all are in. Snapshotters that cannot rebase fetch in parallel and unpack in order.
  // Returns the top chain id. A failure removes every staging snapshot.
  std::string PullLayers(RegistryClient& client, const Resolved& r, PullState& ps) {
    const auto& layers = r.manifest.layers;
    if (layers.empty()) return "";
    spdlog::info("pulling {}: {} layer(s), {} bytes", ps.ref, layers.size(), ps.Size());
    if (!snap->CanRebase()) {
      FetchLayers(client, ps);
      return UnpackImage(r);
    }
    std::vector<std::string> chains, staged(layers.size());
    for (size_t i = 0; i < layers.size(); ++i) {
      content::CheckDigest(r.config.diff_ids[i]);
      chains.push_back(i ? ChainID({chains[i - 1], r.config.diff_ids[i]}) : r.config.diff_ids[i]);
    }
    std::mutex mu;
    std::exception_ptr first_error;
    std::atomic<size_t> next{0};
    auto worker = [&] {
      for (size_t i; (i = next++) < layers.size();) {
        {
          std::lock_guard<std::mutex> lk(mu);
          if (first_error) return;
        }
        try {
          ps.state[i] = PullState::kPulling;
          bool unpacked = PullLayer(client, layers[i], r.config.diff_ids[i], chains[i],
                                    ps.received[i], mu, staged[i]);
          ps.state[i] = unpacked ? PullState::kDone : PullState::kExists;
        } catch (...) {
          std::lock_guard<std::mutex> lk(mu);
          if (!first_error) first_error = std::current_exception();
        }
      }
    };
    RunWorkers(layers.size(), worker);
    size_t committed = 0;
    try {
      if (first_error) std::rethrow_exception(first_error);
      for (; committed < layers.size(); ++committed) {
        if (staged[committed].empty()) continue;
        try {
          snap->CommitOnto(chains[committed], staged[committed],
                           committed ? chains[committed - 1] : "");
        } catch (const Error& e) {
          if (e.code() != Code::kAlreadyExists) throw;
          snap->Remove(staged[committed]);  // unpacked by a concurrent pull
        }
      }
    } catch (...) {
      for (size_t i = committed; i < staged.size(); ++i) RemoveQuietly(staged[i]);
      throw;
    }
    return chains.back();
  }

  void RunWorkers(size_t jobs, const std::function<void()>& worker) {
    size_t n =
        std::min<size_t>(jobs, static_cast<size_t>(std::max(1, opts.max_concurrent_downloads)));
    std::vector<std::thread> threads;
    for (size_t i = 1; i < n; ++i) threads.emplace_back(worker);
    worker();
    for (auto& t : threads) t.join();
  }

  void RemoveQuietly(const std::string& key) {
    if (key.empty()) return;
    try {
      if (snap->Stat(key)) snap->Remove(key);
    } catch (const std::exception& e) {
      spdlog::warn("staging snapshot {}: {}", key, e.what());
    }
  }

  // One layer: only fetched when its chain is unpacked already, else streamed into a staging
  // snapshot (recorded in `staged` under mu) and checked against its DiffID. Returns false when
  // the layer was unpacked already.
  bool PullLayer(RegistryClient& client, const Descriptor& d, const std::string& diff_id,
                 const std::string& chain, std::atomic<int64_t>& received, std::mutex& mu,
                 std::string& staged) {
    if (auto info = snap->Stat(chain); info && info->kind == snapshot::Kind::kCommitted) {
      EnsureBlob(client, d, received);
      return false;
    }
    std::string key = "extract-" + RandomKey() + "-" + chain;
    snap->Prepare(key, "");
    {
      std::lock_guard<std::mutex> lk(mu);
      staged = key;
    }
    const std::string what = "layer " + d.digest;
    std::string dir = snap->ApplyDir(key);
    ApplyResult res = ApplyLayerStream([&](ChunkPipe& p) { EnsureBlob(client, d, received, &p); },
                                       what, dir, true);
    if (res.diff_id != diff_id)
      throw Error(Code::kInvalidArgument, what + ": diff id mismatch: image config says " +
                                              diff_id + ", content is " + res.diff_id);
    if (opts.pull_with_sync_fs) SyncFs(dir, what);
    return true;
  }

  void Record(const std::vector<std::string>& names, const Resolved& r,
              const std::string& chain_id) {
    int64_t size = r.manifest.config.size;
    for (const auto& l : r.manifest.layers) size += l.size;
    std::vector<store::ImageRecord> recs;
    for (const std::string& n : names) {
      store::ImageRecord rec;
      rec.name = n;
      rec.target_digest = r.target_digest;
      rec.target_media_type = r.target_media_type;
      rec.config_digest = r.config_digest;
      rec.chain_id = chain_id;
      rec.size = size;
      rec.labels[kLabelManaged] = "managed";
      rec.labels[kLabelManifest] = r.manifest_digest;
      rec.created_unix = NowUnix();
      recs.push_back(std::move(rec));
    }
    std::lock_guard<std::mutex> lk(meta_mu);
    images->PutAll(recs);  // one transaction: one commit to disk
  }

  // A pull's progress, visible to Progress() while it lives.
  struct Tracked {
    Impl& im;
    std::string ref;
    Tracked(Impl& i, std::shared_ptr<PullState> ps) : im(i), ref(ps->ref) {
      std::lock_guard<std::mutex> lk(im.inflight_mu);
      im.progress[ref] = std::move(ps);
    }
    ~Tracked() {
      std::lock_guard<std::mutex> lk(im.inflight_mu);
      im.progress.erase(ref);
    }
  };

  // A failed pull leaves nothing: what it stored that no image references is collected (now, or
  // after the last operation in progress).
  Image DoPull(const Reference& ref, const AuthConfig& auth) {
    Image img;
    try {
      img = PullShared(ref, auth);
    } catch (...) {
      gc_pending = true;
      MaybeRunPendingGC();
      throw;
    }
    MaybeRunPendingGC();
    return img;
  }

  Image PullShared(const Reference& ref, const AuthConfig& auth) {
    auto start = std::chrono::steady_clock::now();
    const std::string name = ref.String();
    Image result;
    {
      std::shared_lock<std::shared_mutex> gl(gc_mu);
      RegistryClient::Options co;
      co.progress_timeout = opts.progress_timeout;
      RegistryClient client(LoadHosts(opts.hosts_config_path, ref.domain), ref.domain, ref.path,
                            auth, co);
      auto top = client.GetManifest(ref.digest.empty() ? ref.tag : ref.digest);
      auto get = [&](const Descriptor& d, size_t max, bool manifest) {
        return SmallBlob(client, d, max, manifest);
      };
      Resolved r = ResolveManifest(top.digest, top.media_type, top.body, get, name);
      auto ps = std::make_shared<PullState>(name, r.manifest.layers);
      Tracked tracked(*this, ps);
      std::string chain;
      {
        PullWatchdog dog(*ps, opts.progress_timeout,
                         [&](const std::string& why) { client.Cancel(why); });
        chain = PullLayers(client, r, *ps);
      }
      if (!content->Has(top.digest)) content->Write(top.body, top.digest);
      std::vector<std::string> names;
      if (!ref.tag.empty()) names.push_back(ref.Repository() + ":" + ref.tag);
      names.push_back(ref.Repository() + "@" + top.digest);
      Record(names, r, chain);
      result = Build(r.config_digest, images->ByConfig(r.config_digest));
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - start);
      spdlog::info("pulled {} ({}, {} bytes) in {} ms ({} requests)", name, r.config_digest,
                   result.size, ms.count(), client.requests());
    }
    return result;
  }

  // ---- garbage collection ----
  void MaybeRunPendingGC() {
    if (gc_pending.load()) RunGC();
  }

  void RunGC() {
    std::unique_lock<std::shared_mutex> gl(gc_mu, std::try_to_lock);
    if (!gl.owns_lock()) {
      gc_pending = true;  // the last operation in progress runs it
      return;
    }
    gc_pending = false;
    std::lock_guard<std::mutex> lk(meta_mu);
    std::set<std::string> keep_blobs, keep_snaps;
    try {
      for (const auto& rec : images->List()) {
        keep_blobs.insert(rec.target_digest);
        if (!rec.chain_id.empty()) keep_snaps.insert(rec.chain_id);
        std::vector<std::string> manifests;
        if (content->Has(rec.target_digest)) {
          std::string body = content->Read(rec.target_digest, kMaxManifestSize);
          if (mediatype::IsIndex(rec.target_media_type)) {
            for (const auto& m : ParseIndex(body, rec.target_media_type).manifests) {
              keep_blobs.insert(m.digest);
              if (content->Has(m.digest)) manifests.push_back(m.digest);
            }
          } else {
            manifests.push_back(rec.target_digest);
          }
        }
        for (const auto& md : manifests) {
          std::string body = content->Read(md, kMaxManifestSize);
          Manifest m = ParseManifest(body, DetectManifestType(body, ""));
          keep_blobs.insert(m.config.digest);
          for (const auto& l : m.layers) keep_blobs.insert(l.digest);
          if (content->Has(m.config.digest)) {
            ImageConfig cfg = ParseConfig(content->Read(m.config.digest, kMaxConfigSize));
            std::vector<std::string> prefix;
            for (const auto& d : cfg.diff_ids) {
              prefix.push_back(d);
              keep_snaps.insert(ChainID(prefix));
            }
          }
        }
      }
    } catch (const std::exception& e) {
      spdlog::warn("image garbage collection skipped: cannot read image metadata: {}", e.what());
      return;
    }
    int removed_blobs = 0, removed_snaps = 0;
    for (const std::string& d : content->List()) {
      if (keep_blobs.count(d)) continue;
      try {
        content->Delete(d);
        ++removed_blobs;
      } catch (const Error& e) {
        spdlog::warn("image garbage collection: {}", e.what());
      }
    }
    // Committed layer snapshots (named by chain id) nobody references, children first.
    for (bool progress = true; progress;) {
      progress = false;
      auto infos = snap->List();
      std::set<std::string> parents;
      for (const auto& i : infos)
        if (!i.parent.empty()) parents.insert(i.parent);
      for (const auto& i : infos) {
        if (i.kind != snapshot::Kind::kCommitted || keep_snaps.count(i.name) ||
            parents.count(i.name))
          continue;
        if (!IsValidDigest(i.name)) continue;
        try {
          snap->Remove(i.name);
          ++removed_snaps;
          progress = true;
        } catch (const Error& e) {
          spdlog::warn("image garbage collection: snapshot {}: {}", i.name, e.what());
        }
      }
    }
    if (removed_blobs || removed_snaps)
      spdlog::info("image garbage collection removed {} blob(s) and {} snapshot(s)", removed_blobs,
                   removed_snaps);
  }
};

ImageService::ImageService(Options opts) : impl_(std::make_unique<Impl>()) {
  Impl& im = *impl_;
  if (opts.root.empty())
    throw Error(Code::kInvalidArgument, "image service: root directory is empty");
  im.opts = std::move(opts);
  if (const char* ms = std::getenv("BERTH_LIBRARY_IDLE_MS"); ms && *ms)
    im.opts.library_idle = std::chrono::milliseconds(std::strtoll(ms, nullptr, 10));
  SetArchiveIdleTime(im.opts.library_idle);
  Platform p = HostPlatform();
  if (!im.opts.platform_os.empty()) p.os = im.opts.platform_os;
  if (!im.opts.platform_arch.empty()) {
    p.architecture = im.opts.platform_arch;
    p.variant = im.opts.platform_variant;
  }
  im.platform = NormalizePlatform(p);
  fs::MkdirAll(im.opts.root, 0700);
  im.content = std::make_unique<content::Store>(fs::Join(im.opts.root, "content"));
  if (im.opts.snapshotter == "native") {
    im.snap = snapshot::NewNative(fs::Join(im.opts.root, "snapshots/native"));
  } else if (im.opts.snapshotter == "overlayfs" || im.opts.snapshotter.empty()) {
    std::string oroot = fs::Join(im.opts.root, "snapshots/overlayfs");
    fs::MkdirAll(oroot, 0700);
    // The probe mount costs start-up time (its unmount most of it); its answer is kept under
    // <state>/probes/ for this boot, kernel and file system.
    const std::string cache =
        im.opts.state.empty() ? "" : fs::Join(im.opts.state, "probes/overlayfs.json");
    bool cached = false;
    const bool overlay = snapshot::OverlaySupportedCached(oroot, cache, &cached);
    spdlog::debug("overlayfs under {}: {} ({})", oroot, overlay ? "supported" : "not supported",
                  cached ? "cached" : "probed");
    if (overlay) {
      im.snap = snapshot::NewOverlay(oroot);
    } else {
      spdlog::warn("overlayfs is not usable under {}; using the native snapshotter", oroot);
      im.snap = snapshot::NewNative(fs::Join(im.opts.root, "snapshots/native"));
    }
  } else {
    throw Error(Code::kInvalidArgument, "image service: unknown snapshotter \"" +
                                            im.opts.snapshotter +
                                            "\" (supported: overlayfs, native)");
  }
  im.db = store::Database::Open(fs::Join(im.opts.root, "meta.db"));
  im.images = std::make_unique<store::ImageStore>(im.db);
  for (const auto& [key, ref] : im.opts.pinned_images) {
    try {
      im.pinned.insert(ParseReference(ref).String());
    } catch (const Error& e) {
      spdlog::warn("pinned image {}: {}", key, e.what());
    }
  }
}

ImageService::~ImageService() = default;

Image ImageService::Pull(const std::string& ref_str, const AuthConfig& auth) {
  Impl& im = *impl_;
  Reference ref = ParseReference(ref_str);
  const std::string key = ref.String();
  std::promise<Image> promise;
  std::shared_future<Image> fut;
  bool owner = false;
  {
    std::lock_guard<std::mutex> lk(im.inflight_mu);
    auto it = im.pulls.find(key);
    if (it != im.pulls.end()) {
      fut = it->second;
    } else {
      fut = promise.get_future().share();
      im.pulls.emplace(key, fut);
      owner = true;
    }
  }
  if (!owner) return fut.get();
  try {
    promise.set_value(im.DoPull(ref, auth));
  } catch (const Error& e) {
    promise.set_exception(std::make_exception_ptr(
        Error(e.code(), "failed to pull image \"" + ref_str + "\": " + e.what())));
  } catch (const std::exception& e) {
    promise.set_exception(std::make_exception_ptr(
        Error(Code::kInternal, "failed to pull image \"" + ref_str + "\": " + e.what())));
  }
  {
    std::lock_guard<std::mutex> lk(im.inflight_mu);
    im.pulls.erase(key);
  }
  return fut.get();
}

std::optional<PullProgress> ImageService::Progress(const std::string& ref_str) {
  Impl& im = *impl_;
  std::string key = NormalizeOrEmpty(ref_str);
  std::lock_guard<std::mutex> lk(im.inflight_mu);
  auto it = im.progress.find(key);
  if (it == im.progress.end()) return std::nullopt;
  return it->second->Snapshot();
}

std::vector<Image> ImageService::List(const std::string& filter_ref) {
  Impl& im = *impl_;
  std::vector<Image> out;
  if (!filter_ref.empty()) {
    std::string id;
    auto recs = im.Find(filter_ref, &id);
    if (!recs.empty()) out.push_back(im.Build(id, recs));
    return out;
  }
  std::map<std::string, std::vector<store::ImageRecord>> by_config;
  for (auto& r : im.images->List()) by_config[r.config_digest].push_back(std::move(r));
  for (const auto& [id, recs] : by_config) out.push_back(im.Build(id, recs));
  return out;
}

std::optional<Image> ImageService::Status(const std::string& ref_or_id) {
  Impl& im = *impl_;
  std::string id;
  auto recs = im.Find(ref_or_id, &id);
  if (recs.empty()) return std::nullopt;
  return im.Build(id, recs);
}

void ImageService::Remove(const std::string& ref_or_id) {
  Impl& im = *impl_;
  {
    std::lock_guard<std::mutex> lk(im.meta_mu);
    std::string id;
    auto recs = im.Find(ref_or_id, &id);
    if (recs.empty()) throw Error(Code::kNotFound, "image \"" + ref_or_id + "\" not found");
    if (im.IsPinned(recs))
      throw Error(Code::kFailedPrecondition,
                  "image \"" + ref_or_id + "\" (" + id +
                      ") is pinned (pinned_images) and cannot be removed");
    std::vector<std::string> remove;
    bool by_id = ref_or_id.find(':') == std::string::npos || ref_or_id.rfind("sha256:", 0) == 0;
    if (by_id && (ref_or_id.rfind("sha256:", 0) == 0 || IsHexString(ref_or_id))) {
      for (const auto& r : recs) remove.push_back(r.name);
    } else {
      Reference ref = ParseReference(ref_or_id);
      if (!ref.tag.empty() && ref.digest.empty()) {
        remove.push_back(ref.String());
        // The repository's digest names go with its last tag.
        bool other_tag = false;
        for (const auto& r : recs)
          if (r.name != ref.String() && r.name.find('@') == std::string::npos &&
              r.name.rfind(ref.Repository() + ":", 0) == 0)
            other_tag = true;
        if (!other_tag)
          for (const auto& r : recs)
            if (r.name.rfind(ref.Repository() + "@", 0) == 0) remove.push_back(r.name);
      } else {
        for (const auto& r : recs) remove.push_back(r.name);
      }
    }
    for (const auto& n : remove) {
      try {
        im.images->Delete(n);
      } catch (const Error& e) {
        if (e.code() != Code::kNotFound) throw;
      }
    }
  }
  im.RunGC();
}

FsUsage ImageService::FsInfo() {
  Impl& im = *impl_;
  FsUsage u;
  u.mountpoint = im.opts.root;
  u.timestamp_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  static thread_local int64_t* bytes;
  static thread_local int64_t* inodes;
  static thread_local std::set<std::pair<dev_t, ino_t>>* seen;
  std::set<std::pair<dev_t, ino_t>> seen_set;
  bytes = &u.used_bytes;
  inodes = &u.inodes_used;
  seen = &seen_set;
  nftw(
      im.opts.root.c_str(),
      [](const char*, const struct stat* st, int, struct FTW*) -> int {
        if (st->st_nlink > 1 && !S_ISDIR(st->st_mode) &&
            !seen->insert({st->st_dev, st->st_ino}).second)
          return 0;
        *bytes += static_cast<int64_t>(st->st_blocks) * 512;
        *inodes += 1;
        return 0;
      },
      64, FTW_PHYS | FTW_MOUNT);
  return u;
}

std::vector<Image> ImageService::Import(const std::string& archive_path) {
  Impl& im = *impl_;
  std::vector<Image> out;
  {
    std::shared_lock<std::shared_mutex> gl(im.gc_mu);
    ArchiveUse archive;  // one load of libarchive for reading the archive and unpacking its images
    auto imported = ImportArchive(archive_path, *im.content);
    if (imported.empty())
      throw Error(Code::kInvalidArgument, "image archive " + archive_path + " contains no image");
    for (const auto& ii : imported) {
      auto get = [&](const Descriptor& d, size_t max, bool) {
        if (!im.content->Has(d.digest))
          throw Error(Code::kInvalidArgument,
                      "image archive " + archive_path + " lacks blob " + d.digest);
        return im.content->Read(d.digest, max);
      };
      std::string body = im.content->Read(ii.manifest_digest, kMaxManifestSize);
      std::string type = ii.media_type.empty() ? DetectManifestType(body, "") : ii.media_type;
      std::string label = ii.name.empty() ? ii.manifest_digest : ii.name;
      Impl::Resolved r = im.ResolveManifest(ii.manifest_digest, type, body, get, label);
      std::string chain = im.UnpackImage(r);
      std::vector<std::string> names;
      if (!ii.name.empty()) {
        try {
          Reference ref = ParseReference(ii.name);
          if (!ref.tag.empty()) names.push_back(ref.Repository() + ":" + ref.tag);
          names.push_back(ref.Repository() + "@" + ii.manifest_digest);
        } catch (const Error& e) {
          spdlog::warn("image archive {}: image name \"{}\" ignored: {}", archive_path, ii.name,
                       e.what());
        }
      }
      if (names.empty()) names.push_back(ii.manifest_digest);  // unnamed: reachable by id only
      im.Record(names, r, chain);
      out.push_back(im.Build(r.config_digest, im.images->ByConfig(r.config_digest)));
    }
  }
  im.MaybeRunPendingGC();
  return out;
}

snapshot::Snapshotter& ImageService::snapshotter() { return *impl_->snap; }
content::Store& ImageService::content() { return *impl_->content; }

}  // namespace berth::image
