#include "image_support.h"

#include <archive.h>
#include <archive_entry.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>

#include "common/exec.h"
#include "common/fs.h"
#include "content/store.h"
#include "image/manifest.h"
#include "image/registry.h"
#include "support/support.h"

namespace berth::testing {

using nlohmann::json;

namespace {

[[noreturn]] void Fail(const std::string& msg) { throw std::runtime_error(msg); }

std::string MakeTempDir(const std::string& prefix) {
  const char* tmp = getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/" + prefix + "-XXXXXX";
  if (!mkdtemp(tmpl.data())) Fail("mkdtemp " + tmpl + ": " + strerror(errno));
  return tmpl;
}

// ---- HTTP client for pushes and readiness checks ----
struct HttpResult {
  long status = 0;
  std::map<std::string, std::string> headers;
  std::string body;
  std::string error;
};

size_t CollectBody(char* d, size_t s, size_t n, void* ud) {
  static_cast<std::string*>(ud)->append(d, s * n);
  return s * n;
}
size_t CollectHeader(char* d, size_t s, size_t n, void* ud) {
  auto* h = static_cast<std::map<std::string, std::string>*>(ud);
  std::string line(d, s * n);
  size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string k = line.substr(0, colon), v = line.substr(colon + 1);
    for (char& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    while (!v.empty() && (v.front() == ' ')) v.erase(0, 1);
    while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.pop_back();
    (*h)[k] = v;
  }
  return s * n;
}

HttpResult Http(const std::string& method, const std::string& url,
                const std::vector<std::string>& headers, const std::string& body = "",
                long timeout_s = 60, bool insecure = false) {
  HttpResult r;
  CURL* c = curl_easy_init();
  if (insecure) {
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  curl_slist* hl = nullptr;
  for (const auto& h : headers) hl = curl_slist_append(hl, h.c_str());
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, CollectBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, CollectHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.headers);
  if (method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (method == "POST" || method == "PUT") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) r.error = curl_easy_strerror(rc);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  curl_slist_free_all(hl);
  curl_easy_cleanup(c);
  return r;
}

// ---- layers ----
struct Entry {
  std::string path;
  char type = 'f';  // f file, d dir, l symlink
  std::string data;
  unsigned mode = 0644;
  int uid = 0, gid = 0;
};

la_ssize_t ArchiveAppend(struct archive*, void* ud, const void* buf, size_t n) {
  static_cast<std::string*>(ud)->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

std::string Tar(const std::vector<Entry>& entries, const std::string& compression) {
  std::string out;
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (compression == "gzip") {
    archive_write_add_filter_gzip(a);
    archive_write_set_filter_option(a, "gzip", "timestamp", nullptr);
  } else if (compression == "zstd") {
    if (archive_write_add_filter_zstd(a) != ARCHIVE_OK) Fail("libarchive cannot write zstd");
  } else if (compression == "none") {
    archive_write_add_filter_none(a);
  } else {
    Fail("unknown layer compression " + compression);
  }
  archive_write_set_bytes_in_last_block(a, 1);
  if (archive_write_open(a, &out, nullptr, ArchiveAppend, nullptr) != ARCHIVE_OK)
    Fail(std::string("archive_write_open: ") + archive_error_string(a));
  for (const auto& e : entries) {
    struct archive_entry* ae = archive_entry_new();
    archive_entry_set_pathname(ae, e.path.c_str());
    archive_entry_set_uid(ae, e.uid);
    archive_entry_set_gid(ae, e.gid);
    archive_entry_set_mtime(ae, 1700000000, 0);
    if (e.type == 'd') {
      archive_entry_set_filetype(ae, AE_IFDIR);
      archive_entry_set_perm(ae, e.mode);
    } else if (e.type == 'l') {
      archive_entry_set_filetype(ae, AE_IFLNK);
      archive_entry_set_perm(ae, 0777);
      archive_entry_set_symlink(ae, e.data.c_str());
    } else {
      archive_entry_set_filetype(ae, AE_IFREG);
      archive_entry_set_perm(ae, e.mode);
      archive_entry_set_size(ae, static_cast<la_int64_t>(e.data.size()));
    }
    if (archive_write_header(a, ae) != ARCHIVE_OK)
      Fail(std::string("archive_write_header: ") + archive_error_string(a));
    if (e.type == 'f' && !e.data.empty()) archive_write_data(a, e.data.data(), e.data.size());
    archive_entry_free(ae);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

struct Blob {
  std::string digest, media_type, data;
};

std::string WriteBlob(const std::string& oci_dir, const std::string& data) {
  std::string digest = content::Sha256Digest(data);
  WriteFile(oci_dir + "/blobs/sha256/" + digest.substr(7), data);
  return digest;
}

json Descriptor(const std::string& mt, const std::string& digest, size_t size) {
  return json{{"mediaType", mt}, {"digest", digest}, {"size", size}};
}

}  // namespace

std::string RegistrySkipReason() {
  if (access("/usr/bin/docker-registry", X_OK) != 0)
    return "docker-registry is not installed (/usr/bin/docker-registry)";
  if (BusyboxPath().empty()) return "busybox-static is not installed";
  return "";
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
    Fail(std::string("bind: ") + strerror(errno));
  socklen_t len = sizeof sa;
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  int port = ntohs(sa.sin_port);
  close(fd);
  return port;
}

// ---- LocalRegistry ----
std::string MakeSelfSignedCert(const std::string& dir) {
  auto openssl = exec::LookPath("openssl");
  if (!openssl) return "openssl is not installed";
  fs::MkdirAll(dir);
  auto r = exec::Run({*openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                      "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
                      dir + "/key.pem", "-out", dir + "/cert.pem"});
  if (!r.ok()) return "openssl req failed: " + exec::Describe({"openssl", "req"}, r);
  return "";
}

LocalRegistry::LocalRegistry() : LocalRegistry("", "") {}

LocalRegistry::LocalRegistry(const std::string& tls_cert, const std::string& tls_key) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (std::string why = RegistrySkipReason(); !why.empty()) Fail(why);
  dir_ = MakeTempDir("berth-registry");
  std::string config = dir_ + "/config.yml";
  for (int attempt = 0; attempt < 3; ++attempt) {
    port_ = FreePort();
    WriteFile(config,
              "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n"
              "  filesystem:\n    rootdirectory: " +
                  dir_ +
                  "/storage\n  delete:\n    enabled: true\n"
                  "http:\n  addr: 127.0.0.1:" +
                  std::to_string(port_) + "\n  secret: berth-test\n" +
                  (tls_cert.empty()
                       ? std::string()
                       : "  tls:\n    certificate: " + tls_cert + "\n    key: " + tls_key + "\n"));
    std::string log = dir_ + "/registry.log";
    pid_ = fork();
    if (pid_ < 0) Fail(std::string("fork: ") + strerror(errno));
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      int nul = open("/dev/null", O_RDONLY);
      if (nul >= 0) dup2(nul, 0);
      execl("/usr/bin/docker-registry", "docker-registry", "serve", config.c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    // Readiness: wait until the API answers, or the process exits (port taken: retry).
    for (int i = 0; i < 600; ++i) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      HttpResult r =
          Http("GET", (tls_cert.empty() ? "http://" : "https://") + host() + "/v2/", {}, "", 2,
               /*insecure=*/true);
      if (r.status == 200) return;
      usleep(50 * 1000);
    }
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  std::string log;
  try {
    log = fs::ReadFile(dir_ + "/registry.log");
  } catch (...) {
  }
  Fail("docker-registry did not start: " + log.substr(0, 2000));
}

LocalRegistry::~LocalRegistry() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    int status;
    for (int i = 0; i < 100; ++i) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      usleep(20 * 1000);
    }
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
  }
  if (!dir_.empty()) fs::RemoveAll(dir_);
}

// ---- images ----
TestImage BuildTestImage(const std::string& oci_dir, const TestImageOptions& opts) {
  std::string busybox = BusyboxPath();
  if (busybox.empty()) Fail("busybox-static is not installed");
  fs::MkdirAll(oci_dir + "/blobs/sha256");
  TestImage img;
  img.oci_dir = oci_dir;

  std::vector<std::vector<Entry>> layers;
  {
    std::vector<Entry> l;
    for (const char* d : {"bin", "etc", "proc", "sys", "dev", "tmp", "data", "usr", "root"})
      l.push_back({d, 'd', "", static_cast<unsigned>(std::string(d) == "tmp" ? 01777 : 0755)});
    l.push_back({"bin/busybox", 'f', fs::ReadFile(busybox, 64u << 20), 0755});
    for (const char* applet :
         {"sh",    "ls",    "cat",  "echo",     "id",   "sleep",  "true",     "false",
          "env",   "mkdir", "rm",   "touch",    "test", "ps",     "wc",       "head",
          "grep",  "sed",   "stat", "printf",   "pwd",  "whoami", "hostname", "mount",
          "uname", "date",  "kill", "readlink", "find"})
      l.push_back({std::string("bin/") + applet, 'l', "busybox"});
    l.push_back({"etc/passwd", 'f',
                 !opts.passwd.empty()
                     ? opts.passwd
                     : "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/tmp:/bin/sh\n"
                       "nobody:x:65534:65534:nobody:/:/bin/false\n"});
    l.push_back({"etc/group", 'f',
                 !opts.group.empty() ? opts.group : "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n"});
    layers.push_back(std::move(l));
  }
  {
    std::vector<Entry> l;
    l.push_back({"data", 'd', "", 0755});
    l.push_back({"data/hello.txt", 'f', "hello from layer 2\n"});
    l.push_back({"data/remove-me.txt", 'f', "deleted by layer 3\n"});
    l.push_back({"etc", 'd', "", 0755});
    l.push_back({"etc/berth-id", 'f', opts.id + "\n"});
    l.push_back({"usr/share", 'd', "", 0755});
    l.push_back({"usr/share/berth", 'd', "", 0755});
    std::string filler(opts.filler_bytes, '\0');
    std::mt19937_64 rng(std::hash<std::string>()(opts.id));
    for (size_t i = 0; i < filler.size(); ++i) filler[i] = static_cast<char>(rng() & 0xff);
    l.push_back({"usr/share/berth/filler.bin", 'f', filler});
    layers.push_back(std::move(l));
  }
  {
    std::vector<Entry> l;
    l.push_back({"data", 'd', "", 0755});
    l.push_back({"data/.wh.remove-me.txt", 'f', ""});
    l.push_back({"data/added.txt", 'f', "added by layer 3\n", 0644, 1000, 1000});
    layers.push_back(std::move(l));
  }
  for (int i = 0; i < opts.extra_layers; ++i) {
    std::vector<Entry> l;
    l.push_back({"layers", 'd', "", 0755});
    std::string filler(opts.filler_bytes / 4, '\0');
    std::mt19937_64 rng(std::hash<std::string>()(opts.id + std::to_string(i)));
    for (size_t k = 0; k < filler.size(); ++k) filler[k] = static_cast<char>(rng() & 0xff);
    l.push_back({"layers/" + std::to_string(i) + ".bin", 'f', filler});
    layers.push_back(std::move(l));
  }
  if (opts.hostile_layer) {
    std::vector<Entry> l;
    l.push_back({"../../berth-escape", 'f', "escaped\n"});
    layers.push_back(std::move(l));
  }

  json diff_ids = json::array(), layer_descs = json::array(), history = json::array();
  for (size_t li = 0; li < layers.size(); ++li) {
    const auto& l = layers[li];
    const std::string comp =
        opts.compression.empty() ? "gzip" : opts.compression[li % opts.compression.size()];
    const std::string layer_mt = comp == "none" ? "application/vnd.oci.image.layer.v1.tar"
                                                : "application/vnd.oci.image.layer.v1.tar+" + comp;
    std::string tar = Tar(l, "none"), tgz = Tar(l, comp);
    std::string diff_id = content::Sha256Digest(tar);
    if (opts.wrong_diff_id && li + 1 == layers.size()) diff_id = content::Sha256Digest(tar + "x");
    std::string digest = WriteBlob(oci_dir, tgz);
    img.layer_digests.push_back(digest);
    img.diff_ids.push_back(diff_id);
    img.blobs[digest] = layer_mt;
    img.size += static_cast<int64_t>(tgz.size());
    diff_ids.push_back(diff_id);
    layer_descs.push_back(Descriptor(layer_mt, digest, tgz.size()));
    history.push_back(
        json{{"created", "2026-01-01T00:00:00Z"}, {"created_by", "berth test image builder"}});
  }
  auto platform = image::HostPlatform();
  auto make_config = [&](const std::string& arch) {
    json cfg = {{"created", "2026-01-01T00:00:00Z"},
                {"architecture", arch},
                {"os", "linux"},
                {"config",
                 {{"User", opts.user},
                  {"Env", opts.env},
                  {"Entrypoint", opts.entrypoint},
                  {"Cmd", opts.cmd},
                  {"WorkingDir", "/"},
                  {"Labels", {{"org.berth.test", opts.id}}}}},
                {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}},
                {"history", history}};
    if (!platform.variant.empty() && arch == platform.architecture)
      cfg["variant"] = platform.variant;
    return cfg.dump();
  };
  auto make_manifest = [&](const std::string& config_digest, size_t config_size) {
    json m = {{"schemaVersion", 2},
              {"mediaType", std::string(image::mediatype::kOciManifest)},
              {"config",
               Descriptor(std::string(image::mediatype::kOciConfig), config_digest, config_size)},
              {"layers", layer_descs}};
    return m.dump();
  };
  std::string config = make_config(platform.architecture);
  img.config_digest = WriteBlob(oci_dir, config);
  img.blobs[img.config_digest] = std::string(image::mediatype::kOciConfig);
  img.size += static_cast<int64_t>(config.size());
  std::string manifest = make_manifest(img.config_digest, config.size());
  img.manifest_digest = WriteBlob(oci_dir, manifest);
  img.blobs[img.manifest_digest] = std::string(image::mediatype::kOciManifest);
  img.top_digest = img.manifest_digest;
  img.top_media_type = std::string(image::mediatype::kOciManifest);
  size_t top_size = manifest.size();
  if (opts.as_index) {
    std::string decoy_config = make_config("s390x");
    std::string decoy_cfg_digest = WriteBlob(oci_dir, decoy_config);
    img.blobs[decoy_cfg_digest] = std::string(image::mediatype::kOciConfig);
    std::string decoy = make_manifest(decoy_cfg_digest, decoy_config.size());
    std::string decoy_digest = WriteBlob(oci_dir, decoy);
    img.blobs[decoy_digest] = std::string(image::mediatype::kOciManifest);
    json host_desc = Descriptor(std::string(image::mediatype::kOciManifest), img.manifest_digest,
                                manifest.size());
    host_desc["platform"] = {{"os", "linux"}, {"architecture", platform.architecture}};
    if (!platform.variant.empty()) host_desc["platform"]["variant"] = platform.variant;
    json decoy_desc =
        Descriptor(std::string(image::mediatype::kOciManifest), decoy_digest, decoy.size());
    decoy_desc["platform"] = {{"os", "linux"}, {"architecture", "s390x"}};
    json index = {{"schemaVersion", 2},
                  {"mediaType", std::string(image::mediatype::kOciIndex)},
                  {"manifests", json::array({decoy_desc, host_desc})}};
    std::string index_s = index.dump();
    img.top_digest = WriteBlob(oci_dir, index_s);
    img.top_media_type = std::string(image::mediatype::kOciIndex);
    img.blobs[img.top_digest] = img.top_media_type;
    top_size = index_s.size();
  }
  WriteFile(oci_dir + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  json idx = {
      {"schemaVersion", 2},
      {"manifests", json::array({Descriptor(img.top_media_type, img.top_digest, top_size)})}};
  WriteFile(oci_dir + "/index.json", idx.dump());
  return img;
}

void PushImage(const TestImage& img, const std::string& registry_host,
               const std::string& repo_tag) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  size_t colon = repo_tag.rfind(':');
  if (colon == std::string::npos) Fail("PushImage: \"" + repo_tag + "\" has no tag");
  std::string repo = repo_tag.substr(0, colon), tag = repo_tag.substr(colon + 1);
  std::string base = "http://" + registry_host + "/v2/" + repo;
  auto read_blob = [&](const std::string& digest) {
    return fs::ReadFile(img.oci_dir + "/blobs/sha256/" + digest.substr(7), 256u << 20);
  };
  // Plain blobs first, then manifests (children before the index).
  std::vector<std::string> manifests;
  for (const auto& [digest, mt] : img.blobs) {
    if (image::mediatype::IsManifest(mt) || image::mediatype::IsIndex(mt)) {
      manifests.push_back(digest);
      continue;
    }
    if (Http("HEAD", base + "/blobs/" + digest, {}).status == 200) continue;
    HttpResult start = Http("POST", base + "/blobs/uploads/", {}, "");
    if (start.status != 202)
      Fail("push " + repo + ": start upload: HTTP " + std::to_string(start.status) + " " +
           start.error);
    std::string loc = start.headers["location"];
    if (loc.rfind("http", 0) != 0) loc = "http://" + registry_host + loc;
    loc += (loc.find('?') == std::string::npos ? "?" : "&") + std::string("digest=") + digest;
    HttpResult put =
        Http("PUT", loc, {"Content-Type: application/octet-stream"}, read_blob(digest));
    if (put.status != 201)
      Fail("push " + repo + ": blob " + digest + ": HTTP " + std::to_string(put.status) + " " +
           put.body);
  }
  std::sort(manifests.begin(), manifests.end(), [&](const std::string& a, const std::string& b) {
    return image::mediatype::IsManifest(img.blobs.at(a)) &&
           !image::mediatype::IsManifest(img.blobs.at(b));
  });
  for (const auto& digest : manifests) {
    bool top = digest == img.top_digest;
    HttpResult put = Http("PUT", base + "/manifests/" + (top ? tag : digest),
                          {"Content-Type: " + img.blobs.at(digest)}, read_blob(digest));
    if (put.status != 201)
      Fail("push " + repo + ": manifest " + digest + ": HTTP " + std::to_string(put.status) + " " +
           put.body);
  }
}

