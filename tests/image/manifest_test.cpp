#include "image/manifest.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "common/fs.h"
#include "image/hosts.h"
#include "image/registry.h"

using namespace berth::image;
using berth::Code;
using berth::Error;

namespace {

const std::string kD1 = "sha256:" + std::string(64, '1');
const std::string kD2 = "sha256:" + std::string(64, '2');
const std::string kD3 = "sha256:" + std::string(64, '3');

std::string Desc(const std::string& mt, const std::string& d, int size, const std::string& extra = "") {
  return R"({"mediaType":")" + mt + R"(","digest":")" + d + R"(","size":)" + std::to_string(size) + extra + "}";
}
std::string Plat(const std::string& arch, const std::string& variant = "") {
  return R"(,"platform":{"os":"linux","architecture":")" + arch + "\"" +
         (variant.empty() ? "" : R"(,"variant":")" + variant + "\"") + "}";
}

TEST(Manifest, ParsesOciManifest) {
  std::string m = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":)" +
                  Desc("application/vnd.oci.image.config.v1+json", kD1, 100) + R"(,"layers":[)" +
                  Desc("application/vnd.oci.image.layer.v1.tar+gzip", kD2, 200) + "]}";
  EXPECT_EQ(DetectManifestType(m, ""), mediatype::kOciManifest);
  Manifest man = ParseManifest(m, "");
  EXPECT_EQ(man.config.digest, kD1);
  ASSERT_EQ(man.layers.size(), 1u);
  EXPECT_EQ(man.layers[0].size, 200);
}

TEST(Manifest, DockerSchema2FromContentType) {
  std::string m = R"({"schemaVersion":2,"config":)" +
                  Desc("application/vnd.docker.container.image.v1+json", kD1, 100) + R"(,"layers":[)" +
                  Desc("application/vnd.docker.image.rootfs.diff.tar.gzip", kD2, 200) + "]}";
  std::string mt = DetectManifestType(m, "application/vnd.docker.distribution.manifest.v2+json; charset=utf-8");
  EXPECT_EQ(mt, mediatype::kDockerManifest);
  EXPECT_EQ(ParseManifest(m, mt).layers.size(), 1u);
}

TEST(Manifest, RejectsBadDocuments) {
  auto rejects = [](const std::string& doc) {
    try {
      ParseManifest(doc, mediatype::kOciManifest);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kInvalidArgument);
      return std::string(e.what());
    }
    ADD_FAILURE() << doc;
    return std::string();
  };
  rejects("not json");
  rejects("[]");
  rejects(R"({"schemaVersion":2})");
  rejects(R"({"schemaVersion":2,"config":{"digest":"sha256:x","size":1},"layers":[]})");
  rejects(R"({"schemaVersion":2,"config":)" + Desc("application/vnd.oci.image.config.v1+json", kD1, -1) +
          R"(,"layers":[]})");
  EXPECT_NE(rejects(R"({"schemaVersion":2,"config":)" + Desc("application/vnd.oci.image.config.v1+json", kD1, 1) +
                    R"(,"layers":[)" + Desc("text/html", kD2, 1) + "]}")
                .find("text/html"),
            std::string::npos);
  EXPECT_THROW(DetectManifestType(R"({"schemaVersion":1,"fsLayers":[]})", ""), Error);
  EXPECT_THROW(DetectManifestType(std::string(kMaxManifestSize + 1, ' '), ""), Error);
}

TEST(Manifest, ConfigDiffIdsAndUser) {
  std::string c = R"({"architecture":"amd64","os":"linux","config":{"User":"1000:1000"},"rootfs":{"type":"layers","diff_ids":[")" +
                  kD1 + R"("]}})";
  ImageConfig cfg = ParseConfig(c);
  EXPECT_EQ(cfg.user, "1000:1000");
  ASSERT_EQ(cfg.diff_ids.size(), 1u);
  EXPECT_THROW(ParseConfig(R"({"rootfs":{"type":"x","diff_ids":[]}})"), Error);
  EXPECT_THROW(ParseConfig(R"({"rootfs":{"type":"layers","diff_ids":["nope"]}})"), Error);
  EXPECT_THROW(ParseConfig(R"({"config":"str","rootfs":{"type":"layers","diff_ids":[]}})"), Error);
}

