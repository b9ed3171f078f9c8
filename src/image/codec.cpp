#include "image/codec.h"

#include <zlib.h>
#include <zstd.h>
#ifdef BERTH_HAVE_ISAL
#include <dlfcn.h>
#include <isa-l/igzip_lib.h>
#endif

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "common/error.h"

namespace berth::image {
namespace {

constexpr size_t kOutChunk = 256 << 10;

[[noreturn]] void Corrupt(const std::string& what, const char* codec, const std::string& why) {
  throw Error(Code::kInvalidArgument, what + ": " + codec + ": " + why);
}

// Hands a callback every piece decoded into its buffer.
class CallbackSink : public Decompressor::Sink {
 public:
  explicit CallbackSink(const Decompressor::Out& out) : out_(out), buf_(kOutChunk) {}
  char* Space(size_t* room) override {
    *room = buf_.size();
    return buf_.data();
  }
  void Wrote(size_t n) override {
    if (n) out_(buf_.data(), n);
  }

 private:
  const Decompressor::Out& out_;
  std::vector<char> buf_;
};

class Plain : public Decompressor {
 public:
  void Feed(const char* in, size_t n, Sink& out) override {
    while (n > 0) {
      size_t room;
      char* to = out.Space(&room);
      size_t k = n < room ? n : room;
      std::memcpy(to, in, k);
      out.Wrote(k);
      in += k;
      n -= k;
    }
  }
  void Finish(Sink&) override {}
  const char* Name() const override { return "none"; }
};

// Concatenated gzip members are one stream (gzip -dc does the same); bytes after the last member
// that do not start another one are ignored, as libarchive and Go's gzip reader do.
class GzipBase : public Decompressor {
 public:
  void Feed(const char* in, size_t n, Sink& out) override {
    static const char kMagic0 = static_cast<char>(0x1f);
    while (n > 0) {
      if (state_ == State::kTrailing) return;
      if (state_ == State::kBetween) {
        auto b = reinterpret_cast<const unsigned char*>(in);
        bool split = half_magic_;  // a lone 0x1f ended the previous chunk
        half_magic_ = false;
        if (!split && b[0] == 0x1f && n == 1) {
          half_magic_ = true;
          return;
        }
        if (split ? b[0] != 0x8b : (b[0] != 0x1f || b[1] != 0x8b)) {
          state_ = State::kTrailing;
          return;
        }
        ResetMember();
        state_ = State::kInMember;
        if (split) Run(&kMagic0, 1, out);
      }
      size_t used = Run(in, n, out);
      in += used;
      n -= used;
    }
  }
  void Finish(Sink&) override {
    if (state_ == State::kInMember) Corrupt(what_, "gzip", "unexpected end of stream");
  }

 protected:
  explicit GzipBase(std::string what) : what_(std::move(what)) {}
  virtual void ResetMember() = 0;
  // Inflates from in until the input is used up or the member ends (then state_ = kBetween);
  // returns the bytes used.
  virtual size_t Run(const char* in, size_t n, Sink& out) = 0;
  enum class State { kInMember, kBetween, kTrailing };
  State state_ = State::kInMember;
  std::string what_;

 private:
  bool half_magic_ = false;
};

#ifdef BERTH_HAVE_ISAL
// libisal is loaded while a decoder lives (the first one loads it, the last one unloads it), so
// that berthd maps it only during pulls.
class IsalLib {
 public:
  using InitFn = void (*)(inflate_state*);
  using InflateFn = int (*)(inflate_state*);
  // False when the library cannot be loaded (zlib is used then).
  static bool Acquire(InitFn* init, InflateFn* inflate) {
    std::lock_guard<std::mutex> lk(mu_);
    if (users_ == 0) {
      handle_ = ::dlopen(BERTH_ISAL_SONAME, RTLD_NOW | RTLD_LOCAL);
      if (!handle_) return false;
      init_ = reinterpret_cast<InitFn>(::dlsym(handle_, "isal_inflate_init"));
      inflate_ = reinterpret_cast<InflateFn>(::dlsym(handle_, "isal_inflate"));
      if (!init_ || !inflate_) {
        ::dlclose(handle_);
        handle_ = nullptr;
        return false;
      }
    }
    ++users_;
    *init = init_;
    *inflate = inflate_;
    return true;
  }
  static void Release() {
    std::lock_guard<std::mutex> lk(mu_);
    if (--users_ == 0) {
      ::dlclose(handle_);
      handle_ = nullptr;
    }
  }

