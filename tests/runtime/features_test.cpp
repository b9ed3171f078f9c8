#include <sys/stat.h>

#include <filesystem>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/fs.h"
#include "runtime/features.h"
#include "runtime/hostcompat.h"
#include "support/support.h"

namespace berth::runtime {
namespace {

const char* kRunc = R"({
  "ociVersionMin": "1.0.0",
  "ociVersionMax": "1.1.0",
  "hooks": ["prestart"],
  "mountOptions": ["bind", "rbind", "ro", "rro", "rprivate"],
  "linux": {
    "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
    "capabilities": ["CAP_CHOWN", "CAP_SYS_ADMIN"],
    "cgroup": {"v1": true, "v2": true, "systemd": true},
    "seccomp": {"enabled": true, "actions": ["SCMP_ACT_ALLOW"]},
    "apparmor": {"enabled": true},
    "selinux": {"enabled": false},
    "mountExtensions": {"idmap": {"enabled": true}}
  },
  "annotations": {"io.github.seccomp.libseccomp.version": "2.5.4"},
  "potentiallyUnsafeConfigAnnotations": ["bundle"]
})";

TEST(Features, ParsesEverythingAndKeepsTheDocument) {
  auto f = ParseFeatures(kRunc);
  EXPECT_EQ(f.oci_version_min, "1.0.0");
  EXPECT_EQ(f.oci_version_max, "1.1.0");
  EXPECT_TRUE(f.SupportsRRO());
  EXPECT_TRUE(f.HasMountOption("rbind"));
  EXPECT_FALSE(f.HasMountOption("ridmap"));
  EXPECT_TRUE(f.SupportsUserns());
  EXPECT_EQ(f.capabilities.size(), 2u);
  EXPECT_EQ(f.seccomp_enabled, true);
  EXPECT_EQ(f.seccomp_actions, std::vector<std::string>{"SCMP_ACT_ALLOW"});
  EXPECT_EQ(f.apparmor_enabled, true);
  EXPECT_EQ(f.selinux_enabled, false);
  EXPECT_EQ(f.cgroup_systemd, true);
  EXPECT_EQ(f.idmap_enabled, true);
  EXPECT_EQ(f.document()["annotations"]["io.github.seccomp.libseccomp.version"], "2.5.4");
  EXPECT_EQ(f.document()["potentiallyUnsafeConfigAnnotations"][0], "bundle");
}

TEST(Features, MinimalDocumentHasNoOptionalParts) {
  auto f = ParseFeatures(R"({"ociVersionMin":"1.0.0","ociVersionMax":"1.0.2"})");
  EXPECT_FALSE(f.SupportsRRO());
  EXPECT_FALSE(f.idmap_enabled.has_value());
  EXPECT_FALSE(f.seccomp_enabled.has_value());
  EXPECT_TRUE(f.namespaces.empty());
}

