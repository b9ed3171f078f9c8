#include "content/store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <thread>

#include "common/error.h"
#include "support/support.h"

using berth::Code;
using berth::Error;
using berth::content::Sha256Digest;
using berth::content::Store;

namespace {

Code CodeOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  return Code::kOk;
}

TEST(ContentStore, DigestOfKnownData) {
  EXPECT_EQ(Sha256Digest(""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(ContentStore, WriteReadListDelete) {
  berth::testing::TempDir dir;
  Store s(dir.path());
  std::string d = s.Write("hello");
  EXPECT_TRUE(s.Has(d));
  EXPECT_EQ(s.Read(d), "hello");
  EXPECT_EQ(s.Size(d), 5);
  EXPECT_EQ(s.Path(d), dir.path() + "/blobs/sha256/" + d.substr(7));
  EXPECT_EQ(s.List(), std::vector<std::string>{d});
  EXPECT_EQ(s.Write("hello", d), d);  // idempotent
  s.Delete(d);
  EXPECT_FALSE(s.Has(d));
  EXPECT_EQ(CodeOf([&] { s.Path(d); }), Code::kNotFound);
  EXPECT_EQ(CodeOf([&] { s.Delete(d); }), Code::kNotFound);
}

TEST(ContentStore, InvalidDigests) {
  berth::testing::TempDir dir;
  Store s(dir.path());
  for (std::string bad :
       {"", "sha256:", "sha256:../../etc/passwd", "md5:abc",
        "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85"}) {
    EXPECT_EQ(CodeOf([&] { s.Has(bad); }), Code::kInvalidArgument) << bad;
    EXPECT_EQ(CodeOf([&] { s.OpenWriter(bad); }), Code::kInvalidArgument) << bad;
  }
  EXPECT_EQ(CodeOf([&] { s.Write("x", "sha256:" + std::string(64, '0')); }), Code::kInternal);
}

TEST(ContentStore, ReadLimit) {
  berth::testing::TempDir dir;
  Store s(dir.path());
  std::string d = s.Write(std::string(100, 'a'));
  EXPECT_EQ(CodeOf([&] { s.Read(d, 10); }), Code::kResourceExhausted);
}

TEST(ContentStore, IngestResumeAndCommit) {
  berth::testing::TempDir dir;
  Store s(dir.path());
  std::string data(300000, 'x');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  std::string d = Sha256Digest(data);
  {
    auto w = s.OpenWriter(d);
    EXPECT_EQ(w->Offset(), 0);
    w->Write(data.data(), 100000);
  }  // dropped without commit: partial kept
  EXPECT_FALSE(s.Has(d));
  {
    auto w = s.OpenWriter(d);
    ASSERT_EQ(w->Offset(), 100000);
    w->Write(data.data() + 100000, data.size() - 100000);
    w->Commit(d, static_cast<int64_t>(data.size()));
  }
  EXPECT_EQ(s.Read(d), data);
  // After commit the ingest is gone: a new writer starts at 0.
  auto w = s.OpenWriter(d);
  EXPECT_EQ(w->Offset(), 0);
}

TEST(ContentStore, TruncateRestarts) {
  berth::testing::TempDir dir;
  Store s(dir.path());
  std::string d = Sha256Digest("abc");
  auto w = s.OpenWriter(d);
  w->Write("zzz", 3);
  w->Truncate();
  EXPECT_EQ(w->Offset(), 0);
  w->Write("abc", 3);
  w->Commit(d, 3);
  EXPECT_EQ(s.Read(d), "abc");
}

TEST(ContentStore, MismatchDiscardsPartial) {
  berth::testing::TempDir dir;
  Store s(dir.path());
  std::string d = Sha256Digest("good");
  {
    auto w = s.OpenWriter(d);
    w->Write("evil", 4);
    try {
      w->Commit(d, 4);
      FAIL() << "commit of wrong content succeeded";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kInternal);
      EXPECT_NE(
          std::string(e.what()).find("digest mismatch for " + d + ": got " + Sha256Digest("evil")),
          std::string::npos)
          << e.what();
    }
  }
  EXPECT_FALSE(s.Has(d));
  auto w = s.OpenWriter(d);
  EXPECT_EQ(w->Offset(), 0);
  w->Write("good", 4);
  EXPECT_EQ(CodeOf([&] { w->Commit(d, 5); }), Code::kInternal);  // size mismatch
}

TEST(ContentStore, OneWriterPerDigest) {
  berth::testing::TempDir dir;
  Store s(dir.path());
  std::string d = Sha256Digest("x");
  auto w = s.OpenWriter(d);
  EXPECT_EQ(CodeOf([&] { s.OpenWriter(d); }), Code::kUnavailable);
  w.reset();
  EXPECT_NO_THROW(s.OpenWriter(d));
}

TEST(ContentStore, ConcurrentWriters) {
  berth::testing::TempDir dir;
  Store s(dir.path());
  std::vector<std::string> blobs;
  for (int i = 0; i < 8; ++i) blobs.push_back(std::string(50000 + i, static_cast<char>('a' + i)));
  std::atomic<int> committed{0}, busy{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 8; ++i) {
        const std::string& b = blobs[(i + t) % 8];
        std::string d = Sha256Digest(b);
        try {
          auto w = s.OpenWriter(d);
          w->Truncate();
          w->Write(b.data(), b.size());
          w->Commit(d, static_cast<int64_t>(b.size()));
          ++committed;
        } catch (const Error& e) {
          if (e.code() != Code::kUnavailable) throw;
          ++busy;
        }
        s.Write(b);  // lock-free small-blob path, concurrent with ingests
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(committed + busy, 64);
  EXPECT_GT(committed.load(), 0);
  for (auto& b : blobs) EXPECT_EQ(s.Read(Sha256Digest(b)), b);
  EXPECT_EQ(s.List().size(), 8u);
}

}  // namespace

namespace {

TEST(ContentStore, IngestStream) {
  berth::testing::TempDir dir;
  Store s(dir.path());
  std::string data(500000, 'q');
  size_t off = 0;
  auto reader = [&](char* buf, size_t n) {
    size_t k = std::min<size_t>({n, data.size() - off, 777});
    memcpy(buf, data.data() + off, k);
    off += k;
    return k;
  };
  std::string d = s.Ingest(reader);
  EXPECT_EQ(d, Sha256Digest(data));
  EXPECT_EQ(s.Read(d), data);
  off = 0;
  EXPECT_EQ(CodeOf([&] { s.Ingest(reader, Sha256Digest("other")); }), Code::kInternal);
  EXPECT_EQ(s.List().size(), 1u);
}

}  // namespace
