// libarchive is loaded while in use (image/dynload.h), not at exec, and unloaded
// again when the last use ends.
#include "image/dynload.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"

namespace berth::image {
namespace {

// Paths of the shared objects mapped into this process.
std::set<std::string> MappedLibraries() {
  std::set<std::string> out;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    auto path = line.find('/');
    if (path == std::string::npos) continue;
    std::string p = line.substr(path);
    if (p.find(".so", p.rfind('/')) != std::string::npos) out.insert(p);
  }
  return out;
}

// True when a file whose name starts with `soname` is mapped into this process.
bool Mapped(const std::string& soname) {
  for (const auto& p : MappedLibraries()) {
    if (p.compare(p.rfind('/') + 1, soname.size(), soname) == 0) return true;
  }
  return false;
}

// What an ELF shared object's dynamic section says about unloading: DF_1_NODELETE, and DT_NEEDED.
struct Dynamic {
  bool nodelete = false;
  std::vector<std::string> needed;
};

Dynamic ReadDynamic(const std::string& path) {
  Dynamic d;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return d;
  struct stat st {};
  ::fstat(fd, &st);
  void* m = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) return d;
  const auto* base = static_cast<const char*>(m);
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(base);
  const auto* ph = reinterpret_cast<const Elf64_Phdr*>(base + eh->e_phoff);
  auto file_offset = [&](Elf64_Addr vaddr) -> Elf64_Off {
    for (int i = 0; i < eh->e_phnum; ++i) {
      if (ph[i].p_type == PT_LOAD && vaddr >= ph[i].p_vaddr &&
          vaddr < ph[i].p_vaddr + ph[i].p_filesz)
        return vaddr - ph[i].p_vaddr + ph[i].p_offset;
    }
    return 0;
  };
  for (int i = 0; i < eh->e_phnum; ++i) {
    if (ph[i].p_type != PT_DYNAMIC) continue;
    const auto* dyn = reinterpret_cast<const Elf64_Dyn*>(base + ph[i].p_offset);
    Elf64_Off strtab = 0;
    std::vector<Elf64_Xword> needed;
    for (; dyn->d_tag != DT_NULL; ++dyn) {
      if (dyn->d_tag == DT_FLAGS_1 && (dyn->d_un.d_val & DF_1_NODELETE)) d.nodelete = true;
      if (dyn->d_tag == DT_STRTAB) strtab = file_offset(dyn->d_un.d_ptr);
      if (dyn->d_tag == DT_NEEDED) needed.push_back(dyn->d_un.d_val);
    }
    if (strtab)
      for (auto n : needed) d.needed.emplace_back(base + strtab + n);
  }
  ::munmap(m, static_cast<size_t>(st.st_size));
  return d;
}

std::string Basename(const std::string& p) { return p.substr(p.rfind('/') + 1); }

// The libraries mapped now but not in `before` that glibc was free to unload: neither marked
// NODELETE themselves nor needed (directly or not) by one that is.
std::vector<std::string> UnloadableLeftovers(const std::set<std::string>& before) {
  std::map<std::string, Dynamic> left;  // by file name
  for (const auto& p : MappedLibraries())
    if (!before.count(p)) left[Basename(p)] = ReadDynamic(p);
  std::set<std::string> pinned;
  std::vector<std::string> pending;
  for (const auto& [name, d] : left)
    if (d.nodelete) pending.push_back(name);
  while (!pending.empty()) {
    std::string n = pending.back();
    pending.pop_back();
    if (!pinned.insert(n).second) continue;
    auto it = left.find(n);
    if (it == left.end()) continue;
    for (const auto& dep : it->second.needed) {
      // DT_NEEDED names the SONAME; the mapped file may be the versioned name behind it.
      for (const auto& [name, d] : left)
        if (name.rfind(dep, 0) == 0) pending.push_back(name);
    }
  }
  std::vector<std::string> out;
  for (const auto& [name, d] : left)
    if (!pinned.count(name)) out.push_back(name);
  return out;
}