 private:
  static inline std::mutex mu_;
  static inline int users_ = 0;
  static inline void* handle_ = nullptr;
  static inline InitFn init_ = nullptr;
  static inline InflateFn inflate_ = nullptr;
};

class IsalGzip : public GzipBase {
 public:
  IsalGzip(std::string what, IsalLib::InitFn init, IsalLib::InflateFn inflate)
      : GzipBase(std::move(what)), init_(init), inflate_(inflate) {
    ResetMember();
  }
  ~IsalGzip() override { IsalLib::Release(); }
  const char* Name() const override { return "isa-l"; }

 private:
  void ResetMember() override {
    init_(&st_);
    st_.crc_flag = ISAL_GZIP;
  }
  size_t Run(const char* in, size_t n, Sink& out) override {
    st_.next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(in));
    st_.avail_in = static_cast<uint32_t>(n);
    for (;;) {
      size_t room;
      st_.next_out = reinterpret_cast<uint8_t*>(out.Space(&room));
      room = std::min<size_t>(room, UINT32_MAX);
      st_.avail_out = static_cast<uint32_t>(room);
      int rc = inflate_(&st_);
      size_t produced = room - st_.avail_out;
      out.Wrote(produced);
      if (rc < 0 || rc == ISAL_NEED_DICT) Corrupt(what_, "gzip", Why(rc));
      if (st_.block_state == ISAL_BLOCK_FINISH) {
        state_ = State::kBetween;
        return n - st_.avail_in;
      }
      if (st_.avail_in == 0 && produced < room) return n;
    }
  }
  static std::string Why(int rc) {
    switch (rc) {
      case ISAL_INVALID_WRAPPER:
        return "invalid gzip header";
      case ISAL_INCORRECT_CHECKSUM:
        return "checksum mismatch";
      case ISAL_NEED_DICT:
        return "stream needs a dictionary";
      default:
        return "invalid deflate data (" + std::to_string(rc) + ")";
    }
  }
  IsalLib::InitFn init_;
  IsalLib::InflateFn inflate_;
  inflate_state st_;
};
#endif

class ZlibGzip : public GzipBase {
 public:
  explicit ZlibGzip(std::string what) : GzipBase(std::move(what)) {
    std::memset(&z_, 0, sizeof z_);
    if (inflateInit2(&z_, 16 + MAX_WBITS) != Z_OK)
      throw Error(Code::kResourceExhausted, what_ + ": zlib init");
  }
  ~ZlibGzip() override { inflateEnd(&z_); }
  const char* Name() const override { return "zlib"; }

 private:
  void ResetMember() override { inflateReset(&z_); }
  size_t Run(const char* in, size_t n, Sink& out) override {
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in));
    z_.avail_in = static_cast<uInt>(n);
    for (;;) {
      size_t room;
      z_.next_out = reinterpret_cast<Bytef*>(out.Space(&room));
      room = std::min<size_t>(room, UINT32_MAX);
      z_.avail_out = static_cast<uInt>(room);
      int rc = inflate(&z_, Z_NO_FLUSH);
      size_t produced = room - z_.avail_out;
      out.Wrote(produced);
      if (rc == Z_STREAM_END) {
        state_ = State::kBetween;
        return n - z_.avail_in;
      }
      if (rc != Z_OK && rc != Z_BUF_ERROR) Corrupt(what_, "gzip", z_.msg ? z_.msg : "invalid data");
      if (z_.avail_in == 0 && produced < room) return n;
    }
  }
  z_stream z_;
};

