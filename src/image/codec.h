// Layer decompression behind one interface: gzip through isa-l's inflate (zlib when isa-l is not
// built in, or BERTH_GZIP=zlib), zstd through libzstd's streaming API with a large window, and
// uncompressed tar. Every decoder produces the same bytes, so the DiffID does not depend on it.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace berth::image {

enum class Codec { kNone, kGzip, kZstd };
const char* CodecName(Codec c);  // "tar" | "gzip" | "zstd"

// The codec of a layer from its first bytes (at least 6 when the blob has them). bzip2 and xz
// are refused by name: Error(kInvalidArgument, "<what>: bzip2 compression is not supported").
Codec DetectCodec(const unsigned char* p, size_t n, const std::string& what);

class Decompressor {
 public:
  // Where decoded bytes go, written in place: Space() is room for the next ones (at least one
  // byte), Wrote(n) says that n bytes of it were filled.
  class Sink {
   public:
    virtual char* Space(size_t* room) = 0;
    virtual void Wrote(size_t n) = 0;

   protected:
    ~Sink() = default;
  };
  using Out = std::function<void(const char*, size_t)>;
  virtual ~Decompressor() = default;
  // Consumes n bytes and writes what they decode to into out. Corrupt input throws
  // Error(kInvalidArgument, "<what>: <codec>: <why>").
  virtual void Feed(const char* in, size_t n, Sink& out) = 0;
  // End of input: a stream cut short throws Error(kInvalidArgument).
  virtual void Finish(Sink& out) = 0;
  virtual const char* Name() const = 0;  // "isa-l", "zlib", "zstd", "none"
  // The same with every decoded piece passed to a callback (from a buffer of the decoder's).
  void Feed(const char* in, size_t n, const Out& out);
  void Finish(const Out& out);
};

// `what` names the layer in errors. gzip uses isa-l unless prefer_zlib (or BERTH_GZIP=zlib).
std::unique_ptr<Decompressor> NewDecompressor(Codec c, const std::string& what,
                                              bool prefer_zlib = false);

}  // namespace berth::image
