// berthctl image commands over the CRI ImageService: images, pull, rmi, inspecti, and
// `images import` through berth.images.v1.Images.
// The generated CRI header first: its Signal enum values collide with <signal.h> macros.
#include "runtime/v1/api.grpc.pb.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <regex>
#include <stdexcept>
#include <thread>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>

#include "berth/images/v1/images.grpc.pb.h"
#include "cmd/berthctl/cmd_cri.h"
#include "cmd/berthctl/commands.h"
#include "cmd/berthctl/pull_progress.h"

namespace berth::berthctl {

namespace v1 = ::runtime::v1;
using cri::Format;
using cri::HumanSize;
using cri::PrintStructured;
using cri::ToJSON;

namespace {

// "docker.io/library/busybox:latest" -> ("docker.io/library/busybox", "latest").
std::pair<std::string, std::string> SplitTag(const std::string& ref) {
  auto slash = ref.rfind('/');
  auto colon = ref.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    return {ref.substr(0, colon), ref.substr(colon + 1)};
  }
  return {ref, "<none>"};
}

std::string ShortID(const std::string& id) {
  std::string s = id;
  if (auto c = s.find(':'); c != std::string::npos) s = s.substr(c + 1);
  return s.substr(0, 13);
}

// Keeps the images with a repo tag or digest matching `pattern` (ECMAScript regular expression).
void KeepNamed(google::protobuf::RepeatedPtrField<v1::Image>* images, const std::string& pattern) {
  std::regex re;
  try {
    re = std::regex(pattern);
  } catch (const std::regex_error& e) {
    throw std::runtime_error("--name " + pattern + ": " + e.what());
  }
  google::protobuf::RepeatedPtrField<v1::Image> kept;
  for (auto& img : *images) {
    bool match = false;
    for (const auto& t : img.repo_tags()) match = match || std::regex_search(t, re);
    for (const auto& d : img.repo_digests()) match = match || std::regex_search(d, re);
    if (match) *kept.Add() = std::move(img);
  }
  images->Swap(&kept);
}

// A context with the global --timeout, or at least `min_seconds` (pulls and imports take longer).
std::unique_ptr<grpc::ClientContext> Ctx(const Globals& g, int min_seconds) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(std::max(g.timeout_seconds, min_seconds)));
  return ctx;
}

}  // namespace

