// Runs one child process for the tuning runners (runner.h): argv vector, no shell, stdin given
// as a string, stdout and stderr captured through pipes (poll: a child that fills one pipe while
// we write the other never deadlocks), a wall-clock timeout that kills the child (SIGKILL; the
// child stays in kiln's process group so that Ctrl-C reaches it too), and an exit status that
// tells a normal exit from a signal.
#pragma once

#include <string>
#include <vector>

#include "compiler/ir/status.h"

namespace kiln::tune {

struct ProcessResult {
  bool timed_out = false;  // killed (SIGKILL) after timeout_seconds
  bool signaled = false;   // ended by a signal (its number in `signal`)
  int exit_code = 0;       // when !signaled && !timed_out
  int signal = 0;
  std::string out, err;  // everything the child wrote (each capped at 64 MB)
};

// Starts argv[0] (looked up in PATH when it has no '/') and feeds it `input` on stdin. An error
// only when the process could not be started at all (its message names argv[0] and why).
Result<ProcessResult> run_process(const std::vector<std::string>& argv, const std::string& input,
                                  int timeout_seconds);

// Ctrl-C: interrupt_children() (async-signal-safe: call it from a SIGINT/SIGTERM handler) makes
// the running run_process, and every later one until clear_interrupt(), kill its child and return
// the error "interrupted". The ssh runner clears it to remove its directory on the board.
void interrupt_children();
void clear_interrupt();
bool interrupted();

// "SIGSEGV", "SIGILL", ... or "signal N" for numbers without a name here.
std::string signal_name(int signal);

// The last non-empty line of a child's stderr, trimmed ("" if none).
std::string last_line(const std::string& text);

}  // namespace kiln::tune