void ExpectInvalid(const std::string& text, const std::string& fragment) {
  try {
    ParseFeatures(text);
    FAIL() << "accepted: " << text;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Features, RejectsBadDocuments) {
  ExpectInvalid("", "output is not JSON");
  ExpectInvalid("unknown command features", "output is not JSON");
  ExpectInvalid("[1,2]", "expected a JSON object");
  ExpectInvalid(R"({"ociVersionMax":"1.0.2"})", "missing ociVersionMin");
  ExpectInvalid(R"({"ociVersionMin":"1.0.0"})", "missing ociVersionMax");
  ExpectInvalid(R"({"ociVersionMin":1,"ociVersionMax":"1"})", "ociVersionMin: expected a non-empty string");
  ExpectInvalid(R"({"ociVersionMin":"1","ociVersionMax":"1","mountOptions":"rro"})",
                "mountOptions: expected an array of strings");
  ExpectInvalid(R"({"ociVersionMin":"1","ociVersionMax":"1","mountOptions":[1]})",
                "mountOptions: expected an array of strings");
  ExpectInvalid(R"({"ociVersionMin":"1","ociVersionMax":"1","linux":[]})", "linux: expected an object");
  ExpectInvalid(R"({"ociVersionMin":"1","ociVersionMax":"1","linux":{"namespaces":{}}})",
                "linux.namespaces: expected an array of strings");
  ExpectInvalid(R"({"ociVersionMin":"1","ociVersionMax":"1","linux":{"mountExtensions":{"idmap":{"enabled":"yes"}}}})",
                "linux.mountExtensions.idmap.enabled: expected a boolean");
}

TEST(Features, ResolveRuntimeBinary) {
  EXPECT_THROW(ResolveRuntimeBinary("/nonexistent/runc", ""), Error);
  EXPECT_EQ(ResolveRuntimeBinary("sh", "/usr/bin/false")[0], '/');
  EXPECT_EQ(ResolveRuntimeBinary("", "/bin/sh"), "/bin/sh");
}

TEST(Features, QueryRunsTheCommand) {
  testing::TempDir tmp;
  std::string good = tmp / "good-runtime";
  testing::WriteFile(good, std::string("#!/bin/sh\n[ \"$1\" = features ] && cat <<'X'\n") + kRunc + "\nX\n");
  std::string none = tmp / "old-runtime";
  testing::WriteFile(none, "#!/bin/sh\necho 'unknown command features' >&2\nexit 1\n");
  std::string bad = tmp / "bad-runtime";
  testing::WriteFile(bad, "#!/bin/sh\necho '{}'\n");
  for (const auto& p : {good, none, bad}) ASSERT_EQ(::chmod(p.c_str(), 0755), 0);

  auto q = QueryFeatures(good);
  EXPECT_TRUE(q.has_features_command);
  ASSERT_TRUE(q.features.has_value()) << q.error;
  EXPECT_TRUE(q.features->SupportsRRO());

  q = QueryFeatures(none);
  EXPECT_FALSE(q.has_features_command);
  EXPECT_FALSE(q.features.has_value());
  EXPECT_NE(q.error.find("unknown command features"), std::string::npos) << q.error;

  q = QueryFeatures(bad);
  EXPECT_TRUE(q.has_features_command);
  EXPECT_FALSE(q.features.has_value());
  EXPECT_NE(q.error.find("missing ociVersionMin"), std::string::npos) << q.error;
}

TEST(Features, DiskCacheSurvivesTheProcessAndFollowsTheBinary) {
  testing::TempDir tmp;
  const std::string cache = tmp / "probes";
  const std::string counter = tmp / "runs";
  std::string rt = tmp / "runtime";
  // Counts its runs so that the test can tell an exec from a cache answer.
  auto script = [&](const std::string& doc) {
    return "#!/bin/sh\necho x >> " + counter + "\n[ \"$1\" = features ] && cat <<'X'\n" + doc + "\nX\n";
  };
  auto runs = [&] { return fs::Exists(counter) ? fs::ReadFile(counter).size() / 2 : 0; };
  testing::WriteFile(rt, script(kRunc));
  ASSERT_EQ(::chmod(rt.c_str(), 0755), 0);

  auto q = QueryFeatures(rt, std::chrono::seconds(10), cache);
  ASSERT_TRUE(q.features.has_value()) << q.error;
  EXPECT_FALSE(q.cached);
  EXPECT_EQ(runs(), 1u);
  ClearFeaturesCache();  // as after a restart
  q = QueryFeatures(rt, std::chrono::seconds(10), cache);
  ASSERT_TRUE(q.features.has_value()) << q.error;
  EXPECT_TRUE(q.cached);
  EXPECT_TRUE(q.features->SupportsRRO());
  EXPECT_EQ(q.features->document()["annotations"]["io.github.seccomp.libseccomp.version"], "2.5.4");
  EXPECT_EQ(runs(), 1u);

  // A damaged cache file is ignored and rewritten.
  std::string file;
  for (const auto& e : std::filesystem::directory_iterator(cache)) file = e.path();
  ASSERT_FALSE(file.empty());
  testing::WriteFile(file, "{\"version\": 1, \"key\": ");
  ClearFeaturesCache();
  q = QueryFeatures(rt, std::chrono::seconds(10), cache);
  EXPECT_FALSE(q.cached);
  EXPECT_EQ(runs(), 2u);
  ClearFeaturesCache();
  q = QueryFeatures(rt, std::chrono::seconds(10), cache);
  EXPECT_TRUE(q.cached);
  EXPECT_EQ(runs(), 2u);

  // A replaced binary (new inode, size, mtime) is asked again.
  std::string doc = kRunc;
  doc.replace(doc.find("\"rro\", "), 7, "");
  std::string next = tmp / "runtime.new";
  testing::WriteFile(next, script(doc));
  ASSERT_EQ(::chmod(next.c_str(), 0755), 0);
  ASSERT_EQ(::rename(next.c_str(), rt.c_str()), 0);
  ClearFeaturesCache();
  q = QueryFeatures(rt, std::chrono::seconds(10), cache);
  ASSERT_TRUE(q.features.has_value()) << q.error;
  EXPECT_FALSE(q.cached);
  EXPECT_FALSE(q.features->SupportsRRO());
  EXPECT_EQ(runs(), 3u);

  // A runtime without `features` is remembered as such; a timeout is not remembered.
  std::string old = tmp / "old-runtime";
  testing::WriteFile(old, "#!/bin/sh\necho 'unknown command features' >&2\nexit 1\n");
  std::string slow = tmp / "slow-runtime";
  testing::WriteFile(slow, "#!/bin/sh\nexec sleep 5\n");
  for (const auto& p : {old, slow}) ASSERT_EQ(::chmod(p.c_str(), 0755), 0);
  QueryFeatures(old, std::chrono::seconds(10), cache);
  auto t = QueryFeatures(slow, std::chrono::milliseconds(100), cache);
  EXPECT_FALSE(t.features.has_value());
  ClearFeaturesCache();
  q = QueryFeatures(old, std::chrono::seconds(10), cache);
  EXPECT_TRUE(q.cached);
  EXPECT_FALSE(q.has_features_command);
  EXPECT_NE(q.error.find("unknown command features"), std::string::npos) << q.error;
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(cache)) ++files;
  EXPECT_EQ(files, 2u);  // runtime and old-runtime
  ClearFeaturesCache();
}

}  // namespace
}  // namespace berth::runtime
