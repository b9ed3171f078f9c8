#include <gtest/gtest.h>

#include <thread>

#include "common/error.h"
#include "store/db.h"
#include "store/images.h"
#include "support/support.h"

using namespace berth::store;
using berth::Code;
using berth::Error;

namespace {

ImageRecord Sample(const std::string& name, const std::string& config = "sha256:c1") {
  ImageRecord r;
  r.name = name;
  r.target_digest = "sha256:t-" + name;
  r.target_media_type = "application/vnd.oci.image.manifest.v1+json";
  r.config_digest = config;
  r.chain_id = "sha256:chain";
  r.size = 1234;
  r.labels = {{"a", "1"}, {"io.x/y", "z w"}};
  r.created_unix = 1700000000;
  return r;
}

TEST(Store, ImageCrud) {
  berth::testing::TempDir dir;
  ImageStore images(Database::Open(dir / "meta.db"));
  EXPECT_FALSE(images.Get("docker.io/library/busybox:latest"));
  images.Put(Sample("docker.io/library/busybox:latest"));
  images.Put(Sample("docker.io/library/alpine:3", "sha256:c2"));
  auto got = images.Get("docker.io/library/busybox:latest");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->target_digest, "sha256:t-docker.io/library/busybox:latest");
  EXPECT_EQ(got->size, 1234);
  EXPECT_EQ(got->labels.at("io.x/y"), "z w");
  EXPECT_EQ(got->created_unix, 1700000000);
  auto all = images.List();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "docker.io/library/alpine:3");
  EXPECT_EQ(images.ByConfig("sha256:c1").size(), 1u);
  auto upd = Sample("docker.io/library/busybox:latest", "sha256:c2");
  images.Put(upd);  // replace
  EXPECT_EQ(images.ByConfig("sha256:c2").size(), 2u);
  images.Delete("docker.io/library/alpine:3");
  EXPECT_EQ(images.List().size(), 1u);
  try {
    images.Delete("docker.io/library/alpine:3");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
  }
}

TEST(Store, ReopenKeepsData) {
  berth::testing::TempDir dir;
  {
    ImageStore images(Database::Open(dir / "sub/meta.db"));
    images.Put(Sample("a"));
  }
  auto db = Database::Open(dir / "sub/meta.db");
  EXPECT_EQ(db->SchemaVersion("images"), 1);
  ImageStore images(db);
  EXPECT_TRUE(images.Get("a"));
}

TEST(Store, TransactionRollbackAndCommit) {
  berth::testing::TempDir dir;
  auto db = Database::Open(dir / "t.db");
  db->Migrate("test", {"CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)"});
  {
    Transaction tx(db);
    db->Prepare("INSERT INTO kv VALUES('a', '1')").Run();
  }  // rolled back
  {
    Transaction tx(db);
    db->Prepare("INSERT INTO kv VALUES('b', '2')").Run();
    {
      Transaction inner(db);
      db->Prepare("INSERT INTO kv VALUES('c', '3')").Run();
    }  // savepoint rolled back
    tx.Commit();
  }
  Transaction tx(db);
  auto st = db->Prepare("SELECT k FROM kv ORDER BY k");
  std::vector<std::string> keys;
  while (st.Step()) keys.push_back(st.Text(0));
  EXPECT_EQ(keys, std::vector<std::string>{"b"});
}

TEST(Store, MigrationsRunOnceAndRefuseNewer) {
  berth::testing::TempDir dir;
  auto db = Database::Open(dir / "m.db");
  std::vector<std::string> steps = {"CREATE TABLE x (a INTEGER)",
                                    "ALTER TABLE x ADD COLUMN b TEXT"};
  EXPECT_EQ(db->Migrate("x", {steps[0]}), 1);
  EXPECT_EQ(db->Migrate("x", steps), 2);
  EXPECT_EQ(db->Migrate("x", steps), 2);  // no re-run
  EXPECT_EQ(db->SchemaVersion("x"), 2);
  try {
    db->Migrate("x", {steps[0]});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kFailedPrecondition);
  }
  // A failing step leaves the version where it was.
  EXPECT_THROW(db->Migrate("y", {"CREATE TABLE y (a)", "THIS IS NOT SQL"}), Error);
  EXPECT_EQ(db->SchemaVersion("y"), 1);
}

TEST(Store, ConstraintViolationIsAlreadyExists) {
  berth::testing::TempDir dir;
  auto db = Database::Open(dir / "c.db");
  db->Migrate("c", {"CREATE TABLE c (k TEXT PRIMARY KEY)"});
  Transaction tx(db);
  db->Prepare("INSERT INTO c VALUES('k')").Run();
  try {
    db->Prepare("INSERT INTO c VALUES('k')").Run();
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kAlreadyExists);
  }
}

TEST(Store, ConcurrentPuts) {
  berth::testing::TempDir dir;
  auto db = Database::Open(dir / "p.db");
  ImageStore images(db);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i)
        images.Put(Sample("img-" + std::to_string(t) + "-" + std::to_string(i)));
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(images.List().size(), 100u);
}

}  // namespace
