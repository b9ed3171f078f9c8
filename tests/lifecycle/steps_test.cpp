// The step runner of the CRI calls (lifecycle/steps.h): journal before each step, undo in
// reverse on failure, a failing undo reported and never dropped. Pure logic, no root.
#include "lifecycle/steps.h"

#include <stdexcept>

#include <gtest/gtest.h>

#include "common/error.h"

namespace {

using berth::lifecycle::RunForwardSteps;
using berth::lifecycle::RunSteps;
using berth::lifecycle::Step;
using berth::lifecycle::StepCalls;
using berth::lifecycle::UndoSteps;

struct Trace {
  std::vector<std::string> events;
  std::vector<std::vector<std::string>> journals;
  std::string failing_undo;
  StepCalls Calls() {
    StepCalls c;
    c.call = "Test";
    c.id = "x";
    c.record = [this](const std::vector<std::string>& begun) {
      journals.push_back(begun);
      events.push_back("record " + begun.back());
    };
    c.undo = [this](const std::string& s) {
      if (s == failing_undo) throw berth::Error(berth::Code::kUnavailable, "stays busy");
      events.push_back("undo " + s);
    };
    return c;
  }
};

TEST(Steps, EachStepIsRecordedBeforeItRuns) {
  Trace t;
  bool undo_failed = true;
  auto done = RunSteps(
      t.Calls(),
      {{"a", [&] { t.events.push_back("run a"); }}, {"b", [&] { t.events.push_back("run b"); }}},
      &undo_failed);
  EXPECT_EQ(done, (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(undo_failed);
  EXPECT_EQ(t.events, (std::vector<std::string>{"record a", "run a", "record b", "run b"}));
  EXPECT_EQ(t.journals.back(), (std::vector<std::string>{"a", "b"}));
}

TEST(Steps, AFailingStepUndoesTheBegunStepsInReverse) {
  Trace t;
  bool undo_failed = true;
  std::vector<Step> steps = {
      {"a", [] {}},
      {"b", [] {}},
      {"c", [] { throw berth::Error(berth::Code::kInvalidArgument, "bad sysctl"); }},
      {"d", [&] { t.events.push_back("run d"); }}};
  try {
    RunSteps(t.Calls(), steps, &undo_failed);
    FAIL() << "no error";
  } catch (const berth::Error& e) {
    EXPECT_EQ(e.code(), berth::Code::kInvalidArgument);
    EXPECT_STREQ(e.what(), "bad sysctl");
  }
  EXPECT_FALSE(undo_failed);
  EXPECT_EQ(t.events, (std::vector<std::string>{"record a", "record b", "record c", "undo c",
                                                "undo b", "undo a"}));
}

TEST(Steps, AFailingUndoIsReportedAndTheOthersStillRun) {
  Trace t;
  t.failing_undo = "b";
  bool undo_failed = false;
  try {
    RunSteps(t.Calls(),
             {{"a", [] {}}, {"b", [] {}}, {"c", [] { throw std::runtime_error("no space"); }}},
             &undo_failed);
    FAIL() << "no error";
  } catch (const berth::Error& e) {
    EXPECT_EQ(e.code(), berth::Code::kInternal);
    EXPECT_NE(std::string(e.what()).find("no space"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("b: stays busy"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(undo_failed);
  EXPECT_EQ(t.events,
            (std::vector<std::string>{"record a", "record b", "record c", "undo c", "undo a"}));
  auto failed = UndoSteps(t.Calls(), {"a", "b"}, "retry");
  EXPECT_EQ(failed, (std::vector<std::string>{"b: stays busy"}));
}

// Stops and removals: recorded before each step like the others, nothing undone when one fails,
// the journal left naming the step that failed for the retry or recovery to finish.
TEST(Steps, ForwardStepsAreRecordedAndAFailureKeepsTheJournal) {
  Trace t;
  std::vector<Step> steps = {
      {"stop-a", [&] { t.events.push_back("run stop-a"); }},
      {"stop-b", [] { throw berth::Error(berth::Code::kUnavailable, "CNI DEL failed"); }},
      {"stop-c", [&] { t.events.push_back("run stop-c"); }}};
  try {
    RunForwardSteps(t.Calls(), steps);
    FAIL() << "the failing step was not reported";
  } catch (const berth::Error& e) {
    EXPECT_EQ(e.code(), berth::Code::kUnavailable);
    EXPECT_STREQ(e.what(), "CNI DEL failed");
  }
  EXPECT_EQ(t.events, (std::vector<std::string>{"record stop-a", "run stop-a", "record stop-b"}));
  EXPECT_EQ(t.journals.back(), (std::vector<std::string>{"stop-a", "stop-b"}));
  t.events.clear();
  RunForwardSteps(t.Calls(), {steps[0], steps[2]});
  EXPECT_EQ(t.events, (std::vector<std::string>{"record stop-a", "run stop-a", "record stop-c",
                                                "run stop-c"}));
}

}  // namespace
