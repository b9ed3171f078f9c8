// SPDY frames come from any client of the streaming server: the parser must reject whatever is
// malformed (bad lengths, corrupt or oversized compressed headers) with a message and never
// crash, and a frame it accepts must survive a write/parse round trip.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "streaming/spdy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace spdy = berth::streaming::spdy;
  std::string in(reinterpret_cast<const char*>(data), size);
  spdy::Parser parser;
  spdy::HeaderWriter hw;
  spdy::Parser again;
  for (int i = 0; i < 64; ++i) {
    spdy::Frame f;
    std::string err;
    auto r = parser.Next(in, &f, &err);
    if (r != spdy::Parser::Result::kFrame) break;
    std::string out;
    switch (f.type) {
      case spdy::Type::kData:
        out = spdy::Data(f.stream_id, f.data, f.fin());
        break;
      case spdy::Type::kSynStream:
        out = spdy::SynStream(hw, f.stream_id, f.headers, f.fin(), f.associated_id);
        break;
      case spdy::Type::kWindowUpdate:
        out = spdy::WindowUpdate(f.stream_id, f.value);
        break;
      default:
        continue;
    }
    spdy::Frame g;
    if (again.Next(out, &g, &err) != spdy::Parser::Result::kFrame) abort();
    if (g.type != f.type || g.stream_id != f.stream_id || g.data != f.data ||
        g.headers != f.headers || g.value != f.value)
      abort();
  }
  return 0;
}
