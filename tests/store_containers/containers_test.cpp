#include "store/containers.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "store/db.h"
#include "support/support.h"

namespace bt = berth::testing;
using namespace berth::store;

namespace {

SandboxRecord Sandbox(const std::string& id, const std::string& name, uint32_t attempt = 0) {
  SandboxRecord r;
  r.id = id;
  r.name = name;
  r.namespace_ = "default";
  r.uid = "uid-" + name;
  r.attempt = attempt;
  r.created_at = 100;
  r.runtime_handler = "runc";
  r.labels = {{"app", "web"}};
  r.annotations = {{"a", "b"}};
  r.config = std::string("\x0a\x00\x01binary", 9);
  return r;
}

ContainerRecord Container(const std::string& id, const std::string& sandbox, const std::string& name) {
  ContainerRecord r;
  r.id = id;
  r.sandbox_id = sandbox;
  r.name = name;
  r.created_at = 200;
  r.labels = {{"k", "v"}};
  r.log_path = "/var/log/pods/x/" + name + "/0.log";
  r.image_ref = "docker.io/library/busybox:latest";
  r.image_id = "sha256:abc";
  r.config = std::string("\x00\xff", 2);
  return r;
}

class StoreContainersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = Database::Open(dir_ / "meta.db");
    store_ = std::make_unique<ContainerStore>(db_);
  }
  bt::TempDir dir_{"berth-store-containers"};
  std::shared_ptr<Database> db_;
  std::unique_ptr<ContainerStore> store_;
};

}  // namespace

TEST_F(StoreContainersTest, SandboxRoundTrip) {
  store_->CreateSandbox(Sandbox("sb1", "web"));
  auto got = store_->GetSandbox("sb1");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->name, "web");
  EXPECT_EQ(got->namespace_, "default");
  EXPECT_EQ(got->labels.at("app"), "web");
  EXPECT_EQ(got->annotations.at("a"), "b");
  EXPECT_EQ(got->config, std::string("\x0a\x00\x01binary", 9));
  EXPECT_EQ(got->state, kSandboxNotReady);
  got->state = kSandboxReady;
  got->pid = 42;
  got->netns_path = "/run/berth/netns/sb1";
  store_->UpdateSandbox(*got);
  auto again = store_->GetSandbox("sb1");
  EXPECT_EQ(again->state, kSandboxReady);
  EXPECT_EQ(again->pid, 42);
  EXPECT_EQ(again->netns_path, "/run/berth/netns/sb1");
  store_->SetSandboxState("sb1", kSandboxNotReady);
  EXPECT_EQ(store_->GetSandbox("sb1")->state, kSandboxNotReady);
  EXPECT_FALSE(store_->GetSandbox("nope"));
}

TEST_F(StoreContainersTest, SandboxConflictsAndMissing) {
  store_->CreateSandbox(Sandbox("sb1", "web"));
  try {
    store_->CreateSandbox(Sandbox("sb1", "other"));
    FAIL();
  } catch (const berth::Error& e) {
    EXPECT_EQ(e.code(), berth::Code::kAlreadyExists);
  }
  try {
    store_->CreateSandbox(Sandbox("sb2", "web"));
    FAIL();
  } catch (const berth::Error& e) {
    EXPECT_EQ(e.code(), berth::Code::kAlreadyExists);
    EXPECT_NE(std::string(e.what()).find("sb1"), std::string::npos) << e.what();
  }
  store_->CreateSandbox(Sandbox("sb2", "web", 1));  // next attempt is fine
  EXPECT_EQ(store_->ListSandboxes().size(), 2u);
  auto missing = Sandbox("zz", "zz");
  try {
    store_->UpdateSandbox(missing);
    FAIL();
  } catch (const berth::Error& e) {
    EXPECT_EQ(e.code(), berth::Code::kNotFound);
  }
  EXPECT_THROW(store_->DeleteSandbox("zz"), berth::Error);
  EXPECT_THROW(store_->CreateSandbox(Sandbox("", "x")), berth::Error);
}