void WriteOciArchive(const TestImage& img, const std::string& tar_path,
                     const std::string& ref_name) {
  std::vector<Entry> entries;
  entries.push_back({"oci-layout", 'f', R"({"imageLayoutVersion":"1.0.0"})"});
  std::string tag =
      ref_name.substr(ref_name.rfind(':') == std::string::npos ? 0 : ref_name.rfind(':') + 1);
  json d =
      Descriptor(img.top_media_type, img.top_digest,
                 fs::ReadFile(img.oci_dir + "/blobs/sha256/" + img.top_digest.substr(7)).size());
  d["annotations"] = {{"io.containerd.image.name", ref_name},
                      {"org.opencontainers.image.ref.name", tag}};
  json idx = {{"schemaVersion", 2},
              {"mediaType", std::string(image::mediatype::kOciIndex)},
              {"manifests", {d}}};
  entries.push_back({"index.json", 'f', idx.dump()});
  entries.push_back({"blobs", 'd', "", 0755});
  entries.push_back({"blobs/sha256", 'd', "", 0755});
  for (const auto& [digest, mt] : img.blobs)
    entries.push_back(
        {"blobs/sha256/" + digest.substr(7), 'f',
         fs::ReadFile(img.oci_dir + "/blobs/sha256/" + digest.substr(7), 256u << 20)});
  fs::WriteFileAtomic(tar_path, Tar(entries, "none"));
}

