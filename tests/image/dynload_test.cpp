// libcurl and libarchive are loaded on first use (image/dynload.h), not at exec.
#include "image/dynload.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "common/error.h"

namespace berth::image {
namespace {

// True when a file whose name starts with `soname` is mapped into this process.
bool Mapped(const std::string& soname) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    auto slash = line.rfind('/');
    if (slash != std::string::npos && line.compare(slash + 1, soname.size(), soname) == 0) return true;
  }
  return false;
}

// Each test runs in its own process (gtest_discover_tests), so "before" is really before.
TEST(Dynload, CurlIsLoadedOnFirstUse) {
  ASSERT_FALSE(Mapped(CurlSoname())) << "this test binary does not link libcurl";
  const CurlApi& api = Curl();
  EXPECT_TRUE(Mapped(CurlSoname()));
  CURL* c = api.easy_init();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(api.easy_setopt(c, CURLOPT_URL, "http://127.0.0.1:1/"), CURLE_OK);
  long code = -1;
  EXPECT_EQ(api.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code), CURLE_OK);
  EXPECT_EQ(code, 0);
  api.easy_cleanup(c);
  EXPECT_STREQ(api.easy_strerror(CURLE_COULDNT_CONNECT), "Couldn't connect to server");
  EXPECT_EQ(&Curl(), &api);  // loaded once
}

TEST(Dynload, ArchiveIsLoadedOnFirstUse) {
  ASSERT_FALSE(Mapped(ArchiveSoname())) << "this test binary does not link libarchive";
  const ArchiveApi& api = Archive();
  EXPECT_TRUE(Mapped(ArchiveSoname()));
  // Not a tar stream: libarchive refuses it and says why.
  FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  std::string garbage(2048, 'x');
  ASSERT_EQ(std::fwrite(garbage.data(), 1, garbage.size(), f), garbage.size());
  std::fflush(f);
  std::rewind(f);
  archive* a = api.read_new();
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(api.read_support_format_tar(a), ARCHIVE_OK);
  // libarchive bids on the format when the archive is opened (or at the first header).
  int r = api.read_open_fd(a, fileno(f), 4096);
  archive_entry* e = nullptr;
  if (r == ARCHIVE_OK) r = api.read_next_header(a, &e);
  EXPECT_EQ(r, ARCHIVE_FATAL);
  ASSERT_NE(api.error_string(a), nullptr);
  EXPECT_FALSE(std::string(api.error_string(a)).empty());
  api.read_free(a);
  std::fclose(f);
  EXPECT_EQ(&Archive(), &api);
}

TEST(Dynload, MissingLibraryIsUnavailableAndNamed) {
  try {
    dynload::Open("libnothing", "libberth-no-such-library.so.7");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnavailable);
    EXPECT_NE(std::string(e.what()).find("libnothing (libberth-no-such-library.so.7) cannot be loaded: "),
              std::string::npos)
        << e.what();
  }
}

TEST(Dynload, MissingFunctionIsInternalAndNamed) {
  void* h = dynload::Open("libarchive", ArchiveSoname());
  ASSERT_NE(h, nullptr);
  EXPECT_NE(dynload::Symbol(h, ArchiveSoname(), "archive_read_new"), nullptr);
  try {
    dynload::Symbol(h, ArchiveSoname(), "archive_no_such_function");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInternal);
    EXPECT_NE(std::string(e.what()).find(std::string(ArchiveSoname()) + " lacks the function archive_no_such_function"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace berth::image
