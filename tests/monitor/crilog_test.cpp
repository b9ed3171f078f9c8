#include "monitor/crilog.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "monitor/exitfile.h"
#include "monitor/loglost.h"

using namespace berth::monitor;

namespace {

struct Piece {
  bool partial;
  std::string text;
  bool operator==(const Piece& o) const { return partial == o.partial && text == o.text; }
};

void Collect(void* ctx, bool partial, std::string_view text) {
  static_cast<std::vector<Piece>*>(ctx)->push_back({partial, std::string(text)});
}

std::vector<Piece> Split(long max, const std::vector<std::string>& chunks, bool finish = true) {
  std::vector<Piece> out;
  LineSplitter s(max, Collect, &out);
  for (const auto& c : chunks) s.Feed(c);
  if (finish) s.Finish();
  return out;
}

}  // namespace

TEST(CriLogTimestamp, FormatsUtcWithNineFractionDigits) {
  EXPECT_EQ(FormatTimestamp(0), "1970-01-01T00:00:00.000000000Z");
  EXPECT_EQ(FormatTimestamp(1764393013123456789LL), "2025-11-29T05:10:13.123456789Z");
  EXPECT_EQ(FormatTimestamp(951782400000000001LL), "2000-02-29T00:00:00.000000001Z");
}

TEST(CriLogTimestamp, ParsesWhatItFormatsAndOffsets) {
  int64_t ns = 0;
  ASSERT_TRUE(ParseTimestamp("2025-11-29T05:10:13.123456789Z", &ns));
  EXPECT_EQ(ns, 1764393013123456789LL);
  ASSERT_TRUE(ParseTimestamp("2025-11-29T06:10:13.5+01:00", &ns));
  EXPECT_EQ(ns, 1764393013500000000LL);
  ASSERT_TRUE(ParseTimestamp("2025-11-29T05:10:13Z", &ns));
  EXPECT_EQ(ns, 1764393013000000000LL);
  for (const char* bad : {"", "2025-11-29", "2025-11-29T05:10:13", "2025-13-29T05:10:13Z",
                          "2025-11-29T05:10:13.Z", "2025-11-29T05:10:13Zjunk", "x025-11-29T05:10:13Z",
                          "2025-11-29T05:10:13+0100"})
    EXPECT_FALSE(ParseTimestamp(bad, &ns)) << bad;
}

TEST(CriLogEntry, AppendsTheCriFormat) {
  std::string out;
  AppendLogEntry(out, 0, Stream::kStdout, false, "hello");
  AppendLogEntry(out, 0, Stream::kStderr, true, "");
  EXPECT_EQ(out,
            "1970-01-01T00:00:00.000000000Z stdout F hello\n"
            "1970-01-01T00:00:00.000000000Z stderr P \n");
}

TEST(LineSplitter, CompleteLinesAreFull) {
  EXPECT_EQ(Split(16, {"a\nbb\n", "\n"}),
            (std::vector<Piece>{{false, "a"}, {false, "bb"}, {false, ""}}));
}

TEST(LineSplitter, LinesAcrossChunksAreJoined) {
  EXPECT_EQ(Split(16, {"he", "ll", "o\nwor", "ld\n"}),
            (std::vector<Piece>{{false, "hello"}, {false, "world"}}));
}

TEST(LineSplitter, LongLinesBecomePartialPiecesOfMaxBytes) {
  EXPECT_EQ(Split(4, {"abcdefghij\n"}),
            (std::vector<Piece>{{true, "abcd"}, {true, "efgh"}, {false, "ij"}}));
  EXPECT_EQ(Split(4, {"ab", "cdef", "ghij", "\n"}),
            (std::vector<Piece>{{true, "abcd"}, {true, "efgh"}, {false, "ij"}}));
}

TEST(LineSplitter, LineOfExactlyMaxBytesIsFull) {
  EXPECT_EQ(Split(4, {"abcd\n"}), (std::vector<Piece>{{false, "abcd"}}));
  EXPECT_EQ(Split(4, {"ab", "cd", "\n"}), (std::vector<Piece>{{false, "abcd"}}));
  EXPECT_EQ(Split(4, {"abcdefgh\n"}), (std::vector<Piece>{{true, "abcd"}, {false, "efgh"}}));
}

TEST(LineSplitter, LastLineWithoutNewlineIsPartialAtFinish) {
  EXPECT_EQ(Split(16, {"a\nrest"}), (std::vector<Piece>{{false, "a"}, {true, "rest"}}));
  EXPECT_EQ(Split(4, {"abcdef"}), (std::vector<Piece>{{true, "abcd"}, {true, "ef"}}));
  EXPECT_EQ(Split(16, {"a\nrest"}, false), (std::vector<Piece>{{false, "a"}}));
  EXPECT_EQ(Split(16, {}), (std::vector<Piece>{}));
}

TEST(LineSplitter, NoLimit) {
  std::string big(100000, 'x');
  EXPECT_EQ(Split(0, {big, big, "\n"}), (std::vector<Piece>{{false, big + big}}));
  EXPECT_EQ(Split(-1, {"abc\n"}), (std::vector<Piece>{{false, "abc"}}));
}