TEST_F(StoreContainersTest, ContainerLifecycle) {
  store_->CreateSandbox(Sandbox("sb1", "web"));
  store_->CreateContainer(Container("c1", "sb1", "nginx"));
  store_->CreateContainer(Container("c2", "sb1", "sidecar"));
  EXPECT_EQ(store_->ListContainers().size(), 2u);
  EXPECT_EQ(store_->ListContainers("sb1").size(), 2u);
  EXPECT_EQ(store_->ListContainers("other").size(), 0u);
  auto c = store_->GetContainer("c1");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->state, kContainerCreated);
  EXPECT_EQ(c->config, std::string("\x00\xff", 2));
  EXPECT_EQ(c->image_ref, "docker.io/library/busybox:latest");

  store_->MarkContainerStarted("c1", 1234, 300);
  c = store_->GetContainer("c1");
  EXPECT_EQ(c->state, kContainerRunning);
  EXPECT_EQ(c->pid, 1234);
  EXPECT_EQ(c->started_at, 300);
  try {
    store_->MarkContainerStarted("c1", 1, 1);
    FAIL();
  } catch (const berth::Error& e) {
    EXPECT_EQ(e.code(), berth::Code::kFailedPrecondition);
  }
  store_->MarkContainerExited("c1", 137, 400, "OOMKilled", "");
  c = store_->GetContainer("c1");
  EXPECT_EQ(c->state, kContainerExited);
  EXPECT_EQ(c->exit_code, 137);
  EXPECT_EQ(c->finished_at, 400);
  EXPECT_EQ(c->reason, "OOMKilled");

  c->message = "updated";
  store_->UpdateContainer(*c);
  EXPECT_EQ(store_->GetContainer("c1")->message, "updated");

  try {
    store_->DeleteSandbox("sb1");
    FAIL();
  } catch (const berth::Error& e) {
    EXPECT_EQ(e.code(), berth::Code::kFailedPrecondition);
  }
  store_->DeleteContainer("c1");
  store_->DeleteContainer("c2");
  EXPECT_THROW(store_->DeleteContainer("c2"), berth::Error);
  store_->DeleteSandbox("sb1");
  EXPECT_TRUE(store_->ListSandboxes().empty());
}

TEST_F(StoreContainersTest, ContainerConflicts) {
  store_->CreateSandbox(Sandbox("sb1", "web"));
  try {
    store_->CreateContainer(Container("c1", "missing", "x"));
    FAIL();
  } catch (const berth::Error& e) {
    EXPECT_EQ(e.code(), berth::Code::kNotFound);
  }
  store_->CreateContainer(Container("c1", "sb1", "nginx"));
  try {
    store_->CreateContainer(Container("c1", "sb1", "other"));
    FAIL();
  } catch (const berth::Error& e) {
    EXPECT_EQ(e.code(), berth::Code::kAlreadyExists);
  }
  try {
    store_->CreateContainer(Container("c9", "sb1", "nginx"));
    FAIL();
  } catch (const berth::Error& e) {
    EXPECT_EQ(e.code(), berth::Code::kAlreadyExists);
  }
  EXPECT_THROW(store_->MarkContainerExited("nope", 0, 0, "", ""), berth::Error);
}

TEST_F(StoreContainersTest, ResolvesIdPrefixes) {
  store_->CreateSandbox(Sandbox("abc123", "a"));
  store_->CreateSandbox(Sandbox("abd456", "b"));
  store_->CreateSandbox(Sandbox("ab", "c"));
  EXPECT_EQ(store_->ResolveSandboxId("abc"), "abc123");
  EXPECT_EQ(store_->ResolveSandboxId("abd456"), "abd456");
  EXPECT_EQ(store_->ResolveSandboxId("ab"), "ab");  // exact match wins
  try {
    store_->ResolveSandboxId("a");
    FAIL();
  } catch (const berth::Error& e) {
    EXPECT_EQ(e.code(), berth::Code::kInvalidArgument);
  }
  EXPECT_THROW(store_->ResolveSandboxId("x"), berth::Error);
  EXPECT_THROW(store_->ResolveSandboxId("a%"), berth::Error);  // wildcards are literal
  EXPECT_THROW(store_->ResolveContainerId(""), berth::Error);
}

TEST_F(StoreContainersTest, SurvivesReopen) {
  store_->CreateSandbox(Sandbox("sb1", "web"));
  store_->CreateContainer(Container("c1", "sb1", "nginx"));
  store_.reset();
  db_.reset();
  db_ = Database::Open(dir_ / "meta.db");
  ContainerStore again(db_);
  EXPECT_TRUE(again.GetContainer("c1"));
  EXPECT_TRUE(again.GetSandbox("sb1"));
}