void AddImageCommands(CLI::App& app, Globals& g) {
  // images [REF] [-q] [-o table|json|yaml], and `images import FILE`.
  auto* images = app.add_subcommand("images", "list images (CRI ListImages)");
  images->alias("image");
  auto list_ref = std::make_shared<std::string>();
  auto quiet = std::make_shared<bool>(false);
  auto output = std::make_shared<std::string>();
  auto no_trunc = std::make_shared<bool>(false);
  auto name = std::make_shared<std::string>();
  images->add_option("ref", *list_ref, "only images matching this reference");
  images->add_flag("-q,--quiet", *quiet, "only image ids");
  images->add_flag("--no-trunc", *no_trunc, "full image ids");
  images->add_option("--name", *name,
                     "only images with a tag or digest matching this regular expression");
  images->add_option("-o,--output", *output, "table, json or yaml")
      ->check(CLI::IsMember({"table", "json", "yaml"}));
  auto* import = images->add_subcommand("import", "load an image archive (docker save or OCI layout tar)");
  auto import_file = std::make_shared<std::string>();
  import->add_option("file", *import_file, "archive path (made absolute; read by the daemon)")->required();
  import->callback([&g, import_file] {
    std::string path = std::filesystem::absolute(*import_file).lexically_normal().string();
    auto stub = berth::images::v1::Images::NewStub(g.Channel());
    berth::images::v1::ImportRequest req;
    req.set_path(path);
    berth::images::v1::ImportResponse resp;
    Check(stub->Import(Ctx(g, 600).get(), req, &resp), "import " + path);
    for (const auto& img : resp.images()) {
      std::string names;
      for (const auto& t : img.repo_tags()) names += (names.empty() ? "" : ", ") + t;
      std::cout << "Imported " << img.id() << (names.empty() ? "" : " (" + names + ")") << "\n";
    }
  });
  images->callback([import, &g, list_ref, quiet, output, no_trunc, name] {
    if (import->parsed()) return;
    auto stub = v1::ImageService::NewStub(g.Channel());
    v1::ListImagesRequest req;
    if (!list_ref->empty()) req.mutable_filter()->mutable_image()->set_image(*list_ref);
    v1::ListImagesResponse resp;
    Check(stub->ListImages(Ctx(g, 60).get(), req, &resp), "list images");
    if (!name->empty()) KeepNamed(resp.mutable_images(), *name);
    if (*quiet) {
      for (const auto& img : resp.images()) std::cout << img.id() << "\n";
      return;
    }
    std::string format = Format(*output, g.output);
    if (format != "table") {
      PrintStructured(ToJSON(resp), format);
      return;
    }
    std::vector<std::vector<std::string>> rows = {{"IMAGE", "TAG", "IMAGE ID", "SIZE"}};
    for (const auto& img : resp.images()) {
      std::string size = HumanSize(img.size());
      if (img.repo_tags().empty()) {
        std::string repo = "<none>";
        if (!img.repo_digests().empty())
          repo = img.repo_digests(0).substr(0, img.repo_digests(0).find('@'));
        rows.push_back({repo, "<none>", *no_trunc ? img.id() : ShortID(img.id()), size});
      }
      for (const auto& t : img.repo_tags()) {
        auto [repo, tag] = SplitTag(t);
        rows.push_back({repo, tag, *no_trunc ? img.id() : ShortID(img.id()), size});
      }
    }
    PrintTable(rows);
  });

  auto* pull = app.add_subcommand("pull", "pull an image (CRI PullImage)");
  auto pull_ref = std::make_shared<std::string>();
  auto creds = std::make_shared<std::string>();
  auto auth = std::make_shared<std::string>();
  pull->add_option("ref", *pull_ref, "image reference")->required();
  pull->add_option("--creds", *creds, "registry credentials \"user:password\"");
  pull->add_option("--auth", *auth, "base64 \"user:password\"");
  pull->callback([&g, pull_ref, creds, auth] {
    auto stub = v1::ImageService::NewStub(g.Channel());
    v1::PullImageRequest req;
    req.mutable_image()->set_image(*pull_ref);
    if (!creds->empty()) {
      auto colon = creds->find(':');
      if (colon == std::string::npos) throw CLI::ValidationError("--creds", "expected \"user:password\"");
      req.mutable_auth()->set_username(creds->substr(0, colon));
      req.mutable_auth()->set_password(creds->substr(colon + 1));
    }
    if (!auth->empty()) req.mutable_auth()->set_auth(*auth);
    v1::PullImageResponse resp;
    std::atomic<bool> done{false};
    std::thread progress(
        [&] { ShowPullProgress(g.Channel(), *pull_ref, [&] { return done.load(); }); });
    grpc::Status st = stub->PullImage(Ctx(g, 3600).get(), req, &resp);
    done = true;
    progress.join();
    Check(st, "pull image " + *pull_ref);
    std::cout << "Image is up to date for " << resp.image_ref() << "\n";
  });

  auto* rmi = app.add_subcommand("rmi", "remove images (CRI RemoveImage)");
  auto rmi_refs = std::make_shared<std::vector<std::string>>();
  rmi->add_option("refs", *rmi_refs, "image references or ids")->required();
  rmi->callback([&g, rmi_refs] {
    auto stub = v1::ImageService::NewStub(g.Channel());
    for (const auto& ref : *rmi_refs) {
      v1::RemoveImageRequest req;
      req.mutable_image()->set_image(ref);
      v1::RemoveImageResponse resp;
      Check(stub->RemoveImage(Ctx(g, 120).get(), req, &resp), "remove image " + ref);
      std::cout << "Deleted: " << ref << "\n";
    }
  });

  auto* inspecti = app.add_subcommand("inspecti", "image status (CRI ImageStatus, verbose)");
  auto inspect_refs = std::make_shared<std::vector<std::string>>();
  auto inspect_out = std::make_shared<std::string>();
  inspecti->add_option("refs", *inspect_refs, "image references or ids")->required();
  inspecti->add_option("-o,--output", *inspect_out, "json or yaml")->check(CLI::IsMember({"json", "yaml", "table"}));
  inspecti->callback([&g, inspect_refs, inspect_out] {
    auto stub = v1::ImageService::NewStub(g.Channel());
    for (const auto& ref : *inspect_refs) {
      v1::ImageStatusRequest req;
      req.mutable_image()->set_image(ref);
      req.set_verbose(true);
      v1::ImageStatusResponse resp;
      Check(stub->ImageStatus(Ctx(g, 60).get(), req, &resp), "image status of " + ref);
      if (!resp.has_image()) throw std::runtime_error("no such image \"" + ref + "\" present");
      nlohmann::ordered_json j;
      j["status"] = ToJSON(resp.image());
      for (const auto& [k, v] : resp.info()) {
        auto parsed = nlohmann::ordered_json::parse(v, nullptr, false);
        j[k] = parsed.is_discarded() ? nlohmann::ordered_json(v) : parsed;
      }
      if (Format(*inspect_out, "json") == "table") {
        std::cout << "ID: " << resp.image().id() << "\n";
        for (const auto& t : resp.image().repo_tags()) std::cout << "Tag: " << t << "\n";
        for (const auto& d : resp.image().repo_digests()) std::cout << "Digest: " << d << "\n";
        std::cout << "Size: " << resp.image().size() << "\n";
      } else {
        PrintStructured(j, Format(*inspect_out, g.output));
      }
    }
  });

  auto* fsinfo = app.add_subcommand("imagefsinfo", "image file system usage (CRI ImageFsInfo)");
  auto fs_out = std::make_shared<std::string>();
  fsinfo->add_option("-o,--output", *fs_out, "json or yaml")->check(CLI::IsMember({"json", "yaml", "table"}));
  fsinfo->callback([&g, fs_out] {
    auto stub = v1::ImageService::NewStub(g.Channel());
    v1::ImageFsInfoRequest req;
    v1::ImageFsInfoResponse resp;
    Check(stub->ImageFsInfo(Ctx(g, 60).get(), req, &resp), "image fs info");
    std::string format = Format(*fs_out, g.output);
    if (format == "table") {
      std::vector<std::vector<std::string>> rows = {{"TIMESTAMP", "MOUNTPOINT", "USED", "INODES"}};
      for (const auto& f : resp.image_filesystems()) {
        rows.push_back({std::to_string(f.timestamp()), f.fs_id().mountpoint(), HumanSize(f.used_bytes().value()),
                        std::to_string(f.inodes_used().value())});
      }
      PrintTable(rows);
      return;
    }
    PrintStructured(ToJSON(resp), format);
  });
}

}  // namespace berth::berthctl
