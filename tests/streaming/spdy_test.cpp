#include "streaming/spdy.h"

#include <gtest/gtest.h>

namespace spdy = berth::streaming::spdy;

namespace {

spdy::Frame ParseOne(spdy::Parser& p, std::string bytes) {
  spdy::Frame f;
  std::string err;
  EXPECT_EQ(p.Next(bytes, &f, &err), spdy::Parser::Result::kFrame) << err;
  EXPECT_TRUE(bytes.empty());
  return f;
}

TEST(Spdy, HeadersCompressAcrossFramesOfOneConnection) {
  spdy::HeaderWriter w;
  spdy::Parser p;
  for (uint32_t id : {1u, 3u, 5u}) {
    spdy::Headers h = {{"streamtype", id == 3 ? "stdout" : "error"},
                       {"port", "8080"},
                       {"x", std::string("a\0b", 3)}};
    auto f = ParseOne(p, spdy::SynStream(w, id, h, id == 5));
    EXPECT_EQ(f.type, spdy::Type::kSynStream);
    EXPECT_EQ(f.stream_id, id);
    EXPECT_EQ(f.fin(), id == 5);
    EXPECT_EQ(f.headers, h);
    EXPECT_EQ(spdy::Get(f.headers, "x"), "a");
  }
  auto r = ParseOne(p, spdy::SynReply(w, 7, {{":status", "200"}}, false));
  EXPECT_EQ(r.type, spdy::Type::kSynReply);
  EXPECT_EQ(spdy::Get(r.headers, ":status"), "200");
}

TEST(Spdy, ControlAndDataFrames) {
  spdy::Parser p;
  auto d = ParseOne(p, spdy::Data(3, "hello", true));
  EXPECT_EQ(d.type, spdy::Type::kData);
  EXPECT_EQ(d.data, "hello");
  EXPECT_TRUE(d.fin());
  auto wu = ParseOne(p, spdy::WindowUpdate(0, 4096));
  EXPECT_EQ(wu.type, spdy::Type::kWindowUpdate);
  EXPECT_EQ(wu.value, 4096u);
  auto s = ParseOne(p, spdy::Settings({{spdy::kSettingsInitialWindowSize, 1 << 20}}));
  ASSERT_EQ(s.settings.size(), 1u);
  EXPECT_EQ(s.settings[0].second, 1u << 20);
  EXPECT_EQ(ParseOne(p, spdy::Ping(7)).value, 7u);
  auto g = ParseOne(p, spdy::GoAway(9, 1));
  EXPECT_EQ(g.value, 9u);
  EXPECT_EQ(g.status, 1u);
  auto rst = ParseOne(p, spdy::RstStream(5, spdy::kCancel));
  EXPECT_EQ(rst.status, uint32_t(spdy::kCancel));
}

TEST(Spdy, PartialAndBadInput) {
  spdy::Parser p;
  std::string frame = spdy::Data(1, "abc", false);
  std::string part = frame.substr(0, 9);
  spdy::Frame f;
  std::string err;
  EXPECT_EQ(p.Next(part, &f, &err), spdy::Parser::Result::kNeedMore);
  std::string big("\x00\x00\x00\x01\x00\xff\xff\xff", 8);
  EXPECT_EQ(p.Next(big, &f, &err), spdy::Parser::Result::kError);
  EXPECT_NE(err.find("larger"), std::string::npos);
  std::string v2("\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01", 12);
  EXPECT_EQ(p.Next(v2, &f, &err), spdy::Parser::Result::kError);
  spdy::Parser q;
  std::string corrupt(
      "\x80\x03\x00\x01\x00\x00\x00\x0e\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x12\x34\x56\x78",
      22);
  EXPECT_EQ(q.Next(corrupt, &f, &err), spdy::Parser::Result::kError);
  EXPECT_FALSE(err.empty());
}

}  // namespace

TEST(SpdySendWindows, HonouredOnceThePeerShowsFlowControl) {
  spdy::SendWindows w;
  w.Open(1);
  EXPECT_EQ(w.Allowed(1, 1 << 20), 1u << 20);  // the peer said nothing about windows yet
  spdy::Frame settings;
  settings.type = spdy::Type::kSettings;
  settings.settings = {{spdy::kSettingsInitialWindowSize, 100}};
  w.OnFrame(settings);
  EXPECT_EQ(w.Allowed(1, 500), 100u);
  w.Charge(1, 100);
  EXPECT_EQ(w.Allowed(1, 500), 0u);
  spdy::Frame update;
  update.type = spdy::Type::kWindowUpdate;
  update.stream_id = 1;
  update.value = 50;
  w.OnFrame(update);
  EXPECT_EQ(w.Allowed(1, 500), 50u);
  w.Open(3);  // at the initial window the peer set
  EXPECT_EQ(w.Allowed(3, 500), 100u);
  w.Charge(3, spdy::kInitialWindow - 100);  // the session window (64 KiB) runs out too
  EXPECT_EQ(w.Allowed(1, 500), 0u);
}