TEST(Platform, Normalises) {
  EXPECT_EQ(PlatformString(NormalizePlatform({"Linux", "x86_64", "", ""})), "linux/amd64");
  EXPECT_EQ(PlatformString(NormalizePlatform({"linux", "aarch64", "v8", ""})), "linux/arm64");
  EXPECT_EQ(PlatformString(NormalizePlatform({"linux", "armhf", "", ""})), "linux/arm/v7");
  EXPECT_EQ(PlatformString(NormalizePlatform({"linux", "arm", "", ""})), "linux/arm/v7");
  EXPECT_EQ(HostPlatform().os, "linux");
  EXPECT_FALSE(HostPlatform().architecture.empty());
}

TEST(Platform, SelectsFromIndex) {
  const std::string mt = std::string(mediatype::kOciManifest);
  std::string idx = R"({"schemaVersion":2,"manifests":[)" + Desc(mt, kD1, 1, Plat("arm", "v6")) + "," +
                    Desc(mt, kD2, 1, Plat("amd64")) + "," + Desc(mt, kD3, 1, Plat("arm64", "v8")) +
                    R"(,{"mediaType":")" + mt + R"(","digest":")" + kD3 +
                    R"(","size":1,"platform":{"os":"unknown","architecture":"unknown"}}]})";
  Index index = ParseIndex(idx, mediatype::kOciIndex);
  EXPECT_EQ(SelectPlatform(index, {"linux", "amd64", "", ""}), 1);
  EXPECT_EQ(SelectPlatform(index, {"linux", "arm64", "", ""}), 2);
  EXPECT_EQ(SelectPlatform(index, {"linux", "arm", "v7", ""}), 0);  // v7 runs v6
  EXPECT_EQ(SelectPlatform(index, {"linux", "arm", "v5", ""}), -1);
  EXPECT_EQ(SelectPlatform(index, {"linux", "s390x", "", ""}), -1);
  EXPECT_EQ(SelectPlatform(index, {"windows", "amd64", "", ""}), -1);
  std::string exact = R"({"schemaVersion":2,"manifests":[)" + Desc(mt, kD1, 1, Plat("arm", "v6")) + "," +
                      Desc(mt, kD2, 1, Plat("arm", "v7")) + "]}";
  EXPECT_EQ(SelectPlatform(ParseIndex(exact, mediatype::kOciIndex), {"linux", "arm", "v7", ""}), 1);
}

TEST(Hosts, DefaultsAndOrder) {
  auto d = LoadHosts("", "docker.io");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].BaseURL(), "https://registry-1.docker.io/v2");
  EXPECT_EQ(LoadHosts("", "localhost:5000")[0].BaseURL(), "http://localhost:5000/v2");
  EXPECT_EQ(LoadHosts("", "127.0.0.1:5000")[0].BaseURL(), "http://127.0.0.1:5000/v2");
  EXPECT_EQ(LoadHosts("", "quay.io")[0].BaseURL(), "https://quay.io/v2");

  std::string toml = R"(
server = "https://registry.example.com"
[host."https://zzz-mirror.example.com"]
  capabilities = ["pull", "resolve"]
  ca = "ca.pem"
  skip_verify = true
[host."http://aaa-mirror:5000/custom/prefix"]
  capabilities = ["pull"]
  override_path = true
  [host."http://aaa-mirror:5000/custom/prefix".header]
    x-test = "1"