// One small libarchive read: a gzip-compressed tar with one file, read back.
void UseArchiveOnce(const std::string& tgz) {
  const ArchiveApi& api = Archive();
  archive* a = api.read_new();
  ASSERT_NE(a, nullptr);
  api.read_support_filter_gzip(a);
  api.read_support_format_tar(a);
  ASSERT_EQ(api.read_open_filename(a, tgz.c_str(), 4096), ARCHIVE_OK) << api.error_string(a);
  archive_entry* e = nullptr;
  ASSERT_EQ(api.read_next_header(a, &e), ARCHIVE_OK) << api.error_string(a);
  EXPECT_STREQ(api.entry_pathname(e), "hello.txt");
  char buf[64] = {0};
  EXPECT_EQ(api.read_data(a, buf, sizeof buf), 6);
  EXPECT_STREQ(buf, "hello\n");
  EXPECT_EQ(api.read_next_header(a, &e), ARCHIVE_EOF);
  api.read_free(a);
}

class DynloadArchive : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/berth-dynload-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::ofstream(dir_ + "/hello.txt") << "hello\n";
    std::string cmd = "tar -C " + dir_ + " -czf " + dir_ + "/hello.tgz hello.txt";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    tgz_ = dir_ + "/hello.tgz";
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string dir_, tgz_;
};

// Each test runs in its own process (gtest_discover_tests), so "before" is really before.
TEST_F(DynloadArchive, ArchiveIsLoadedWhileInUseAndUnloadedAfter) {
  ASSERT_FALSE(Mapped(ArchiveSoname())) << "this test binary does not link libarchive";
  const auto before = MappedLibraries();
  EXPECT_THROW(Archive(), Error);
  {
    ArchiveUse use;
    EXPECT_TRUE(Mapped(ArchiveSoname()));
    UseArchiveOnce(tgz_);
    ArchiveUse nested;
    UseArchiveOnce(tgz_);
    EXPECT_EQ(ArchiveLoads(), 1);
  }
  EXPECT_FALSE(Mapped(ArchiveSoname()));
  EXPECT_THROW(Archive(), Error);
  EXPECT_EQ(UnloadableLeftovers(before), std::vector<std::string>{});
  {
    ArchiveUse again;
    UseArchiveOnce(tgz_);
  }
  EXPECT_EQ(ArchiveLoads(), 2);
  EXPECT_FALSE(Mapped(ArchiveSoname()));
}

// With an idle time, the library outlives its last use that long: uses in a row load it once,
// and it is unloaded (with everything it brought) once the time is up.
TEST_F(DynloadArchive, IdleTimeKeepsTheLibraryLoadedBetweenUses) {
  ASSERT_FALSE(Mapped(ArchiveSoname()));
  const auto before = MappedLibraries();
  const int loads = ArchiveLoads();
  SetArchiveIdleTime(std::chrono::milliseconds(500));
  {
    ArchiveUse use;
    UseArchiveOnce(tgz_);
  }
  EXPECT_TRUE(Mapped(ArchiveSoname()));
  EXPECT_THROW(Archive(), Error);  // loaded, but no use is alive
  {
    ArchiveUse again;
    UseArchiveOnce(tgz_);
  }
  EXPECT_EQ(ArchiveLoads(), loads + 1);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (Mapped(ArchiveSoname()) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(Mapped(ArchiveSoname()));
  EXPECT_EQ(UnloadableLeftovers(before), std::vector<std::string>{});
  SetArchiveIdleTime(std::chrono::milliseconds(0));
  {
    ArchiveUse third;
    UseArchiveOnce(tgz_);
  }
  EXPECT_EQ(ArchiveLoads(), loads + 2);
  EXPECT_FALSE(Mapped(ArchiveSoname()));
}

// Uses beginning and ending on several threads at once: every use sees a loaded, working
// library, loads and unloads interleave safely, and nothing is left loaded at the end.
TEST_F(DynloadArchive, ConcurrentUsesShareLoadsAndUnloadAtTheEnd) {
  const auto before = MappedLibraries();
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        ArchiveUse use;
        UseArchiveOnce(tgz_);
        if ((i + t) % 2 == 0) std::this_thread::yield();  // vary how uses overlap
        done++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(done.load(), 100);
  EXPECT_GE(ArchiveLoads(), 1);
  EXPECT_FALSE(Mapped(ArchiveSoname()));
  EXPECT_EQ(UnloadableLeftovers(before), std::vector<std::string>{});
}

TEST(Dynload, MissingLibraryIsUnavailableAndNamed) {
  try {
    dynload::Open("libnothing", "libberth-no-such-library.so.7");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnavailable);
    EXPECT_NE(
        std::string(e.what()).find("libnothing (libberth-no-such-library.so.7) cannot be loaded: "),
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
    EXPECT_NE(std::string(e.what()).find(std::string(ArchiveSoname()) +
                                         " lacks the function archive_no_such_function"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace berth::image
