// The layer decoders: isa-l and zlib give the same bytes for the same gzip stream, whatever the
// chunking; concatenated members are one stream; zstd with a large window; cut or corrupt
// streams fail with kInvalidArgument naming the layer.
#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <random>
#include <string>

#include "common/error.h"
#include "image/codec.h"

namespace {

using berth::Code;
using berth::Error;
using namespace berth::image;

std::string Data(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  // Half compressible text, half noise.
  for (size_t i = 0; i < n; ++i)
    s[i] = (i / 4096) % 2 ? static_cast<char>(rng()) : static_cast<char>('a' + i % 7);
  return s;
}

std::string Gzip(const std::string& in) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&z, in.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string Zstd(const std::string& in, int window_log) {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 3);
  ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, window_log);
  std::string out(ZSTD_compressBound(in.size()), '\0');
  size_t n = ZSTD_compress2(c, out.data(), out.size(), in.data(), in.size());
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  ZSTD_freeCCtx(c);
  return out;
}

std::string Decode(Codec codec, const std::string& in, size_t chunk, bool zlib = false) {
  auto d = NewDecompressor(codec, "layer x", zlib);
  std::string out;
  auto sink = [&](const char* p, size_t n) { out.append(p, n); };
  for (size_t off = 0; off < in.size(); off += chunk)
    d->Feed(in.data() + off, std::min(chunk, in.size() - off), sink);
  d->Finish(sink);
  return out;
}

TEST(Codec, Detects) {
  auto u = [](const char* s, size_t n) { return reinterpret_cast<const unsigned char*>(s); };
  EXPECT_EQ(DetectCodec(u("\x1f\x8b\x08\0\0\0", 6), 6, "l"), Codec::kGzip);
  EXPECT_EQ(DetectCodec(u("\x28\xb5\x2f\xfd\0\0", 6), 6, "l"), Codec::kZstd);
  EXPECT_EQ(DetectCodec(u("etc/\0\0", 6), 6, "l"), Codec::kNone);
  EXPECT_EQ(DetectCodec(u("", 0), 0, "l"), Codec::kNone);
  try {
    DetectCodec(u("BZh91A", 6), 6, "layer y");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    EXPECT_STREQ(e.what(), "layer y: bzip2 compression is not supported");
  }
  EXPECT_THROW(DetectCodec(u("\xfd"
                             "7zXZ\0",
                             6),
                           6, "l"),
               Error);
}

TEST(Codec, GzipSameBytesWithIsalAndZlibWhateverTheChunks) {
  const std::string data = Data(3 << 20, 1);
  const std::string gz = Gzip(data);
  EXPECT_STREQ(NewDecompressor(Codec::kGzip, "l", true)->Name(), "zlib");
  for (size_t chunk : {size_t{1}, size_t{7}, size_t{4096}, size_t{1} << 20, gz.size()}) {
    if (chunk == 1 && gz.size() > (1 << 20)) {
      // byte by byte over the header, the first blocks and the trailer
      std::string small = Gzip(data.substr(0, 100000));
      EXPECT_EQ(Decode(Codec::kGzip, small, 1), data.substr(0, 100000));
      EXPECT_EQ(Decode(Codec::kGzip, small, 1, true), data.substr(0, 100000));
      continue;
    }
    EXPECT_EQ(Decode(Codec::kGzip, gz, chunk), data) << chunk;
    EXPECT_EQ(Decode(Codec::kGzip, gz, chunk, true), data) << chunk;
  }
}

TEST(Codec, GzipMembersAreOneStreamAndTrailingBytesAreIgnored) {
  const std::string a = Data(200000, 2), b = Data(300000, 3);
  const std::string two = Gzip(a) + Gzip(b);
  for (bool zlib : {false, true}) {
    for (size_t chunk : {size_t{3}, size_t{65536}, two.size()}) {
      EXPECT_EQ(Decode(Codec::kGzip, two, chunk, zlib), a + b) << chunk << zlib;
      EXPECT_EQ(Decode(Codec::kGzip, two + std::string(1024, '\0'), chunk, zlib), a + b);
    }
    // The second member's magic split over two chunks.
    std::string ga = Gzip(a);
    auto d = NewDecompressor(Codec::kGzip, "l", zlib);
    std::string out;
    auto sink = [&](const char* p, size_t n) { out.append(p, n); };
    std::string gb = Gzip(b);
    std::string first = ga + gb.substr(0, 1), rest = gb.substr(1);
    d->Feed(first.data(), first.size(), sink);
    d->Feed(rest.data(), rest.size(), sink);
    d->Finish(sink);
    EXPECT_EQ(out, a + b);
  }
}

TEST(Codec, GzipCutOrCorruptFails) {
  const std::string data = Data(500000, 4);
  const std::string gz = Gzip(data);
  for (bool zlib : {false, true}) {
    try {
      Decode(Codec::kGzip, gz.substr(0, gz.size() / 2), 4096, zlib);
      FAIL() << "a cut stream was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kInvalidArgument);
      EXPECT_EQ(std::string(e.what()).rfind("layer x: gzip: ", 0), 0u) << e.what();
    }
    std::string bad = gz;
    bad[bad.size() - 6] ^= 0x40;  // the CRC
    EXPECT_THROW(Decode(Codec::kGzip, bad, 4096, zlib), Error) << zlib;
  }
}

TEST(Codec, ZstdLargeWindowAndErrors) {
  const std::string data = Data(6 << 20, 5);
  const std::string z = Zstd(data, 28);  // over zstd's default decoder limit (27)
  EXPECT_EQ(Decode(Codec::kZstd, z, 1 << 16), data);
  EXPECT_EQ(Decode(Codec::kZstd, Zstd("ab", 10) + Zstd("cd", 10), 1), "abcd");  // frames
  try {
    Decode(Codec::kZstd, z.substr(0, z.size() - 10), 4096);
    FAIL() << "a cut zstd stream was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
    EXPECT_EQ(std::string(e.what()).rfind("layer x: zstd: ", 0), 0u) << e.what();
  }
}

TEST(Codec, NoneIsPassThrough) {
  EXPECT_EQ(Decode(Codec::kNone, "plain tar bytes", 4), "plain tar bytes");
}

}  // namespace