// ---- TokenProxy ----
namespace {

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string Response(int status, const std::string& reason, const std::vector<std::string>& headers,
                     const std::string& body) {
  std::string r = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n";
  for (const auto& h : headers) r += h + "\r\n";
  r += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  return r;
}

std::string FormValue(const std::string& form, const std::string& key) {
  size_t pos = 0;
  while (pos <= form.size()) {
    size_t amp = form.find('&', pos);
    std::string kv = form.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
    size_t eq = kv.find('=');
    if (eq != std::string::npos && kv.substr(0, eq) == key) {
      std::string v, raw = kv.substr(eq + 1);
      for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '%' && i + 2 < raw.size()) {
          v += static_cast<char>(std::stoi(raw.substr(i + 1, 2), nullptr, 16));
          i += 2;
        } else {
          v += raw[i] == '+' ? ' ' : raw[i];
        }
      }
      return v;
    }
    if (amp == std::string::npos) break;
    pos = amp + 1;
  }
  return "";
}

}  // namespace

TokenProxy::TokenProxy(std::string upstream) : TokenProxy(std::move(upstream), Options{}) {}

TokenProxy::TokenProxy(std::string upstream, Options opts)
    : upstream_(std::move(upstream)), opts_(std::move(opts)) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      listen(listen_fd_, 64) != 0)
    Fail(std::string("TokenProxy: bind/listen: ") + strerror(errno));
  socklen_t len = sizeof sa;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&sa), &len);
  port_ = ntohs(sa.sin_port);
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

