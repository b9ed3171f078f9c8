// runtime.v1.ImageService and berth.images.v1.Images, backed by image::ImageService.
// Internal to src/cri and its tests (includes gRPC).
#pragma once

#include <string>

#include "berth/images/v1/images.grpc.pb.h"
#include "runtime/v1/api.grpc.pb.h"

namespace berth::image {
struct Image;
}

namespace berth::cri {

class CRIServer;

// image::Image -> runtime.v1.Image (uid/username from the config's User).
void ToCRIImage(const image::Image& in, runtime::v1::Image* out);
// The verbose ImageStatus "info" value: {"chainID", "manifestDigest", "pinned", "imageSpec"}.
std::string ImageInfoJSON(const image::Image& in);

class ImageServiceImpl final : public runtime::v1::ImageService::Service {
 public:
  explicit ImageServiceImpl(CRIServer& server) : server_(server) {}

  grpc::Status ListImages(grpc::ServerContext* ctx, const runtime::v1::ListImagesRequest* req,
                          runtime::v1::ListImagesResponse* resp) override;
  grpc::Status StreamImages(grpc::ServerContext* ctx, const runtime::v1::StreamImagesRequest* req,
                            grpc::ServerWriter<runtime::v1::StreamImagesResponse>* writer) override;
  grpc::Status ImageStatus(grpc::ServerContext* ctx, const runtime::v1::ImageStatusRequest* req,
                           runtime::v1::ImageStatusResponse* resp) override;
  grpc::Status PullImage(grpc::ServerContext* ctx, const runtime::v1::PullImageRequest* req,
                         runtime::v1::PullImageResponse* resp) override;
  grpc::Status RemoveImage(grpc::ServerContext* ctx, const runtime::v1::RemoveImageRequest* req,
                           runtime::v1::RemoveImageResponse* resp) override;
  grpc::Status ImageFsInfo(grpc::ServerContext* ctx, const runtime::v1::ImageFsInfoRequest* req,
                           runtime::v1::ImageFsInfoResponse* resp) override;

 private:
  CRIServer& server_;
};

class ImagesServiceImpl final : public berth::images::v1::Images::Service {
 public:
  explicit ImagesServiceImpl(CRIServer& server) : server_(server) {}

  grpc::Status Import(grpc::ServerContext* ctx, const berth::images::v1::ImportRequest* req,
                      berth::images::v1::ImportResponse* resp) override;
  grpc::Status PullProgress(grpc::ServerContext* ctx,
                            const berth::images::v1::PullProgressRequest* req,
                            berth::images::v1::PullProgressResponse* resp) override;

 private:
  CRIServer& server_;
};

}  // namespace berth::cri