class Zstd : public Decompressor {
 public:
  explicit Zstd(std::string what) : what_(std::move(what)) {
    ctx_ = ZSTD_createDCtx();
    if (!ctx_) throw Error(Code::kResourceExhausted, what_ + ": zstd init");
    // Large windows (up to 2 GiB, zstd --long=31) are allowed, as containerd allows them.
    ZSTD_DCtx_setParameter(ctx_, ZSTD_d_windowLogMax, sizeof(void*) == 8 ? 31 : 30);
  }
  ~Zstd() override { ZSTD_freeDCtx(ctx_); }
  void Feed(const char* in, size_t n, Sink& out) override {
    ZSTD_inBuffer ib{in, n, 0};
    while (ib.pos < ib.size) Step(ib, out);
  }
  void Finish(Sink& out) override {
    ZSTD_inBuffer ib{nullptr, 0, 0};
    while (last_ != 0) {
      Step(ib, out);
      if (produced_ == 0) break;
    }
    if (last_ != 0) Corrupt(what_, "zstd", "unexpected end of stream");
  }
  const char* Name() const override { return "zstd"; }

 private:
  void Step(ZSTD_inBuffer& ib, Sink& out) {
    size_t room;
    ZSTD_outBuffer ob{out.Space(&room), 0, 0};
    ob.size = room;
    size_t rc = ZSTD_decompressStream(ctx_, &ob, &ib);
    if (ZSTD_isError(rc)) Corrupt(what_, "zstd", ZSTD_getErrorName(rc));
    last_ = rc;
    produced_ = ob.pos;
    out.Wrote(ob.pos);
  }
  std::string what_;
  ZSTD_DCtx* ctx_;
  size_t last_ = 1, produced_ = 0;  // last_: 0 once a frame is complete
};

}  // namespace

void Decompressor::Feed(const char* in, size_t n, const Out& out) {
  CallbackSink sink(out);
  Feed(in, n, sink);
}

void Decompressor::Finish(const Out& out) {
  CallbackSink sink(out);
  Finish(sink);
}

const char* CodecName(Codec c) {
  switch (c) {
    case Codec::kGzip:
      return "gzip";
    case Codec::kZstd:
      return "zstd";
    case Codec::kNone:
      break;
  }
  return "tar";
}

Codec DetectCodec(const unsigned char* m, size_t n, const std::string& what) {
  if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b) return Codec::kGzip;
  if (n >= 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd) return Codec::kZstd;
  if (n >= 3 && m[0] == 'B' && m[1] == 'Z' && m[2] == 'h')
    throw Error(Code::kInvalidArgument, what + ": bzip2 compression is not supported");
  if (n >= 6 && m[0] == 0xfd && m[1] == '7' && m[2] == 'z' && m[3] == 'X' && m[4] == 'Z' &&
      m[5] == 0)
    throw Error(Code::kInvalidArgument, what + ": xz compression is not supported");
  return Codec::kNone;
}

std::unique_ptr<Decompressor> NewDecompressor(Codec c, const std::string& what, bool prefer_zlib) {
  switch (c) {
    case Codec::kGzip: {
#ifdef BERTH_HAVE_ISAL
      static const bool env_zlib = [] {
        const char* e = std::getenv("BERTH_GZIP");
        return e && std::strcmp(e, "zlib") == 0;
      }();
      IsalLib::InitFn init;
      IsalLib::InflateFn inflate;
      if (!prefer_zlib && !env_zlib && IsalLib::Acquire(&init, &inflate))
        return std::make_unique<IsalGzip>(what, init, inflate);
#else
      (void)prefer_zlib;
#endif
      return std::make_unique<ZlibGzip>(what);
    }
    case Codec::kZstd:
      return std::make_unique<Zstd>(what);
    case Codec::kNone:
      break;
  }
  return std::make_unique<Plain>();
}

}  // namespace berth::image