TokenProxy::~TokenProxy() {
  stop_ = true;
  shutdown(listen_fd_, SHUT_RDWR);
  close(listen_fd_);
  accept_thread_.join();
  std::vector<std::thread> ws;
  {
    std::lock_guard<std::mutex> lk(mu_);
    ws.swap(workers_);
  }
  for (auto& t : ws) t.join();
}

void TokenProxy::AcceptLoop() {
  while (!stop_) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      return;
    }
    std::lock_guard<std::mutex> lk(mu_);
    workers_.emplace_back([this, fd] {
      Serve(fd);
      close(fd);
    });
  }
}

void TokenProxy::CorruptBlob(const std::string& digest) {
  std::lock_guard<std::mutex> lk(mu_);
  corrupt_.insert(digest);
}
void TokenProxy::ClearCorruption() {
  std::lock_guard<std::mutex> lk(mu_);
  corrupt_.clear();
}
int TokenProxy::BlobGets(const std::string& digest) const {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = blob_gets_.find(digest);
  return it == blob_gets_.end() ? 0 : it->second;
}
int TokenProxy::ManifestGets() const {
  std::lock_guard<std::mutex> lk(mu_);
  return manifest_gets_;
}
int TokenProxy::TokensIssued() const {
  std::lock_guard<std::mutex> lk(mu_);
  return tokens_issued_;
}
int TokenProxy::Unauthorized() const {
  std::lock_guard<std::mutex> lk(mu_);
  return unauthorized_;
}
int TokenProxy::AuthorizationSeen() const {
  std::lock_guard<std::mutex> lk(mu_);
  return authorization_seen_;
}

