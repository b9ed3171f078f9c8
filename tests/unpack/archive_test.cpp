#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/fs.h"

#include "common/error.h"
#include "content/store.h"
#include "image/archive.h"
#include "snapshot/snapshotter.h"
#include "support/support.h"
#include "tar_builder.h"

using namespace berth::testing;
using berth::Code;
using berth::Error;
using berth::content::Sha256Digest;
using nlohmann::json;

namespace {

std::string Hex(const std::string& digest) { return digest.substr(7); }

struct OciImage {
  std::string layer, layer_tar, config, manifest;
};

OciImage MakeOciImage() {
  OciImage img;
  img.layer_tar = BuildTar({Dir("etc"), File("etc/motd", "hello from oci\n")});
  img.layer = BuildTar({Dir("etc"), File("etc/motd", "hello from oci\n")}, TarCompression::kGzip);
  img.config = json{{"architecture", "amd64"},
                    {"os", "linux"},
                    {"rootfs", {{"type", "layers"}, {"diff_ids", {Sha256Digest(img.layer_tar)}}}}}
                   .dump();
  img.manifest = json{{"schemaVersion", 2},
                      {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                      {"config",
                       {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                        {"digest", Sha256Digest(img.config)},
                        {"size", img.config.size()}}},
                      {"layers",
                       {{{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                         {"digest", Sha256Digest(img.layer)},
                         {"size", img.layer.size()}}}}}
                     .dump();
  return img;
}

std::vector<TarEntry> OciLayout(const OciImage& img, const json& annotations) {
  json index = {{"schemaVersion", 2},
                {"manifests",
                 {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                   {"digest", Sha256Digest(img.manifest)},
                   {"size", img.manifest.size()},
                   {"annotations", annotations}}}}};
  return {File("oci-layout", R"({"imageLayoutVersion":"1.0.0"})"),
          File("index.json", index.dump()),
          Dir("blobs"),
          Dir("blobs/sha256"),
          File("blobs/sha256/" + Hex(Sha256Digest(img.layer)), img.layer),
          File("blobs/sha256/" + Hex(Sha256Digest(img.config)), img.config),
          File("blobs/sha256/" + Hex(Sha256Digest(img.manifest)), img.manifest)};
}

Code ImportCode(const std::string& path, berth::content::Store& store, std::string* msg = nullptr) {
  try {
    berth::image::ImportArchive(path, store);
  } catch (const Error& e) {
    if (msg) *msg = e.what();
    return e.code();
  }
  return Code::kOk;
}

TEST(Archive, ImportOciLayoutAndUnpack) {
  TempDir dir;
  berth::content::Store store(dir / "content");
  OciImage img = MakeOciImage();
  WriteFile(dir / "oci.tar",
            BuildTar(OciLayout(img, {{"io.containerd.image.name", "docker.io/library/test:1"},
                                     {"org.opencontainers.image.ref.name", "1"}})));
  auto images = berth::image::ImportArchive(dir / "oci.tar", store);
  ASSERT_EQ(images.size(), 1u);
  EXPECT_EQ(images[0].name, "docker.io/library/test:1");
  EXPECT_EQ(images[0].manifest_digest, Sha256Digest(img.manifest));
  EXPECT_EQ(images[0].media_type, "application/vnd.oci.image.manifest.v1+json");
  EXPECT_EQ(store.List().size(), 3u);

  auto sn = berth::snapshot::NewNative(dir / "snap");
  std::string top =
      berth::image::Unpack(store, *sn, {Sha256Digest(img.layer)}, {Sha256Digest(img.layer_tar)});
  auto m = sn->View("v", top);
  std::ifstream f(m[0].source + "/etc/motd");
  std::string line;
  std::getline(f, line);
  EXPECT_EQ(line, "hello from oci");

  // Compressed archive with only the short ref name; importing again is fine.
  WriteFile(dir / "oci.tar.gz",
            BuildTar(OciLayout(img, {{"org.opencontainers.image.ref.name", "latest"}}),
                     TarCompression::kGzip));
  images = berth::image::ImportArchive(dir / "oci.tar.gz", store);
  ASSERT_EQ(images.size(), 1u);
  EXPECT_EQ(images[0].name, "latest");
}

TEST(Archive, ImportDockerSave) {
  TempDir dir;
  berth::content::Store store(dir / "content");
  std::string l1 = BuildTar({File("bin/a", "a")});
  std::string l2 = BuildTar({File("bin/b", "b")});
  std::string config =
      json{{"architecture", "amd64"},
           {"os", "linux"},
           {"rootfs",
            {{"type", "layers"},
             {"diff_ids", {Sha256Digest(l1), Sha256Digest(l2), Sha256Digest(l1)}}}}}
          .dump();
  std::string config_name = Hex(Sha256Digest(config)) + ".json";
  json manifest = json::array({{{"Config", config_name},
                                {"RepoTags", {"busybox:latest", "example.com/x/busybox:1"}},
                                {"Layers", {"aaa/layer.tar", "bbb/layer.tar", "ccc/layer.tar"}}}});
  std::string stray = "{\"id\":\"aaa\"}";
  WriteFile(dir / "save.tar",
            BuildTar({Dir("aaa"), File("aaa/VERSION", "1.0"), File("aaa/json", stray),
                      File("aaa/layer.tar", l1), Dir("bbb"), File("bbb/layer.tar", l2), Dir("ccc"),
                      Symlink("ccc/layer.tar", "../aaa/layer.tar"), File(config_name, config),
                      File("repositories", "{}"), File("manifest.json", manifest.dump())}));
  auto images = berth::image::ImportArchive(dir / "save.tar", store);
  ASSERT_EQ(images.size(), 2u);
  EXPECT_EQ(images[0].name, "busybox:latest");
  EXPECT_EQ(images[1].name, "example.com/x/busybox:1");
  EXPECT_EQ(images[0].manifest_digest, images[1].manifest_digest);
  EXPECT_EQ(images[0].media_type, "application/vnd.docker.distribution.manifest.v2+json");

  json m = json::parse(store.Read(images[0].manifest_digest));
  EXPECT_EQ(m["schemaVersion"], 2);
  EXPECT_EQ(m["config"]["digest"], Sha256Digest(config));
  EXPECT_EQ(m["config"]["mediaType"], "application/vnd.docker.container.image.v1+json");
  ASSERT_EQ(m["layers"].size(), 3u);
  EXPECT_EQ(m["layers"][0]["digest"], Sha256Digest(l1));
  EXPECT_EQ(m["layers"][1]["digest"], Sha256Digest(l2));
  EXPECT_EQ(m["layers"][2]["digest"], Sha256Digest(l1));
  EXPECT_EQ(m["layers"][0]["mediaType"], "application/vnd.docker.image.rootfs.diff.tar");
  EXPECT_EQ(m["layers"][0]["size"], l1.size());
  EXPECT_FALSE(store.Has(Sha256Digest(stray)));  // unreferenced loose files are not kept
  EXPECT_FALSE(store.Has(Sha256Digest("1.0")));
  EXPECT_EQ(store.List().size(), 4u);  // config, 2 layers, manifest

  auto sn = berth::snapshot::NewNative(dir / "snap");
  std::string top =
      berth::image::Unpack(store, *sn, {Sha256Digest(l1), Sha256Digest(l2), Sha256Digest(l1)},
                           {Sha256Digest(l1), Sha256Digest(l2), Sha256Digest(l1)});
  EXPECT_EQ(sn->List().size(), 3u);
  EXPECT_FALSE(top.empty());
}

TEST(Archive, HostileArchivesAreRejected) {
  TempDir dir;
  OciImage img = MakeOciImage();
  struct Case {
    std::string label;
    std::string data;
    std::string needle;
  };
  auto layout = OciLayout(img, json::object());
  auto without = [&](const std::string& name) {
    std::vector<TarEntry> v;
    for (auto& e : layout)
      if (e.name != name) v.push_back(e);
    return v;
  };
  auto with = [&](std::vector<TarEntry> v, TarEntry e) {
    v.push_back(std::move(e));
    return v;
  };
  std::string bad_hex = std::string(64, 'a');
  std::vector<Case> cases = {
      {"dotdot entry", BuildTar(with(layout, File("../evil", "x"))), "\"../evil\""},
      {"wrong blob content",
       BuildTar(with(without(""), File("blobs/sha256/" + bad_hex, "not matching"))),
       "blobs/sha256/" + bad_hex},
      {"bad blob name", BuildTar(with(layout, File("blobs/sha256/xyz", "x"))), "blobs/sha256/xyz"},
      {"missing manifest blob",
       BuildTar(without("blobs/sha256/" + Hex(Sha256Digest(img.manifest)))), "not in the archive"},
      {"missing layer blob", BuildTar(without("blobs/sha256/" + Hex(Sha256Digest(img.layer)))),
       "not in the archive"},
      {"index not json", BuildTar(with(without("index.json"), File("index.json", "{nope"))),
       "index.json"},
      {"no index or manifest", BuildTar({File("hello", "x")}), "neither"},
      {"docker layer escapes",
       BuildTar({File("c.json", "{}"),
                 File("manifest.json", R"([{"Config":"c.json","Layers":["../../etc/passwd"]}])")}),
       "../../etc/passwd"},
      {"docker missing layer",
       BuildTar({File("c.json", "{}"),
                 File("manifest.json", R"([{"Config":"c.json","Layers":["nope/layer.tar"]}])")}),
       "nope/layer.tar"},
      {"docker link loop",
       BuildTar({File("c.json", "{}"), Symlink("a", "b"), Symlink("b", "a"),
                 File("manifest.json", R"([{"Config":"c.json","Layers":["a"]}])")}),
       "\"a\""},
      {"docker manifest not a list", BuildTar({File("manifest.json", R"({"Config":"x"})")}),
       "not a list"},
      {"garbage", std::string(2000, 'g'), "image archive"},
  };
  int i = 0;
  for (auto& c : cases) {
    std::string p = dir / ("bad" + std::to_string(i++) + ".tar");
    WriteFile(p, c.data);
    std::string msg;
    berth::content::Store fresh(dir / ("content" + std::to_string(i)));
    EXPECT_EQ(ImportCode(p, fresh, &msg), Code::kInvalidArgument) << c.label << ": " << msg;
    EXPECT_NE(msg.find(c.needle), std::string::npos) << c.label << ": " << msg;
    EXPECT_FALSE(berth::fs::Exists(dir / "evil"));
    // Nothing rejected for its content is left in the store under a wrong name.
    for (auto& d : fresh.List()) EXPECT_EQ(Sha256Digest(fresh.Read(d)), d) << c.label;
  }
}

}  // namespace