TEST(ParseLogLine, AcceptsCriLines) {
  LogEntry e;
  ASSERT_EQ(ParseLogLine("2025-11-29T05:10:13.123456789Z stdout F hello world\n", &e), "");
  EXPECT_EQ(e.timestamp, "2025-11-29T05:10:13.123456789Z");
  EXPECT_EQ(e.stream, Stream::kStdout);
  EXPECT_FALSE(e.partial);
  EXPECT_EQ(e.text, "hello world");
  ASSERT_EQ(ParseLogLine("2025-11-29T05:10:13Z stderr P  x", &e), "");
  EXPECT_EQ(e.stream, Stream::kStderr);
  EXPECT_TRUE(e.partial);
  EXPECT_EQ(e.text, " x");
  ASSERT_EQ(ParseLogLine("2025-11-29T05:10:13Z stdout F", &e), "");
  EXPECT_EQ(e.text, "");
  ASSERT_EQ(ParseLogLine("2025-11-29T05:10:13Z stdout F:extra text", &e), "");
  EXPECT_EQ(e.text, "text");
}

TEST(ParseLogLine, RejectsGarbage) {
  LogEntry e;
  EXPECT_EQ(ParseLogLine("", &e), "missing stream after timestamp");
  EXPECT_EQ(ParseLogLine("yesterday stdout F x", &e), "invalid timestamp");
  EXPECT_EQ(ParseLogLine("2025-11-29T05:10:13Z stdin F x", &e), "unknown stream");
  EXPECT_EQ(ParseLogLine("2025-11-29T05:10:13Z stdout", &e), "missing tag after stream");
  EXPECT_EQ(ParseLogLine("2025-11-29T05:10:13Z stdout X x", &e), "unknown tag");
}

TEST(ParseLogLine, RoundTripsWithAppend) {
  std::string out;
  AppendLogEntry(out, 1764393013123456789LL, Stream::kStderr, true, "a b  c");
  LogEntry e;
  ASSERT_EQ(ParseLogLine(out, &e), "");
  EXPECT_EQ(e.text, "a b  c");
  EXPECT_TRUE(e.partial);
  int64_t ns;
  ASSERT_TRUE(ParseTimestamp(e.timestamp, &ns));
  EXPECT_EQ(ns, 1764393013123456789LL);
}

TEST(ExitFile, RoundTrip) {
  ExitInfo in;
  in.exit_code = 137;
  in.exited_at_ns = 1764393013123456789LL;
  in.signal = 9;
  in.oom_killed = true;
  in.error = "two\nlines";
  std::string text = FormatExitInfo(in);
  EXPECT_EQ(text, "exit_code 137\nexited_at 1764393013123456789\nsignal 9\noom_killed 1\nerror two lines\n");
  ExitInfo out;
  ASSERT_EQ(ParseExitInfo(text, &out), "");
  EXPECT_EQ(out.exit_code, 137);
  EXPECT_EQ(out.exited_at_ns, in.exited_at_ns);
  EXPECT_EQ(out.signal, 9);
  EXPECT_TRUE(out.oom_killed);
  EXPECT_EQ(out.error, "two lines");
}

TEST(ExitFile, RejectsMalformed) {
  ExitInfo out;
  EXPECT_EQ(ParseExitInfo("", &out), "missing exit_code");
  EXPECT_EQ(ParseExitInfo("exit_code 1\n", &out), "missing exited_at");
  EXPECT_EQ(ParseExitInfo("exit_code x\nexited_at 1\n", &out), "invalid exit_code");
  EXPECT_EQ(ParseExitInfo("exit_code 1\nexited_at 99999999999999999999999\n", &out), "invalid exited_at");
  EXPECT_EQ(ParseExitInfo("exit_code 1\nexited_at 1\noom_killed yes\n", &out), "invalid oom_killed");
  EXPECT_EQ(ParseExitInfo("exit_code 1\nexited_at 1\nfuture 7\n", &out), "");
}

TEST(LogLoss, RoundTripsAndRejectsWhatIsPartialOrMalformed) {
  LogLoss l{12, 1034};
  EXPECT_EQ(FormatLogLoss(l), "entries 12\nbytes 1034\n");
  LogLoss back;
  EXPECT_EQ(ParseLogLoss(FormatLogLoss(l), &back), "");
  EXPECT_EQ(back.entries, 12u);
  EXPECT_EQ(back.bytes, 1034u);
  EXPECT_EQ(ParseLogLoss("bytes 3\nlater 1\nentries 2\n", &back), "");  // unknown keys ignored
  EXPECT_EQ(back.entries, 2u);
  EXPECT_EQ(ParseLogLoss("entries 12\n", &back), "entries and bytes are required");
  EXPECT_EQ(ParseLogLoss("entries -1\nbytes 2\n", &back), "invalid entries \"-1\"");
  EXPECT_EQ(ParseLogLoss("entries 1\nbytes 99999999999999999999\n", &back),
            "invalid bytes \"99999999999999999999\"");
  EXPECT_EQ(LogLossPath("/run/c/1"), "/run/c/1/log-lost");
}
