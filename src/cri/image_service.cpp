#include "cri/image_service.h"

#include <chrono>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/error.h"
#include "cri/errors.h"
#include "cri/server.h"
#include "cri/user.h"
#include "cri/validate.h"
#include "image/service.h"
#include "metrics/pull.h"

namespace berth::cri {

namespace v1 = runtime::v1;

void ToCRIImage(const image::Image& in, v1::Image* out) {
  out->set_id(in.id);
  for (const auto& t : in.repo_tags) out->add_repo_tags(t);
  for (const auto& d : in.repo_digests) out->add_repo_digests(d);
  out->set_size(in.size > 0 ? static_cast<uint64_t>(in.size) : 0);
  ImageUser user = ParseImageUser(in.user);
  if (user.uid) out->mutable_uid()->set_value(*user.uid);
  out->set_username(user.username);
  out->set_pinned(in.pinned);
}

std::string ImageInfoJSON(const image::Image& in) {
  nlohmann::ordered_json info;
  info["chainID"] = in.chain_id;
  info["manifestDigest"] = in.manifest_digest;
  info["pinned"] = in.pinned;
  auto spec = nlohmann::ordered_json::parse(in.config_json, nullptr, /*allow_exceptions=*/false);
  if (spec.is_discarded()) {
    info["imageSpec"] = in.config_json;
  } else {
    info["imageSpec"] = std::move(spec);
  }
  return info.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

grpc::Status ImageServiceImpl::ListImages(grpc::ServerContext*, const v1::ListImagesRequest* req,
                                          v1::ListImagesResponse* resp) {
  return Guard("ListImages", [&] {
    std::string filter = ValidateListImages(*req);
    for (const auto& img : server_.Images().List(filter)) ToCRIImage(img, resp->add_images());
  });
}

grpc::Status ImageServiceImpl::StreamImages(grpc::ServerContext*, const v1::StreamImagesRequest* req,
                                            grpc::ServerWriter<v1::StreamImagesResponse>* writer) {
  return Guard("StreamImages", [&] {
    std::string filter;
    if (req->has_filter() && !req->filter().image().image().empty()) {
      filter = CheckImageRefOrID(req->filter().image().image(), "filter.image.image");
    }
    auto images = server_.Images().List(filter);
    constexpr size_t kBatch = 100;
    for (size_t i = 0; i < images.size(); i += kBatch) {
      v1::StreamImagesResponse batch;
      for (size_t j = i; j < images.size() && j < i + kBatch; ++j) ToCRIImage(images[j], batch.add_images());
      if (!writer->Write(batch)) throw Error(Code::kCancelled, "StreamImages: the client went away");
    }
  });
}

grpc::Status ImageServiceImpl::ImageStatus(grpc::ServerContext*, const v1::ImageStatusRequest* req,
                                           v1::ImageStatusResponse* resp) {
  return Guard("ImageStatus", [&] {
    std::string ref = ValidateImageStatus(*req);
    std::optional<image::Image> img;
    try {
      img = server_.Images().Status(ref);
    } catch (const Error& e) {
      // An image that does not exist is an empty answer, not an error (CRI).
      if (e.code() != Code::kNotFound) throw;
    }
    if (!img) return;
    ToCRIImage(*img, resp->mutable_image());
    if (req->verbose()) (*resp->mutable_info())["info"] = ImageInfoJSON(*img);
  });
}

grpc::Status ImageServiceImpl::PullImage(grpc::ServerContext*, const v1::PullImageRequest* req,
                                         v1::PullImageResponse* resp) {
  return Guard("PullImage", [&] {
    std::string ref = ValidatePullImage(*req);
    image::AuthConfig auth;
    if (req->has_auth()) auth = ToAuthConfig(req->auth());
    auto start = std::chrono::steady_clock::now();
    image::Image img = metrics::ObservePull([&] { return server_.Images().Pull(ref, auth); });
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    spdlog::info("pulled image {} ({}) in {} ms", ref, img.id, ms.count());
    resp->set_image_ref(img.id);
  });
}

grpc::Status ImageServiceImpl::RemoveImage(grpc::ServerContext*, const v1::RemoveImageRequest* req,
                                           v1::RemoveImageResponse*) {
  return Guard("RemoveImage", [&] {
    std::string ref = ValidateRemoveImage(*req);
    try {
      server_.Images().Remove(ref);
    } catch (const Error& e) {
      // Idempotent: removing an absent image succeeds (CRI).
      if (e.code() != Code::kNotFound) throw;
    }
  });
}

grpc::Status ImageServiceImpl::ImageFsInfo(grpc::ServerContext*, const v1::ImageFsInfoRequest*,
                                           v1::ImageFsInfoResponse* resp) {
  return Guard("ImageFsInfo", [&] {
    image::FsUsage u = server_.Images().FsInfo();
    auto* fs = resp->add_image_filesystems();
    int64_t ts = u.timestamp_ns;
    if (ts <= 0) {
      ts = std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
               .count();
    }
    fs->set_timestamp(ts);
    fs->mutable_fs_id()->set_mountpoint(u.mountpoint);
    fs->mutable_used_bytes()->set_value(u.used_bytes > 0 ? static_cast<uint64_t>(u.used_bytes) : 0);
    fs->mutable_inodes_used()->set_value(u.inodes_used > 0 ? static_cast<uint64_t>(u.inodes_used) : 0);
  });
}

grpc::Status ImagesServiceImpl::Import(grpc::ServerContext*, const berth::images::v1::ImportRequest* req,
                                       berth::images::v1::ImportResponse* resp) {
  return Guard("Import", [&] {
    std::string path = ValidateImport(*req);
    for (const auto& img : server_.Images().Import(path)) {
      auto* out = resp->add_images();
      out->set_id(img.id);
      for (const auto& t : img.repo_tags) out->add_repo_tags(t);
      for (const auto& d : img.repo_digests) out->add_repo_digests(d);
      out->set_size(img.size > 0 ? static_cast<uint64_t>(img.size) : 0);
    }
  });
}

grpc::Status ImagesServiceImpl::PullProgress(grpc::ServerContext*,
                                             const berth::images::v1::PullProgressRequest* req,
                                             berth::images::v1::PullProgressResponse* resp) {
  return Guard("PullProgress", [&] {
    if (req->image().empty()) throw Error(Code::kInvalidArgument, "image: empty reference");
    auto p = server_.Images().Progress(req->image());
    resp->set_in_progress(p.has_value());
    if (!p) return;
    resp->set_image(p->ref);
    resp->set_elapsed_ms(p->elapsed_ms);
    for (const auto& l : p->layers) {
      auto* out = resp->add_layers();
      out->set_digest(l.digest);
      out->set_size(l.size);
      out->set_received(l.received);
      out->set_state(l.state);
    }
  });
}

}  // namespace berth::cri