void TokenProxy::Serve(int fd) {
  timeval tv{30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string req;
  char buf[8192];
  size_t hdr_end;
  while ((hdr_end = req.find("\r\n\r\n")) == std::string::npos) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0 || req.size() > (64u << 10)) return;
    req.append(buf, static_cast<size_t>(n));
  }
  std::string head = req.substr(0, hdr_end);
  std::string body = req.substr(hdr_end + 4);
  size_t eol = head.find("\r\n");
  std::string request_line = head.substr(0, eol);
  std::string method = request_line.substr(0, request_line.find(' '));
  std::string target = request_line.substr(method.size() + 1);
  target = target.substr(0, target.find(' '));
  std::map<std::string, std::string> headers;
  std::vector<std::string> raw_headers;
  for (size_t pos = eol == std::string::npos ? head.size() : eol + 2; pos < head.size();) {
    size_t e = head.find("\r\n", pos);
    std::string line = head.substr(pos, e == std::string::npos ? std::string::npos : e - pos);
    pos = e == std::string::npos ? head.size() : e + 2;
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string k = line.substr(0, colon), v = line.substr(colon + 1);
    while (!v.empty() && v.front() == ' ') v.erase(0, 1);
    std::string lk = k;
    for (char& c : lk) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    headers[lk] = v;
    raw_headers.push_back(line);
  }
  size_t content_length =
      headers.count("content-length") ? std::stoul(headers["content-length"]) : 0;
  while (body.size() < content_length && content_length < (1u << 20)) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return;
    body.append(buf, static_cast<size_t>(n));
  }

  if (headers.count("authorization")) {
    std::lock_guard<std::mutex> lk(mu_);
    ++authorization_seen_;
  }
  if (target.rfind("/token", 0) == 0) {
    bool ok = true;
    if (method == "POST") {
      ok = !opts_.refresh_token.empty() && FormValue(body, "grant_type") == "refresh_token" &&
           FormValue(body, "refresh_token") == opts_.refresh_token;
    } else if (!opts_.username.empty()) {
      std::string expect = "Basic " + image::Base64Encode(opts_.username + ":" + opts_.password);
      ok = headers["authorization"] == expect;
    }
    if (!ok) {
      SendAll(fd, Response(401, "Unauthorized", {"Content-Type: application/json"},
                           R"({"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]})"));
      return;
    }
    std::string token;
    {
      std::lock_guard<std::mutex> lk(mu_);
      token = "berth-token-" + std::to_string(++tokens_issued_);
      tokens_.insert(token);
    }
    json j = {{"token", token}, {"access_token", token}, {"expires_in", 300}};
    SendAll(fd, Response(200, "OK", {"Content-Type: application/json"}, j.dump()));
    return;
  }

  if (opts_.basic_only) {
    std::string expect = "Basic " + image::Base64Encode(opts_.username + ":" + opts_.password);
    if (headers["authorization"] != expect) {
      {
        std::lock_guard<std::mutex> lk(mu_);
        ++unauthorized_;
      }
      SendAll(
          fd,
          Response(
              401, "Unauthorized",
              {"Content-Type: application/json", "WWW-Authenticate: Basic realm=\"berth-test\""},
              R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})"));
      return;
    }
  } else if (opts_.require_token) {
    std::string authz = headers["authorization"];
    bool ok = false;
    if (authz.rfind("Bearer ", 0) == 0) {
      std::lock_guard<std::mutex> lk(mu_);
      ok = tokens_.count(authz.substr(7)) > 0;
    }
    if (!ok) {
      std::string scope;
      if (target.rfind("/v2/", 0) == 0) {
        size_t m = target.find("/manifests/");
        if (m == std::string::npos) m = target.find("/blobs/");
        if (m != std::string::npos)
          scope = ",scope=\"repository:" + target.substr(4, m - 4) + ":pull\"";
      }
      {
        std::lock_guard<std::mutex> lk(mu_);
        ++unauthorized_;
      }
      SendAll(fd,
              Response(
                  401, "Unauthorized",
                  {"Content-Type: application/json", "WWW-Authenticate: Bearer realm=\"" + realm() +
                                                         "\",service=\"berth-test\"" + scope},
                  R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})"));
      return;
    }
  }

  std::string blob_digest;
  if (size_t b = target.find("/blobs/sha256:"); b != std::string::npos && method == "GET")
    blob_digest = target.substr(b + 7, 71);
  bool corrupt;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!blob_digest.empty()) ++blob_gets_[blob_digest];
    if (target.find("/manifests/") != std::string::npos && method == "GET") ++manifest_gets_;
    corrupt = !blob_digest.empty() && corrupt_.count(blob_digest) > 0;
  }

  if (!blob_digest.empty() && !opts_.redirect_blobs_to.empty()) {
    SendAll(fd, Response(307, "Temporary Redirect",
                         {"Location: http://" + opts_.redirect_blobs_to + target}, ""));
    return;
  }
  if (!blob_digest.empty() && opts_.stall_blobs) {
    SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\nabc");
    while (!stop_) usleep(20 * 1000);
    return;
  }
  // Forward to the registry.
  std::string up = method + " " + target + " HTTP/1.1\r\n";
  for (const auto& line : raw_headers) {
    std::string lk = line.substr(0, line.find(':'));
    for (char& c : lk) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lk == "authorization" || lk == "connection") continue;
    if (lk == "range" && opts_.ignore_range) continue;
    up += line + "\r\n";
  }
  up += "Connection: close\r\n\r\n" + body;
  int ufd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(std::stoi(upstream_.substr(upstream_.rfind(':') + 1))));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(ufd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || !SendAll(ufd, up)) {
    close(ufd);
    SendAll(fd, Response(502, "Bad Gateway", {}, "upstream unavailable"));
    return;
  }
  std::string resp;
  while (true) {
    ssize_t n = recv(ufd, buf, sizeof buf, 0);
    if (n <= 0) break;
    resp.append(buf, static_cast<size_t>(n));
  }
  close(ufd);
  size_t rend = resp.find("\r\n\r\n");
  if (rend == std::string::npos) {
    SendAll(fd, Response(502, "Bad Gateway", {}, "bad upstream response"));
    return;
  }
  std::string rhead = resp.substr(0, rend);
  std::string rbody = resp.substr(rend + 4);
  if (corrupt && !rbody.empty() && rhead.find(" 200 ") != std::string::npos) {
    size_t at = opts_.corrupt_offset >= 0 ? static_cast<size_t>(opts_.corrupt_offset) : rbody.size() / 2;
    rbody[std::min(at, rbody.size() - 1)] ^= 0x5a;
  }
  // Re-emit headers without Connection, with ours.
  std::string out;
  size_t pos = 0;
  while (pos < rhead.size()) {
    size_t e = rhead.find("\r\n", pos);
    std::string line = rhead.substr(pos, e == std::string::npos ? std::string::npos : e - pos);
    pos = e == std::string::npos ? rhead.size() : e + 2;
    std::string lk = line.substr(0, line.find(':'));
    for (char& c : lk) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lk == "connection") continue;
    out += line + "\r\n";
  }
  bool cut = false;
  if (!blob_digest.empty() && opts_.cut_blobs_after >= 0 &&
      static_cast<int64_t>(rbody.size()) > opts_.cut_blobs_after &&
      (rhead.find(" 200 ") != std::string::npos || rhead.find(" 206 ") != std::string::npos)) {
    std::lock_guard<std::mutex> lk(mu_);
    cut = !opts_.cut_once || cut_.insert(blob_digest).second;
  }
  if (cut) rbody.resize(static_cast<size_t>(opts_.cut_blobs_after));
  out += "Connection: close\r\n\r\n";
  if (!blob_digest.empty() && opts_.blob_body_ms > 0) {
    SendAll(fd, out);
    const size_t piece = rbody.size() / 20 + 1;
    for (size_t at = 0; at < rbody.size() && !stop_; at += piece) {
      usleep(static_cast<useconds_t>(opts_.blob_body_ms) * 1000 / 20);
      SendAll(fd, rbody.substr(at, piece));
    }
    return;
  }
  out += rbody;
  SendAll(fd, out);
  if (cut && opts_.stall_after_cut)
    while (!stop_) usleep(20 * 1000);
}

}  // namespace berth::testing