[host."https://plain.example.com/sub"]
)";
  auto hosts = ParseHostsToml(toml, "registry.example.com", "/etc/certs.d/registry.example.com", "hosts.toml");
  ASSERT_EQ(hosts.size(), 4u);
  EXPECT_EQ(hosts[0].BaseURL(), "https://zzz-mirror.example.com/v2");  // file order, not key order
  EXPECT_TRUE(hosts[0].skip_verify);
  ASSERT_EQ(hosts[0].ca_files.size(), 1u);
  EXPECT_EQ(hosts[0].ca_files[0], "/etc/certs.d/registry.example.com/ca.pem");
  EXPECT_EQ(hosts[1].BaseURL(), "http://aaa-mirror:5000/custom/prefix");
  EXPECT_TRUE(hosts[1].pull);
  EXPECT_FALSE(hosts[1].resolve);
  EXPECT_EQ(hosts[1].headers.at("x-test"), "1");
  EXPECT_EQ(hosts[2].BaseURL(), "https://plain.example.com/sub/v2");
  EXPECT_EQ(hosts[3].BaseURL(), "https://registry.example.com/v2");
  EXPECT_TRUE(hosts[3].push);

  EXPECT_THROW(ParseHostsToml("server = 1", "x", "/", "f"), Error);
  EXPECT_THROW(ParseHostsToml("[host.\"ftp://x\"]", "x", "/", "f"), Error);
  EXPECT_THROW(ParseHostsToml("[host.\"https://x\"]\ncapabilities=[\"fly\"]", "x", "/", "f"), Error);
  EXPECT_THROW(ParseHostsToml("= broken", "x", "/", "f"), Error);
}

TEST(Hosts, ConfigPathLookup) {
  char tmpl[] = "/tmp/berth-hosts-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string root = tmpl;
  auto write = [](const std::string& path, const std::string& data) {
    berth::fs::MkdirAll(path.substr(0, path.rfind('/')));
    berth::fs::WriteFileAtomic(path, data);
  };
  write(root + "/reg.example.com_5000_/hosts.toml", "[host.\"http://mirror-port\"]\n");
  write(root + "/reg.example.com/hosts.toml", "[host.\"http://mirror-noport\"]\n");
  write(root + "/certs.example.com/ca.crt", "x");
  write(root + "/certs.example.com/client.cert", "x");
  write(root + "/certs.example.com/client.key", "x");
  write(root + "/_default/hosts.toml", "[host.\"http://fallback\"]\n");
  EXPECT_EQ(LoadHosts(root, "reg.example.com:5000")[0].host, "mirror-port");
  EXPECT_EQ(LoadHosts(root, "reg.example.com")[0].host, "mirror-noport");
  auto other = LoadHosts(root, "other.example.com");
  ASSERT_EQ(other.size(), 2u);
  EXPECT_EQ(other[0].host, "fallback");
  EXPECT_EQ(other[1].BaseURL(), "https://other.example.com/v2");
  auto certs = LoadHosts(root, "certs.example.com");
  ASSERT_EQ(certs.size(), 1u);
  EXPECT_EQ(certs[0].ca_files, std::vector<std::string>{root + "/certs.example.com/ca.crt"});
  ASSERT_EQ(certs[0].client_certs.size(), 1u);
  EXPECT_EQ(certs[0].client_certs[0].second, root + "/certs.example.com/client.key");
  berth::fs::RemoveAll(root);
}

TEST(Auth, ChallengesAndBase64) {
  auto cs = ParseAuthChallenges(
      R"(Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push", Basic realm="x")");
  ASSERT_EQ(cs.size(), 2u);
  EXPECT_EQ(cs[0].scheme, "bearer");
  EXPECT_EQ(cs[0].params["realm"], "https://auth.example.com/token");
  EXPECT_EQ(cs[0].params["scope"], "repository:a/b:pull,push");
  EXPECT_EQ(cs[1].scheme, "basic");
  EXPECT_EQ(Base64Decode(Base64Encode("user:pa:ss")), "user:pa:ss");
  EXPECT_EQ(Base64Encode("ab"), "YWI=");
  EXPECT_EQ(Base64Decode("dXNlcjpwYXNz"), "user:pass");
  EXPECT_THROW(Base64Decode("!!"), Error);
}

}  // namespace
