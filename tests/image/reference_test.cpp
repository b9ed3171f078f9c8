#include "image/reference.h"

#include <gtest/gtest.h>

#include "common/error.h"

using berth::Code;
using berth::Error;
using berth::image::ParseReference;

namespace {

std::string Norm(const std::string& s) { return ParseReference(s).String(); }

std::string ErrorOf(const std::string& s) {
  try {
    ParseReference(s);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument) << s;
    return e.what();
  }
  ADD_FAILURE() << "expected \"" << s << "\" to be rejected";
  return "";
}

TEST(Reference, Normalises) {
  EXPECT_EQ(Norm("busybox"), "docker.io/library/busybox:latest");
  EXPECT_EQ(Norm("busybox:1.36"), "docker.io/library/busybox:1.36");
  EXPECT_EQ(Norm("library/busybox"), "docker.io/library/busybox:latest");
  EXPECT_EQ(Norm("docker.io/busybox"), "docker.io/library/busybox:latest");
  EXPECT_EQ(Norm("index.docker.io/library/busybox"), "docker.io/library/busybox:latest");
  EXPECT_EQ(Norm("user/app"), "docker.io/user/app:latest");
  EXPECT_EQ(Norm("registry.k8s.io/pause:3.9"), "registry.k8s.io/pause:3.9");
  EXPECT_EQ(Norm("localhost/app"), "localhost/app:latest");
  EXPECT_EQ(Norm("localhost:5000/a/b/c:v1"), "localhost:5000/a/b/c:v1");
  EXPECT_EQ(Norm("127.0.0.1:5000/test/busybox:v1"), "127.0.0.1:5000/test/busybox:v1");
  EXPECT_EQ(Norm("[::1]:5000/app:v1"), "[::1]:5000/app:v1");
  EXPECT_EQ(Norm("Example.COM/app"), "Example.COM/app:latest");
  EXPECT_EQ(Norm("a__b/c.d-e--f_g:V1.0_x-y"), "docker.io/a__b/c.d-e--f_g:V1.0_x-y");
}

TEST(Reference, Digests) {
  const std::string d = "sha256:" + std::string(64, 'a');
  auto r = ParseReference("busybox@" + d);
  EXPECT_EQ(r.tag, "");
  EXPECT_EQ(r.digest, d);
  EXPECT_EQ(r.String(), "docker.io/library/busybox@" + d);
  EXPECT_EQ(r.Familiar(), "busybox@" + d);
  auto both = ParseReference("host:5000/app:v2@" + d);
  EXPECT_EQ(both.domain, "host:5000");
  EXPECT_EQ(both.path, "app");
  EXPECT_EQ(both.tag, "v2");
  EXPECT_EQ(both.String(), "host:5000/app:v2@" + d);
  EXPECT_EQ(both.Repository(), "host:5000/app");
}

TEST(Reference, Familiar) {
  EXPECT_EQ(ParseReference("busybox").Familiar(), "busybox:latest");
  EXPECT_EQ(ParseReference("user/app:1").Familiar(), "user/app:1");
  EXPECT_EQ(ParseReference("quay.io/x/y").Familiar(), "quay.io/x/y:latest");
  EXPECT_EQ(ParseReference("busybox").Repository(), "docker.io/library/busybox");
  // A first path component that looks like a host keeps the docker.io prefix.
  EXPECT_EQ(ParseReference("docker.io/er.io/app").Familiar(), "docker.io/er.io/app:latest");
}

TEST(Reference, Rejects) {
  EXPECT_NE(ErrorOf("").find("empty"), std::string::npos);
  EXPECT_NE(ErrorOf("Busybox").find("lowercase"), std::string::npos);
  EXPECT_NE(ErrorOf("docker.io/Library/busybox").find("lowercase"), std::string::npos);
  EXPECT_NE(ErrorOf(std::string(64, 'a')).find("64-byte"), std::string::npos);
  EXPECT_NE(ErrorOf("busybox:").find("tag"), std::string::npos);
  EXPECT_NE(ErrorOf("busybox:-x").find("tag"), std::string::npos);
  EXPECT_NE(ErrorOf("busybox:" + std::string(129, 'a')).find("128"), std::string::npos);
  EXPECT_NE(ErrorOf("busybox@sha256:abc").find("digest"), std::string::npos);
  EXPECT_NE(ErrorOf("busybox@md5:" + std::string(32, 'a')).find("digest"), std::string::npos);
  EXPECT_NE(ErrorOf("busybox@" + std::string(64, 'a')).find("algorithm"), std::string::npos);
  EXPECT_NE(ErrorOf("a/" + std::string(260, 'b')).find("255"), std::string::npos);
  ErrorOf("bus box");
  ErrorOf("busybox/");
  ErrorOf("/busybox");
  ErrorOf("a//b");
  ErrorOf("-host/app");
  ErrorOf("host:port/app");
  ErrorOf("a..b/c");
  ErrorOf("app_");
  ErrorOf("a___b");
  ErrorOf("ex ample.com/app");
  ErrorOf(":tag");
  ErrorOf("@sha256:" + std::string(64, 'a'));
  ErrorOf("café");
  ErrorOf("example.com:/app");
}

TEST(Reference, ErrorNamesInput) {
  std::string msg = ErrorOf("Bad/Name");
  EXPECT_NE(msg.find("invalid image reference \"Bad/Name\""), std::string::npos) << msg;
}

}  // namespace
