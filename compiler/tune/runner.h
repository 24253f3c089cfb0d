// Where `kiln tune` runs its probe (kiln-tune-probe: one JSON request on stdin, one JSON response
// on stdout; exit 0 = ok, exit 2 = request error with {"error": ...} on stdout):
//   local           this machine, the probe run directly;
//   ssh://[user@]host[:port]
//                   a board over the system's ssh/scp with the user's keys only (BatchMode, no
//                   password or keyboard-interactive prompt, unknown host keys refused). The
//                   probe is copied once into a fresh `mktemp -d /tmp/kiln-tune.XXXXXX` on the
//                   board, each run executes exactly DIR/kiln-tune-probe, and the runner's
//                   destructor removes DIR. Nothing listens on the board.
//   qemu:<cpu>      tests only: `qemu-aarch64 -cpu <cpu> PROBE` on this machine (timings
//                   meaningless).
// Test-only: KILN_TUNE_SSH_EMULATOR="qemu-aarch64[ -cpu NAME]" prefixes the remote probe command
// so the suite can run the aarch64 probe through an x86 sshd. docs/architecture.md, "Tuning
// runners", says why the ssh rules are what they are.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "compiler/ir/status.h"

namespace kiln::tune {

struct RunnerOptions {
  std::string url;            // "local" | "ssh://[user@]host[:port]" | "qemu:<cpu>" (tests only)
  std::string probe;          // path of kiln-tune-probe built for the target
  std::string ssh_config;     // optional: passed as `-F FILE` to ssh and scp
  int timeout_seconds = 900;  // per probe run
};

class Runner {
 public:
  virtual ~Runner() = default;
  // One probe run: the request on its stdin, its JSON response. Errors name the probe, where it
  // ran and what went wrong (crash with the signal, exit code with its last stderr line, no or
  // invalid JSON, timeout, or the probe's own {"error": ...} verbatim).
  virtual Result<nlohmann::json> run(const nlohmann::json& request) = 0;
  // "local", "ssh://pi@pi5.local:22", "qemu cortex-a76 (timings meaningless)"
  virtual std::string describe() const = 0;
  virtual bool timings_meaningful() const { return true; }
};

// Checks the url and the probe file; an ssh runner also connects, creates its directory on the
// board and copies the probe there (so a bad key or host fails here, before any search).
Result<std::unique_ptr<Runner>> make_runner(const RunnerOptions& options);

// ssh://[user@]host[:port], parsed strictly: user [A-Za-z0-9._-] (not starting with '-'), host
// a name, ssh_config Host alias or IPv4 address [A-Za-z0-9._-] (not starting with '-' or '.'),
// port 1..65535 (0 when not given: ssh's default or the ssh_config's). Anything else (spaces,
// quotes, ';', '$', options such as -oProxyCommand=...) is refused before ssh runs.
struct SshUrl {
  std::string user;
  std::string host;
  int port = 0;
};
Result<SshUrl> parse_ssh_url(const std::string& url);

// KILN_TUNE_SSH_EMULATOR's value split into argv: exactly "qemu-aarch64" or
// "qemu-aarch64 -cpu NAME" (NAME [A-Za-z0-9._+-], not starting with '-'); anything else refused.
Result<std::vector<std::string>> parse_ssh_emulator(const std::string& value);

}  // namespace kiln::tune
