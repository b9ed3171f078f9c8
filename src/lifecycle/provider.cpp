// ImageProvider over the ImageService, and Options from the CRI runtime plugin.
#include <cctype>
#include <cstdlib>
#include <filesystem>

#include "common/exec.h"
#include "common/error.h"
#include "common/fs.h"
#include "criplugins/criplugins.h"
#include "image/service.h"
#include "lifecycle/service.h"

namespace berth::lifecycle {

namespace {

class ImageServiceProvider : public ImageProvider {
 public:
  explicit ImageServiceProvider(image::ImageService& images) : images_(images) {}
  std::optional<ImageInfo> Resolve(const std::string& ref) override {
    auto img = images_.Status(ref);
    if (!img) return std::nullopt;
    return ToInfo(*img, ref);
  }
  snapshot::Snapshotter& snapshotter() override { return images_.snapshotter(); }
  ImageInfo Pull(const std::string& ref) override { return ToInfo(images_.Pull(ref, image::AuthConfig{}), ref); }

 private:
  // `ref` is the name the image was asked for: the repo tag matching it names the image.
  static ImageInfo ToInfo(const image::Image& img, const std::string& ref) {
    ImageInfo info;
    info.id = img.id;
    info.repo_tags = img.repo_tags;
    info.repo_digests = img.repo_digests;
    info.chain_id = img.chain_id;
    info.config_json = img.config_json;
    info.ref = !img.repo_tags.empty() ? img.repo_tags.front()
               : !img.repo_digests.empty() ? img.repo_digests.front() : img.id;
    for (const auto& t : img.repo_tags) {
      if (t == ref || t.ends_with("/" + ref) || t.ends_with("/" + ref + ":latest")) info.ref = t;
    }
    return info;
  }

  image::ImageService& images_;
};

}  // namespace

ImageInfo ImageProvider::Pull(const std::string& ref) {
  throw Error(Code::kFailedPrecondition, "image " + ref + " is not present and cannot be pulled here");
}

bool IsStockPauseImage(const std::string& ref) {
  for (const char* repo : {"registry.k8s.io/pause", "k8s.gcr.io/pause"}) {
    std::string r = repo;
    if (ref == r || ref.rfind(r + ":", 0) == 0 || ref.rfind(r + "@", 0) == 0) return true;
  }
  return false;
}

std::unique_ptr<ImageProvider> NewImageServiceProvider(image::ImageService& images) {
  return std::make_unique<ImageServiceProvider>(images);
}

Options OptionsFromRuntimePlugin(const criplugins::CRIRuntimePlugin& plugin) {
  Options o;
  o.root_dir = fs::Join(plugin.root_dir, "lifecycle");
  o.state_dir = plugin.state_dir;
  o.default_handler = plugin.config.containerd.default_runtime_name;
  o.restrict_oom_score_adj =
      plugin.restrict_oom_score_adj;  // config, or forced without CAP_SYS_RESOURCE
  o.max_container_log_line_size = plugin.config.max_container_log_line_size;
  o.unset_seccomp_profile = plugin.config.unset_seccomp_profile;
  o.userns_rootfs = plugin.config.userns_rootfs;
  std::chrono::nanoseconds drain{0};
  if (config::ParseDuration(plugin.config.drain_exec_sync_io_timeout, &drain) && drain.count() > 0)
    o.drain_exec_sync_io_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(drain);
  for (const auto& [name, info] : plugin.handlers) {
    Handler h;
    h.name = name;
    const auto& rt = info.runtime;
    h.binary = !rt.BinaryName().empty() ? rt.BinaryName() : "runc";
    h.root = rt.Root();
    h.systemd_cgroup = rt.SystemdCgroup();
    h.treat_ro_mounts_as_rro = rt.treat_ro_mounts_as_rro;
    h.rro = info.rro;  // resolved once at plugin init (rro_resolver.cpp)
    if (info.features.contains("userns")) {  // proven once at plugin init (userns_resolver.cpp)
      const auto& u = info.features["userns"];
      h.userns = HandlerUserns{u.value("supported", false), u.value("reason", ""),
                               u.value("runtime_idmap", false), u.value("rootfs", "idmap")};
    }
    h.base_spec = info.base_spec;
    h.privileged_without_host_devices = rt.privileged_without_host_devices;
    h.pod_annotations = rt.pod_annotations;
    h.container_annotations = rt.container_annotations;
    o.handlers[name] = h;
  }
  return o;
}

}  // namespace berth::lifecycle

namespace berth::lifecycle {

std::string FindHelper(const std::string& name) { return exec::FindHelper(name); }

}  // namespace berth::lifecycle
