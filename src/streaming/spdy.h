// SPDY/3.1 framing (the frame layer kubelet's streaming protocols run on, `Upgrade: SPDY/3.1`):
// frames parsed from and written to bytes, and the zlib header compression with the SPDY/3
// dictionary. Pure: no sockets, no threads; one Parser and one HeaderWriter per connection.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace berth::streaming::spdy {

inline constexpr uint16_t kVersion = 3;
inline constexpr uint32_t kInitialWindow = 65536;
inline constexpr uint32_t kMaxFrameLength = 1u
                                            << 20;  // larger frames are refused (FRAME_TOO_LARGE)
inline constexpr size_t kMaxHeaderBlock = 256u << 10;  // decompressed header block

enum class Type : uint16_t {
  kData = 0,  // not a control frame type: DATA frames
  kSynStream = 1,
  kSynReply = 2,
  kRstStream = 3,
  kSettings = 4,
  kPing = 6,
  kGoAway = 7,
  kHeaders = 8,
  kWindowUpdate = 9,
};

inline constexpr uint8_t kFlagFin = 0x01;
inline constexpr uint8_t kFlagUnidirectional = 0x02;

enum RstStatus : uint32_t {
  kProtocolError = 1,
  kInvalidStream = 2,
  kRefusedStream = 3,
  kUnsupportedVersion = 4,
  kCancel = 5,
  kInternalError = 6,
  kFlowControlError = 7,
  kStreamInUse = 8,
  kStreamAlreadyClosed = 9,
  kFrameTooLarge = 11,
};

inline constexpr uint32_t kSettingsInitialWindowSize = 7;

// Header names are lower case; several values of one name are one value joined by NUL bytes.
using Headers = std::vector<std::pair<std::string, std::string>>;
// The first value of `name` ("" when absent).
std::string Get(const Headers& h, std::string_view name);

struct Frame {
  Type type = Type::kData;
  uint8_t flags = 0;
  uint32_t stream_id = 0;      // DATA, SYN_*, RST, HEADERS, WINDOW_UPDATE (0 = the session)
  uint32_t associated_id = 0;  // SYN_STREAM
  uint8_t priority = 0;        // SYN_STREAM
  uint32_t status = 0;         // RST_STREAM, GOAWAY
  uint32_t value = 0;          // PING id, GOAWAY last good stream, WINDOW_UPDATE delta
  std::vector<std::pair<uint32_t, uint32_t>> settings;  // SETTINGS: id, value
  Headers headers;                                      // SYN_STREAM, SYN_REPLY, HEADERS
  std::string data;                                     // DATA
  bool fin() const { return flags & kFlagFin; }
};

// Decompresses header blocks (one zlib stream per direction and connection).
class HeaderReader {
 public:
  HeaderReader();
  ~HeaderReader();
  HeaderReader(const HeaderReader&) = delete;
  HeaderReader& operator=(const HeaderReader&) = delete;
  // False (with *error) on a corrupt block, a block larger than kMaxHeaderBlock, or bad pairs.
  bool Read(std::string_view compressed, Headers* out, std::string* error);

 private:
  struct Z;
  std::unique_ptr<Z> z_;
};

class HeaderWriter {
 public:
  HeaderWriter();
  ~HeaderWriter();
  HeaderWriter(const HeaderWriter&) = delete;
  HeaderWriter& operator=(const HeaderWriter&) = delete;
  std::string Write(const Headers& headers);

 private:
  struct Z;
  std::unique_ptr<Z> z_;
};

// Parses frames from a byte stream as they arrive.
class Parser {
 public:
  enum class Result { kFrame, kNeedMore, kError };
  // Parses the next frame at the start of `in`; on kFrame removes its bytes from `in`. On kError
  // *error says why and *rst_stream names the stream to reset (0: the session is broken).
  Result Next(std::string& in, Frame* out, std::string* error, uint32_t* rst_stream = nullptr);

 private:
  HeaderReader headers_;
};

// The peer's receive windows, as a sender keeps them: the peer's initial window for each
// stream (SETTINGS) and WINDOW_UPDATE per stream and for the session. Honoured once the peer
// shows it does flow control (sends either frame); until then every byte may go.
class SendWindows {
 public:
  void Open(uint32_t id);              // a new stream, at the peer's initial window
  void OnFrame(const Frame& f);        // SETTINGS or WINDOW_UPDATE from the peer
  size_t Allowed(uint32_t id, size_t want) const;  // of `want` bytes of DATA, how many may go now
  void Charge(uint32_t id, size_t n);  // n bytes of DATA sent on stream id

 private:
  bool enabled_ = false;
  std::map<uint32_t, int64_t> streams_;
  int64_t session_ = kInitialWindow, initial_ = kInitialWindow;
};

// Frame writers.
std::string SynStream(HeaderWriter& hw, uint32_t id, const Headers& h, bool fin,
                      uint32_t associated = 0);
std::string SynReply(HeaderWriter& hw, uint32_t id, const Headers& h, bool fin);
std::string HeadersFrame(HeaderWriter& hw, uint32_t id, const Headers& h, bool fin);
std::string RstStream(uint32_t id, uint32_t status);
std::string Settings(const std::vector<std::pair<uint32_t, uint32_t>>& settings);
std::string Ping(uint32_t id);
std::string GoAway(uint32_t last_good, uint32_t status);
std::string WindowUpdate(uint32_t id, uint32_t delta);
std::string Data(uint32_t id, std::string_view data, bool fin);

}  // namespace berth::streaming::spdy
