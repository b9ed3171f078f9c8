// Tests of berth_config: loading, imports, migration (golden + lossless), defaults, TOML output.
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "common/error.h"
#include "config/config.h"
#include "config/cri.h"
#include "config/toml_io.h"
#include "support/support.h"

namespace berth::config {
namespace {

using detail::Tree;

const std::string kTestData = BERTH_CONFIG_TESTDATA;

// Key order is not significant when comparing trees.
nlohmann::json Unordered(const Tree& t) { return nlohmann::json::parse(t.dump()); }

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string ErrorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool Contains(const std::vector<std::string>& list, const std::string& needle) {
  for (const auto& s : list)
    if (s.find(needle) != std::string::npos) return true;
  return false;
}

// ---- golden migrations ----

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, MigratedOutputMatches) {
  const std::string in = kTestData + "/golden/" + GetParam() + ".toml";
  const std::string want_path = kTestData + "/golden/" + GetParam() + ".migrated.toml";
  LoadResult r = LoadFile(in);
  EXPECT_EQ(r.config.version, 3);
  std::string got = ToToml(r.config);
  if (std::getenv("BERTH_UPDATE_GOLDEN")) {
    std::ofstream(want_path) << got;
    std::ofstream(kTestData + "/golden/" + GetParam() + ".warnings.txt") << [&] {
      std::string w;
      for (const auto& s : r.warnings) w += s.substr(s.find(": ") + 2) + "\n";
      return w;
    }();
  }
  EXPECT_EQ(got, Slurp(want_path)) << "regenerate with BERTH_UPDATE_GOLDEN=1 after review";
  std::string warnings;
  for (const auto& s : r.warnings) warnings += s.substr(s.find(": ") + 2) + "\n";
  EXPECT_EQ(warnings, Slurp(kTestData + "/golden/" + GetParam() + ".warnings.txt"));

  // The migrated output is itself a version-3 config that loads without migration and gives the
  // same tree.
  LoadResult again = LoadString(got, "migrated.toml");
  EXPECT_EQ(again.file_version, 3);
  EXPECT_FALSE(Contains(again.warnings, "migrated"));
  EXPECT_EQ(Unordered(ToTree(again.config)), Unordered(ToTree(r.config)));
}

// Every leaf key of the input is found in the output (at its migrated place, with its value) or
// is named in a warning.
void Leaves(const Tree& t, const std::vector<std::string>& path,
            std::vector<std::pair<std::vector<std::string>, Tree>>& out) {
  if (t.is_object() && !t.empty()) {
    for (const auto& [k, v] : t.items()) {
      auto p = path;
      p.push_back(k);
      Leaves(v, p, out);
    }
    return;
  }
  out.emplace_back(path, t);
}

std::string PathString(const std::vector<std::string>& p) {
  std::string s;
  for (const auto& k : p) s = detail::JoinKey(s, k);
  return s;
}

const Tree* At(const Tree& t, const std::vector<std::string>& p) {
  const Tree* cur = &t;
  for (const auto& k : p) {
    if (!cur->is_object() || !cur->contains(k)) return nullptr;
    cur = &(*cur)[k];
  }
  return cur;
}

TEST_P(Golden, Lossless) {
  const std::string in = kTestData + "/golden/" + GetParam() + ".toml";
  Tree input = detail::ParseToml(Slurp(in), in);
  LoadResult r = LoadFile(in);
  Tree output = ToTree(r.config);
  std::string warnings;
  for (const auto& w : r.warnings) warnings += w + "\n";

  std::vector<std::pair<std::vector<std::string>, Tree>> leaves;
  Leaves(input, {}, leaves);
  ASSERT_GT(leaves.size(), 10u);
  int checked = 0;
  for (const auto& [path, value] : leaves) {
    if (path == std::vector<std::string>{"version"}) continue;
    // Named in a warning, itself or the table holding it ("<path> = ...").
    bool named = warnings.find(PathString(path)) != std::string::npos;
    for (size_t n = 2; n < path.size() && !named; ++n) {
      std::vector<std::string> prefix(path.begin(), path.begin() + n);
      named = warnings.find(PathString(prefix) + " = ") != std::string::npos;
    }
    if (named) continue;
    // Candidate places in the output.
    std::vector<std::vector<std::string>> candidates;
    if (path.size() < 2 || path[0] != "plugins") {
      candidates.push_back(path);
    } else {
      std::vector<std::string> rest(path.begin() + 2, path.end());
      std::string name = rest.empty() ? "" : rest.back();
      for (const std::string uri :
           {"io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images",
            "io.containerd.grpc.v1.cri", "io.containerd.runtime.v1.linux",
            "io.containerd.snapshotter.v1.overlayfs", "io.containerd.gc.v1.scheduler",
            "io.containerd.internal.v1.opt"}) {
        if (path[1].find('.') != std::string::npos && uri != path[1] &&
            path[1] != "io.containerd.grpc.v1.cri")
          continue;
        auto c = std::vector<std::string>{"plugins", uri};
        auto full = c;
        full.insert(full.end(), rest.begin(), rest.end());
        candidates.push_back(full);
        // Renamed leaves.
        if (name == "sandbox_mode") {
          auto x = full;
          x.back() = "sandboxer";
          candidates.push_back(x);
        }
        if (name == "sandbox_image") candidates.push_back({"plugins", uri, "pinned_images", "sandbox"});
        if (name == "bin_dir") {
          auto x = full;
          x.back() = "bin_dirs";
          candidates.push_back(x);
        }
        if (!rest.empty() && rest[0] == "containerd") {
          auto x = c;
          x.insert(x.end(), rest.begin() + 1, rest.end());
          candidates.push_back(x);
        }
      }
    }
    bool found = false;
    // Version-1 short plugin names in the top-level lists become full URIs.
    if ((path[0] == "disabled_plugins" || path[0] == "required_plugins") && value.is_array()) {
      const Tree* got = At(output, path);
      found = got && got->size() == value.size();
      for (size_t i = 0; found && i < value.size(); ++i) {
        std::string in_name = value[i].get<std::string>(), out_name = (*got)[i].get<std::string>();
        found = out_name == in_name ||
                (out_name.size() > in_name.size() &&
                 out_name.compare(out_name.size() - in_name.size() - 1, std::string::npos,
                                  "." + in_name) == 0);
      }
    }
    for (const auto& cand : candidates) {
      const Tree* got = At(output, cand);
      if (!got) continue;
      if (*got == value) found = true;
      if (got->is_array() && value.is_string())
        for (const auto& e : *got) found = found || e == value;
    }
    EXPECT_TRUE(found) << "input key " << PathString(path) << " = " << value.dump()
                       << " is neither in the output nor named in a warning";
    ++checked;
  }
  EXPECT_GT(checked, 10);
}

TEST(GoldenV2, ValidationOfMigratedConfig) {
  LoadResult r = LoadFile(kTestData + "/golden/v2.toml");
  std::vector<std::string> unknown;
  RuntimeConfig rc = DecodeRuntimeConfig(r.config.plugins[kCRIRuntimePluginURI], &unknown);
  ImageConfig ic = DecodeImageConfig(r.config.plugins[kCRIImagesPluginURI], &unknown);
  ServerConfig sc = DecodeServerConfig(r.config.plugins[kCRIServerPluginURI], &unknown);
  EXPECT_TRUE(unknown.empty()) << unknown.front();
  EXPECT_EQ(rc.containerd.runtimes.at("runc").BinaryName(), "/usr/bin/runc");
  EXPECT_TRUE(rc.containerd.runtimes.at("runc").SystemdCgroup());
  EXPECT_EQ(rc.containerd.runtimes.at("crun").sandboxer, "podsandbox");
  EXPECT_EQ(ic.pinned_images.at("sandbox"), "registry.k8s.io/pause:3.8");
  EXPECT_EQ(ic.registry.config_path, "/etc/containerd/certs.d");
  EXPECT_TRUE(ic.registry.configs.at("registry.example.com").tls->insecure_skip_verify);
  EXPECT_TRUE(ValidateRuntimeConfig(rc).ok());
  Validation iv = ValidateImageConfig(ic);
  ASSERT_EQ(iv.errors.size(), 1u);
  EXPECT_NE(iv.errors[0].find("registry.mirrors (docker.io) cannot be set when"), std::string::npos);
  ASSERT_EQ(iv.deprecations.size(), 2u);
  EXPECT_EQ(iv.deprecations[0].first, kDeprecationCRIRegistryMirrors);
  EXPECT_EQ(iv.deprecations[1].first, kDeprecationCRIRegistryConfigs);
  EXPECT_TRUE(ValidateServerConfig(sc).ok());
}

INSTANTIATE_TEST_SUITE_P(Config, Golden, ::testing::Values("v1", "v2"));

TEST(Migration, ConflictsAreNamedInWarnings) {
  const char* text = R"(
version = 2
[plugins."io.containerd.grpc.v1.cri"]
  enable_selinux = true
  sandbox_image = "pause:1"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    sandbox_mode = "shim"
    sandboxer = "podsandbox"
[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = false
[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "pause:2"
)";
  LoadResult r = LoadString(text, "c.toml");
  EXPECT_TRUE(Contains(r.warnings, "plugins.\"io.containerd.grpc.v1.cri\".enable_selinux = true was not migrated"));
  EXPECT_TRUE(Contains(r.warnings, "plugins.\"io.containerd.cri.v1.images\".pinned_images.sandbox = \"pause:2\" was replaced"));
  EXPECT_TRUE(Contains(r.warnings, "runtimes.runc.sandbox_mode = \"shim\" was not migrated"));
  const Tree& p = r.config.plugins;
  EXPECT_EQ(p["io.containerd.cri.v1.runtime"]["enable_selinux"], false);
  EXPECT_EQ(p["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"], "pause:1");
  EXPECT_FALSE(p.contains("io.containerd.grpc.v1.cri"));
}

TEST(Migration, BinDirFoldedIntoBinDirs) {
  Config c;
  c.plugins = Tree::parse(R"({"io.containerd.grpc.v1.cri": {"cni": {"bin_dir": "/x", "conf_dir": "/c"}}})");
  std::vector<std::string> w;
  MigrateToV3(c, 2, w);
  EXPECT_EQ(c.plugins["io.containerd.cri.v1.runtime"]["cni"]["bin_dirs"], Tree::parse(R"(["/x"])"));
  EXPECT_FALSE(c.plugins["io.containerd.cri.v1.runtime"]["cni"].contains("bin_dir"));
  EXPECT_EQ(c.plugins["io.containerd.cri.v1.runtime"]["cni"]["conf_dir"], "/c");

  Config d;
  d.plugins = Tree::parse(R"({"io.containerd.grpc.v1.cri": {"cni": {"bin_dir": "/x", "bin_dirs": ["/y"]}}})");
  w.clear();
  MigrateToV3(d, 2, w);
  EXPECT_EQ(d.plugins["io.containerd.cri.v1.runtime"]["cni"]["bin_dirs"], Tree::parse(R"(["/y", "/x"])"));
  EXPECT_TRUE(Contains(w, "bin_dir = \"/x\" was folded into"));
}

TEST(Migration, HooksAreNoOpsAtVersion3AndIdempotent) {
  Tree plugins = Tree::parse(R"({"io.containerd.grpc.v1.cri": {"enable_selinux": true, "stream_server_port": "1"}})");
  Tree before = plugins;
  std::vector<std::string> w;
  MigrateCRIRuntime(3, plugins, w);
  MigrateCRIImages(3, plugins, w);
  MigrateCRIServer(3, plugins, w);
  EXPECT_EQ(plugins, before);
  MigrateCRIRuntime(2, plugins, w);
  MigrateCRIImages(2, plugins, w);
  MigrateCRIServer(2, plugins, w);
  Tree once = plugins;
  MigrateCRIRuntime(2, plugins, w);
  MigrateCRIImages(2, plugins, w);
  MigrateCRIServer(2, plugins, w);
  EXPECT_EQ(plugins, once);
  EXPECT_EQ(plugins["io.containerd.grpc.v1.cri"], Tree::parse(R"({"stream_server_port": "1"})"));
  EXPECT_TRUE(w.empty());
}

TEST(Migration, V1PluginNames) {
  LoadResult r = LoadString("disabled_plugins = [\"cri\", \"foo\"]\n[plugins.cri]\nsandbox_image = \"p\"\n"
                            "[plugins.diff-service]\nx = 1\n[plugins.foo]\ny = 2\n",
                            "v1.toml");
  EXPECT_EQ(r.file_version, 1);
  const Tree& p = r.config.plugins;
  EXPECT_TRUE(p.contains("io.containerd.service.v1.diff-service"));
  EXPECT_TRUE(p.contains("io.containerd.grpc.v1.foo"));
  EXPECT_EQ(p["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"], "p");
  EXPECT_EQ(r.config.disabled_plugins,
            (std::vector<std::string>{"io.containerd.grpc.v1.cri", "io.containerd.grpc.v1.foo"}));
  EXPECT_TRUE(Contains(r.warnings, "ambiguous plugin name \"foo\""));
  EXPECT_TRUE(Contains(r.warnings, "configuration migrated from version 1"));
}

// ---- loading ----

TEST(Load, MalformedTomlNamesFileLineColumn) {
  std::string err = ErrorOf([] { LoadString("version = 3\n[plugins\nx = 1\n", "bad.toml"); });
  EXPECT_NE(err.find("bad.toml:2:"), std::string::npos) << err;
  EXPECT_NE(err.find("invalid TOML"), std::string::npos) << err;
  err = ErrorOf([] { LoadString("version = 3\nroot = \"a\"\nroot = \"b\"\n", "dup.toml"); });
  EXPECT_NE(err.find("dup.toml:3:"), std::string::npos) << err;
}

TEST(Load, NestingIsBounded) {
  std::string deep = "version = 3\n[plugins";
  for (int i = 0; i < 200; ++i) deep += ".a";
  deep += "]\nx = 1\n";
  std::string err = ErrorOf([&] { LoadString(deep, "deep.toml"); });
  EXPECT_NE(err.find("deep.toml:2:"), std::string::npos) << err;
  EXPECT_NE(err.find("nested deeper than 128 levels"), std::string::npos) << err;
  std::string arrays = "x = " + std::string(200, '[') + std::string(200, ']') + "\n";
  EXPECT_NE(ErrorOf([&] { LoadString(arrays, "a.toml"); }), "");
}

TEST(Load, WrongTopLevelTypes) {
  EXPECT_EQ(ErrorOf([] { LoadString("root = 5\n", "c.toml"); }),
            "c.toml: root: expected string, got integer");
  EXPECT_EQ(ErrorOf([] { LoadString("version = \"3\"\n", "c.toml"); }),
            "c.toml: version: expected integer, got string");
  EXPECT_EQ(ErrorOf([] { LoadString("disabled_plugins = [1]\n", "c.toml"); }),
            "c.toml: disabled_plugins[0]: expected string, got integer");
  EXPECT_EQ(ErrorOf([] { LoadString("plugins = 1\n", "c.toml"); }),
            "c.toml: plugins: expected table, got integer");
  EXPECT_EQ(ErrorOf([] { LoadString("[grpc]\nuid = 1.5\n", "c.toml"); }),
            "c.toml: grpc.uid: expected integer, got float");
  EXPECT_EQ(ErrorOf([] { LoadString("oom_score = 99999999999\n", "c.toml"); }),
            "c.toml: oom_score: integer 99999999999 out of range");
}

TEST(Load, Versions) {
  EXPECT_NE(ErrorOf([] { LoadString("version = 4\n", "c.toml"); })
                .find("c.toml: version = 4 is not supported"),
            std::string::npos);
  EXPECT_NE(ErrorOf([] { LoadString("version = -1\n", "c.toml"); }).find("not supported"),
            std::string::npos);
  EXPECT_EQ(LoadString("", "c.toml").file_version, 1);
  EXPECT_EQ(LoadString("version = 2", "c.toml").file_version, 2);
  LoadResult r = LoadString("version = 3\nroot = \"/r\"\n", "c.toml");
  EXPECT_EQ(r.file_version, 3);
  EXPECT_EQ(r.config.version, 3);
  EXPECT_EQ(r.config.root, "/r");
  EXPECT_EQ(r.config.state, "/run/berth");
  EXPECT_TRUE(r.warnings.empty());
}

TEST(Load, OtherTopLevelTablesKeptVerbatim) {
  LoadResult r = LoadString(
      "version = 3\n[ttrpc]\naddress = \"x\"\n[timeouts]\n\"io.containerd.timeout.shim.load\" = \"5s\"\n"
      "[grpc]\ntcp_tls_common_name = \"n\"\n[weird]\nk = 1\n",
      "c.toml");
  EXPECT_EQ(r.config.extra["ttrpc"]["address"], "x");
  EXPECT_EQ(r.config.extra["timeouts"]["io.containerd.timeout.shim.load"], "5s");
  EXPECT_EQ(r.config.extra["grpc"]["tcp_tls_common_name"], "n");
  EXPECT_TRUE(Contains(r.warnings, "unknown top-level key weird"));
  EXPECT_TRUE(Contains(r.warnings, "unknown key grpc.tcp_tls_common_name"));
  EXPECT_FALSE(Contains(r.warnings, "ttrpc"));
  LoadResult again = LoadString(ToToml(r.config), "c2.toml");
  EXPECT_EQ(Unordered(ToTree(again.config)), Unordered(ToTree(r.config)));
}

TEST(Load, ImportsWithGlobs) {
  berth::testing::TempDir dir("berth-config");
  berth::testing::WriteFile(dir / "config.toml", R"(
version = 3
root = "/main"
disabled_plugins = ["a.b"]
imports = ["conf.d/*.toml", "/nonexistent-dir/*.toml"]
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.cri.v1.runtime".cni]
  conf_dir = "/main/cni"
[timeouts]
  "t.one" = "1s"
  "t.two" = "2s"
)");
  berth::testing::WriteFile(dir / "conf.d/10-kata.toml", R"(
version = 3
disabled_plugins = ["c.d", "a.b"]
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.kata]
  runtime_type = "io.containerd.kata.v2"
[timeouts]
  "t.one" = "10s"
)");
  // A version-2 drop-in is migrated before it is merged; it also imports the main file (cycle).
  berth::testing::WriteFile(dir / "conf.d/20-registry.toml", R"(
version = 2
state = "/drop-in-state"
imports = ["../config.toml", "extra/x.toml"]
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/berth/certs.d"
[plugins."io.containerd.grpc.v1.cri".cni]
  conf_dir = "/dropin/cni"
)");
  berth::testing::WriteFile(dir / "conf.d/extra/x.toml", "oom_score = -500\n");
  berth::testing::WriteFile(dir / "conf.d/ignored.conf", "this is not toml = = =\n");

  LoadResult r = LoadFile(dir / "config.toml");
  ASSERT_EQ(r.files.size(), 4u);
  EXPECT_EQ(r.files[1], dir / "conf.d/10-kata.toml");
  EXPECT_EQ(r.files[2], dir / "conf.d/20-registry.toml");
  EXPECT_EQ(r.files[3], dir / "conf.d/extra/x.toml");
  const Config& c = r.config;
  EXPECT_EQ(c.root, "/main");
  EXPECT_EQ(c.state, "/drop-in-state");
  EXPECT_EQ(c.oom_score, -500);
  EXPECT_EQ(c.disabled_plugins, (std::vector<std::string>{"a.b", "c.d"}));
  const Tree& rt = c.plugins["io.containerd.cri.v1.runtime"];
  EXPECT_TRUE(rt["containerd"]["runtimes"].contains("runc"));
  EXPECT_TRUE(rt["containerd"]["runtimes"].contains("kata"));
  EXPECT_EQ(rt["cni"]["conf_dir"], "/dropin/cni");
  EXPECT_EQ(c.plugins["io.containerd.cri.v1.images"]["registry"]["config_path"], "/etc/berth/certs.d");
  EXPECT_EQ(c.extra["timeouts"]["t.one"], "10s");
  EXPECT_EQ(c.extra["timeouts"]["t.two"], "2s");
  EXPECT_TRUE(Contains(r.warnings, "20-registry.toml: configuration migrated from version 2"));

  RuntimeConfig decoded = DecodeRuntimeConfig(rt);
  EXPECT_EQ(decoded.containerd.runtimes.at("kata").runtime_type, "io.containerd.kata.v2");
}

TEST(Load, ImportErrors) {
  berth::testing::TempDir dir("berth-config");
  berth::testing::WriteFile(dir / "v2.toml", "version = 2\nimports = [\"v3.toml\"]\n");
  berth::testing::WriteFile(dir / "v3.toml", "version = 3\n");
  std::string err = ErrorOf([&] { LoadFile(dir / "v2.toml"); });
  EXPECT_NE(err.find("imported config version 3 is higher than the root config version 2"),
            std::string::npos)
      << err;
  berth::testing::WriteFile(dir / "missing.toml", "imports = [\"nope.toml\"]\n");
  err = ErrorOf([&] { LoadFile(dir / "missing.toml"); });
  EXPECT_NE(err.find("nope.toml"), std::string::npos) << err;
  berth::testing::WriteFile(dir / "bad.toml", "imports = [\"broken.toml\"]\n");
  berth::testing::WriteFile(dir / "broken.toml", "a = \n");
  err = ErrorOf([&] { LoadFile(dir / "bad.toml"); });
  EXPECT_NE(err.find("broken.toml:1:"), std::string::npos) << err;
  EXPECT_NE(ErrorOf([&] { LoadFile(dir / "absent.toml"); }).find("absent.toml"), std::string::npos);
}

// ---- defaults and output ----

TEST(Default, IsCompleteVersion3Config) {
  Config d = Default();
  std::string text = ToToml(d);
  EXPECT_EQ(text.rfind("version = 3\n", 0), 0u) << text.substr(0, 40);
  LoadResult r = LoadString(text, "default.toml");
  EXPECT_EQ(r.file_version, 3);
  EXPECT_TRUE(r.warnings.empty());
  EXPECT_EQ(Unordered(ToTree(r.config)), Unordered(ToTree(d)));
  std::vector<std::string> unknown;
  RuntimeConfig rc = DecodeRuntimeConfig(r.config.plugins[kCRIRuntimePluginURI], &unknown);
  ImageConfig ic = DecodeImageConfig(r.config.plugins[kCRIImagesPluginURI], &unknown);
  ServerConfig sc = DecodeServerConfig(r.config.plugins[kCRIServerPluginURI], &unknown);
  EXPECT_TRUE(unknown.empty());
  EXPECT_EQ(Encode(rc), Encode(DefaultRuntimeConfig()));
  EXPECT_EQ(Encode(ic), Encode(DefaultImageConfig()));
  EXPECT_EQ(Encode(sc), Encode(DefaultServerConfig()));
  EXPECT_TRUE(ValidateRuntimeConfig(rc).errors.empty());
  EXPECT_TRUE(ValidateImageConfig(ic).errors.empty());
  EXPECT_TRUE(ValidateServerConfig(sc).errors.empty());
  for (const char* key :
       {"[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.runc.options]",
        "treat_ro_mounts_as_rro = \"\"", "sandbox = \"registry.k8s.io/pause:3.10\"", "[grpc]",
        "address = \"/run/berth/berth.sock\"", "stream_idle_timeout = \"4h0m0s\""})
    EXPECT_NE(text.find(key), std::string::npos) << key;
}

TEST(Default, GoldenText) {
  std::string got = ToToml(Default());
  const std::string path = kTestData + "/golden/default.toml";
  if (std::getenv("BERTH_UPDATE_GOLDEN")) std::ofstream(path) << got;
  EXPECT_EQ(got, Slurp(path));
}

TEST(ToToml, QuotingAndValueTypes) {
  Config c;
  c.plugins = Tree::object();
  c.plugins["x.y"]["weird key"] = "quote \" backslash \\ newline \n tab \t";
  c.plugins["x.y"]["f"] = 1.0;
  c.plugins["x.y"]["g"] = 0.1;
  c.plugins["x.y"]["list"] = Tree::parse(R"([1, "a", [true], {"k": "v"}])");
  c.plugins["x.y"]["empty"] = Tree::object();
  c.plugins["x.y"]["ünï"] = 1;
  LoadResult r = LoadString(ToToml(c), "q.toml");
  EXPECT_EQ(Unordered(r.config.plugins), Unordered(c.plugins));
}

TEST(UnimplementedPlugins, Warned) {
  Config c = Default();
  c.plugins["io.containerd.snapshotter.v1.zfs"] = Tree::object();
  auto w = UnimplementedPluginWarnings(
      c, {kCRIRuntimePluginURI, kCRIImagesPluginURI, kCRIServerPluginURI});
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0],
            "plugin \"io.containerd.snapshotter.v1.zfs\" is configured but not implemented by "
            "berth; its table is kept verbatim");
}

}  // namespace
}  // namespace berth::config
