// The tuning runners (local, ssh, qemu); see runner.h.
#include "compiler/tune/runner.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <regex>
#include <utility>
#include <vector>

#include "compiler/tune/process.h"

namespace kiln::tune {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

bool only_chars(const std::string& s, const char* allowed_punct) {
  for (unsigned char c : s)
    if (!std::isalnum(c) && !std::strchr(allowed_punct, c)) return false;
  return true;
}

std::string in_quotes(const std::string& s) {
  return "'" + s + "'";
}

// The probe file as given, made absolute (an absolute path never reads as an option or as
// scp's host:path); an error says why it cannot be run.
Result<std::string> probe_file(const std::string& probe) {
  if (probe.empty()) return Status::error("no probe given (kiln-tune-probe built for the target)");
  std::error_code ec;
  const fs::path p = fs::absolute(probe, ec);
  if (ec || !fs::exists(p, ec))
    return Status::error(
        "probe " + in_quotes(probe) +
        " does not exist (build it: cmake --build BUILD --target kiln-tune-probe)");
  if (!fs::is_regular_file(p, ec))
    return Status::error("probe " + in_quotes(probe) + " is not a file");
  return p.string();
}

// Turns one finished probe run into its response or an error naming the probe, where it ran
// and what went wrong.
Result<json> read_response(const ProcessResult& p, const std::string& probe,
                           const std::string& where, int timeout_seconds) {
  const std::string who = "probe " + in_quotes(probe);
  const std::string stderr_line = last_line(p.err);
  const std::string said = stderr_line.empty() ? "" : ": " + stderr_line;
  if (p.timed_out)
    return Status::error(who + " timed out after " + std::to_string(timeout_seconds) + " s on " +
                         where + " (killed)");
  if (p.signaled) {
    std::string why;
    if (p.signal == SIGILL)
      why = " (an instruction this CPU does not have: is the probe built for this target?)";
    return Status::error(who + " crashed (signal " + std::to_string(p.signal) + ", " +
                         signal_name(p.signal) + ") on " + where + why + said);
  }
  if (p.exit_code != 0 && p.exit_code != 2)
    return Status::error(who + " exited with code " + std::to_string(p.exit_code) + " on " + where +
                         (said.empty() ? " (nothing on stderr)" : said));
  size_t first = p.out.find_first_not_of(" \t\r\n");
  if (first == std::string::npos)
    return Status::error(who + " wrote no JSON on " + where + " (exit code " +
                         std::to_string(p.exit_code) + ")" + said);
  json response;
  std::string parse_error;
  try {
    response = json::parse(p.out);
  } catch (const json::exception& e) {
    parse_error = e.what();
  }
  if (!parse_error.empty() || !response.is_object()) {
    std::string begins = p.out.substr(first, 120);
    for (char& c : begins)
      if (c == '\n' || c == '\r') c = ' ';
    return Status::error(who + " wrote invalid JSON on " + where + " (exit code " +
                         std::to_string(p.exit_code) +
                         "): " + (parse_error.empty() ? "not a JSON object" : parse_error) +
                         "; it began: " + in_quotes(begins));
  }
  auto error = response.find("error");
  if (error != response.end())  // the probe's own words, verbatim
    return Status::error(who + " on " + where + ": " +
                         (error->is_string() ? error->get<std::string>() : error->dump()));
  if (p.exit_code == 2)
    return Status::error(who + " exited with code 2 (request error) on " + where +
                         " without an \"error\" in its JSON" + said);
  return response;
}

Result<json> run_and_read(const std::vector<std::string>& argv, const json& request,
                          const std::string& probe, const std::string& where, int timeout_seconds) {
  KILN_ASSIGN_OR_RETURN(ProcessResult p, run_process(argv, request.dump() + "\n", timeout_seconds));
  return read_response(p, probe, where, timeout_seconds);
}

class LocalRunner : public Runner {
 public:
  LocalRunner(std::string probe, int timeout) : probe_(std::move(probe)), timeout_(timeout) {}
  Result<json> run(const json& request) override {
    return run_and_read({probe_}, request, probe_, describe(), timeout_);
  }
  std::string describe() const override { return "local"; }

 private:
  std::string probe_;
  int timeout_;
};

class QemuRunner : public Runner {
 public:
  QemuRunner(std::string cpu, std::string probe, int timeout)
      : cpu_(std::move(cpu)), probe_(std::move(probe)), timeout_(timeout) {}
  Result<json> run(const json& request) override {
    auto r = run_and_read({"qemu-aarch64", "-cpu", cpu_, probe_}, request, probe_, "qemu " + cpu_,
                          timeout_);
    if (!r && r.status().message().rfind("cannot run 'qemu-aarch64'", 0) == 0)
      return Status::error(r.status().message() + " (the qemu runner needs qemu-user)");
    return r;
  }
  std::string describe() const override { return "qemu " + cpu_ + " (timings meaningless)"; }
  bool timings_meaningful() const override { return false; }

 private:
  std::string cpu_, probe_;
  int timeout_;
};

bool contains(const std::string& s, const char* what) {
  return s.find(what) != std::string::npos;
}

// The line of ssh's stderr that says what went wrong: the last one holding the first of `keys`
// found, else the last line.
std::string ssh_said(const std::string& err, std::initializer_list<const char*> keys) {
  for (const char* key : keys) {
    std::string line;
    size_t pos = 0;
    while (pos < err.size()) {
      size_t end = err.find('\n', pos);
      if (end == std::string::npos) end = err.size();
      std::string l = err.substr(pos, end - pos);
      if (!l.empty() && l.back() == '\r') l.pop_back();
      if (contains(l, key)) line = l;
      pos = end + 1;
    }
    if (!line.empty()) return line;
  }
  return last_line(err);
}

class SshRunner : public Runner {
 public:
  SshRunner(SshUrl url, std::string ssh_config, std::string probe, int timeout,
            std::vector<std::string> emulator)
      : url_(std::move(url)),
        ssh_config_(std::move(ssh_config)),
        probe_(std::move(probe)),
        timeout_(timeout),
        emulator_(std::move(emulator)) {}

  ~SshRunner() override {
    if (dir_.empty()) return;
    clear_interrupt();  // after Ctrl-C too: a second one stops the clean-up
    // Only the directory mktemp made and connect() validated.
    auto r = run_process(ssh_argv("rm -rf " + dir_), "", kSetupSeconds);
    if (!r || r->timed_out || r->signaled || r->exit_code != 0)
      std::fprintf(stderr, "kiln tune: warning: could not remove %s on %s%s\n", dir_.c_str(),
                   where().c_str(),
                   r ? (": " + last_line(r->err)).c_str() : (": " + r.status().message()).c_str());
  }

  // mktemp -d on the board, the printed path checked, the probe copied there and made
  // executable.
  Status connect() {
    KILN_ASSIGN_OR_RETURN(ProcessResult p, checked(ssh_argv("mktemp -d /tmp/kiln-tune.XXXXXX"),
                                                   "mktemp -d /tmp/kiln-tune.XXXXXX"));
    // The last line: a login script that prints a banner does not hide the path.
    const std::string dir = last_line(p.out);
    static const std::regex kDir("^/tmp/kiln-tune\\.[A-Za-z0-9]{6}$");
    if (!std::regex_match(dir, kDir))
      return Status::error("mktemp on " + where() + " printed " + in_quotes(dir.substr(0, 80)) +
                           ", not a /tmp/kiln-tune.XXXXXX directory: not using it");
    dir_ = dir;
    std::vector<std::string> scp = {"scp", "-q"};
    add_common_options(scp);
    if (url_.port) scp.insert(scp.end(), {"-P", std::to_string(url_.port)});
    scp.insert(scp.end(), {"--", probe_, destination() + ":" + dir_ + "/kiln-tune-probe"});
    KILN_RETURN_IF_ERROR(checked(scp, "scp of " + in_quotes(probe_)).status());
    KILN_RETURN_IF_ERROR(
        checked(ssh_argv("chmod 700 " + dir_ + "/kiln-tune-probe"), "chmod").status());
    return Status::ok();
  }

  Result<json> run(const json& request) override {
    KILN_ASSIGN_OR_RETURN(ProcessResult p,
                          run_process(ssh_argv(probe_command()), request.dump() + "\n", timeout_));
    if (!p.timed_out && !p.signaled) {
      if (p.exit_code == 255) return ssh_error(p, "running the probe");
      if (p.exit_code == 126 || p.exit_code == 127)
        return Status::error("probe " + in_quotes(dir_ + "/kiln-tune-probe") + " could not be " +
                             (p.exit_code == 126 ? "executed" : "started") + " on " + where() +
                             ": " + last_line(p.err) +
                             (p.exit_code == 126
                                  ? " (is /tmp mounted noexec, or the probe built for another "
                                    "architecture?)"
                                  : ""));
      // The remote sh reports a probe killed by signal N as 128 + N (probe_command()).
      if (p.exit_code > 128 && p.exit_code < 128 + 32) {
        p.signaled = true;
        p.signal = p.exit_code - 128;
      }
    }
    return read_response(p, probe_, where(), timeout_);
  }

  std::string describe() const override {
    return where() + (emulator_.empty() ? "" : " (emulated: timings meaningless)");
  }
  bool timings_meaningful() const override { return emulator_.empty(); }

 private:
  static constexpr int kSetupSeconds = 60;

  // ssh://[user@]host[:port], as in errors.
  std::string where() const {
    return "ssh://" + destination() + (url_.port ? ":" + std::to_string(url_.port) : "");
  }

  std::string destination() const {
    return url_.user.empty() ? url_.host : url_.user + "@" + url_.host;
  }
  std::string host_port() const {
    return url_.host + ":" + (url_.port ? std::to_string(url_.port) : std::string("22"));
  }

  // Key authentication only, never a prompt, unknown host keys never accepted (whatever the
  // user's ssh_config says: options on the command line win).
  void add_common_options(std::vector<std::string>& argv) const {
    if (!ssh_config_.empty()) argv.insert(argv.end(), {"-F", ssh_config_});
    for (const char* o :
         {"BatchMode=yes", "PasswordAuthentication=no", "KbdInteractiveAuthentication=no",
          "PreferredAuthentications=publickey", "StrictHostKeyChecking=yes", "ConnectTimeout=10"})
      argv.insert(argv.end(), {"-o", o});
  }

  std::vector<std::string> ssh_argv(const std::string& remote_command) const {
    std::vector<std::string> argv = {"ssh", "-T"};
    add_common_options(argv);
    if (url_.port) argv.insert(argv.end(), {"-p", std::to_string(url_.port)});
    argv.insert(argv.end(), {"--", destination(), remote_command});
    return argv;
  }

  // The probe, run by the board's /bin/sh so that a crash comes back as 128 + its signal
  // (OpenSSH's client exits 255 on a remote signal and drops its name). Every word is fixed or
  // validated: the directory by connect(), the emulator by parse_ssh_emulator.
  std::string probe_command() const {
    std::string command;
    for (const std::string& w : emulator_) command += w + " ";
    return "/bin/sh -c '" + command + dir_ + "/kiln-tune-probe; exit $?'";
  }

  // A setup step that must succeed (exit 0).
  Result<ProcessResult> checked(const std::vector<std::string>& argv, const std::string& what) {
    const int seconds = argv[0] == "scp" ? std::max(timeout_, kSetupSeconds) : kSetupSeconds;
    KILN_ASSIGN_OR_RETURN(ProcessResult p, run_process(argv, "", seconds));
    if (p.timed_out)
      return Status::error(what + " on " + where() + " timed out after " + std::to_string(seconds) +
                           " s");
    if (p.signaled)
      return Status::error(argv[0] + " (" + what + ") was killed by " + signal_name(p.signal));
    if (p.exit_code == 255 || (argv[0] == "scp" && p.exit_code != 0)) return ssh_error(p, what);
    if (p.exit_code != 0)
      return Status::error(what + " failed on " + where() + " (exit code " +
                           std::to_string(p.exit_code) + "): " + last_line(p.err));
    return p;
  }

  // ssh itself failed (exit 255): say why in words a user can act on.
  Status ssh_error(const ProcessResult& p, const std::string& what) const {
    const std::string& e = p.err;
    if (contains(e, "Permission denied ("))
      return Status::error(
          "ssh runner uses key authentication only: " + destination() +
          " accepted none of the keys ssh offered (ssh said: " +
          ssh_said(e, {"Permission denied"}) +
          "). Add your public key to the board's ~/.ssh/authorized_keys (ssh-copy-id), or name "
          "the key (IdentityFile) in a file given with --ssh-config; kiln never asks for a "
          "password");
    if (contains(e, "Host key verification failed") || contains(e, "host key is known") ||
        contains(e, "HOST IDENTIFICATION HAS CHANGED"))
      return Status::error(
          "the host key of " + host_port() +
          " is not known (or has changed), and kiln never accepts one on its "
          "own: ssh to it once by hand to check and accept its key, or give a "
          "UserKnownHostsFile in --ssh-config (ssh said: " +
          ssh_said(e, {"host key is known", "IDENTIFICATION HAS CHANGED", "ost key"}) + ")");
    for (const char* unreachable :
         {"Connection refused", "Connection timed out", "timed out", "No route to host",
          "Could not resolve hostname", "Network is unreachable", "Name or service not known"})
      if (contains(e, unreachable))
        return Status::error("cannot reach " + host_port() +
                             " over ssh (ssh said: " + ssh_said(e, {unreachable}) + ")");
    std::string said = last_line(e);
    return Status::error("ssh to " + where() + " failed while " + what + " (exit code " +
                         std::to_string(p.exit_code) + ")" +
                         (said.empty() ? ": ssh said nothing" : "; ssh said: " + said));
  }

  SshUrl url_;
  std::string ssh_config_, probe_;
  int timeout_;
  std::vector<std::string> emulator_;
  std::string dir_;  // the board's /tmp/kiln-tune.XXXXXX, once created and validated
};

}  // namespace

Result<SshUrl> parse_ssh_url(const std::string& url) {
  const std::string scheme = "ssh://";
  auto bad = [&](const std::string& why) {
    return Status::error("--runner " + in_quotes(url) + ": " + why +
                         " (expected ssh://[user@]host[:port])");
  };
  if (url.compare(0, scheme.size(), scheme) != 0) return bad("not an ssh:// url");
  std::string rest = url.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  SshUrl u;
  const size_t at = rest.find('@');
  if (at != std::string::npos) {
    u.user = rest.substr(0, at);
    rest = rest.substr(at + 1);
    if (u.user.empty() || u.user[0] == '-' || !only_chars(u.user, "._-"))
      return bad(
          "the user name may hold only letters, digits, '.', '_' and '-' and must not "
          "start with '-'");
  }
  const size_t colon = rest.find(':');
  u.host = rest.substr(0, colon);
  if (u.host.empty() || u.host[0] == '-' || u.host[0] == '.' || !only_chars(u.host, "._-"))
    return bad(
        "the host may hold only letters, digits, '.', '_' and '-' and must not start with '-' "
        "or '.'");
  if (colon != std::string::npos) {
    const std::string port = rest.substr(colon + 1);
    if (port.empty() || port.size() > 5 || !only_chars(port, "") ||
        port.find_first_not_of("0123456789") != std::string::npos)
      return bad("the port must be a number from 1 to 65535");
    u.port = std::stoi(port);
    if (u.port < 1 || u.port > 65535) return bad("the port must be a number from 1 to 65535");
  }
  return u;
}

Result<std::vector<std::string>> parse_ssh_emulator(const std::string& value) {
  static const std::regex kShape("^qemu-aarch64( -cpu [A-Za-z0-9][A-Za-z0-9._+-]*)?$");
  if (!std::regex_match(value, kShape))
    return Status::error("KILN_TUNE_SSH_EMULATOR=" + in_quotes(value) +
                         " refused: it is a test hook and may only be 'qemu-aarch64' or "
                         "'qemu-aarch64 -cpu NAME'");
  std::vector<std::string> words;
  size_t pos = 0;
  while (pos < value.size()) {
    size_t end = value.find(' ', pos);
    if (end == std::string::npos) end = value.size();
    words.push_back(value.substr(pos, end - pos));
    pos = end + 1;
  }
  return words;
}

Result<std::unique_ptr<Runner>> make_runner(const RunnerOptions& o) {
  if (o.timeout_seconds < 1) return Status::error("probe timeout must be at least 1 s");
  if (o.url == "local") {
    KILN_ASSIGN_OR_RETURN(std::string probe, probe_file(o.probe));
    if (access(probe.c_str(), X_OK) != 0)
      return Status::error("probe " + in_quotes(probe) + " is not executable");
    return std::unique_ptr<Runner>(new LocalRunner(probe, o.timeout_seconds));
  }
  if (o.url.rfind("qemu:", 0) == 0) {
    const std::string cpu = o.url.substr(5);
    if (cpu.empty() || cpu[0] == '-' || !only_chars(cpu, "._+-"))
      return Status::error("--runner " + in_quotes(o.url) +
                           ": expected qemu:<cpu>, e.g. qemu:cortex-a76 (tests only)");
    KILN_ASSIGN_OR_RETURN(std::string probe, probe_file(o.probe));
    return std::unique_ptr<Runner>(new QemuRunner(cpu, probe, o.timeout_seconds));
  }
  if (o.url.rfind("ssh://", 0) == 0) {
    KILN_ASSIGN_OR_RETURN(SshUrl url, parse_ssh_url(o.url));
    std::vector<std::string> emulator;
    if (const char* e = std::getenv("KILN_TUNE_SSH_EMULATOR"); e && *e) {
      KILN_ASSIGN_OR_RETURN(emulator, parse_ssh_emulator(e));
    }
    if (!o.ssh_config.empty()) {
      std::error_code ec;
      if (!fs::is_regular_file(o.ssh_config, ec))
        return Status::error("--ssh-config " + in_quotes(o.ssh_config) + " is not a file");
    }
    KILN_ASSIGN_OR_RETURN(std::string probe, probe_file(o.probe));
    auto runner = std::make_unique<SshRunner>(url, o.ssh_config, probe, o.timeout_seconds,
                                              std::move(emulator));
    KILN_RETURN_IF_ERROR(runner->connect());
    return std::unique_ptr<Runner>(std::move(runner));
  }
  return Status::error("--runner " + in_quotes(o.url) +
                       ": expected local, ssh://[user@]host[:port] or qemu:<cpu> (tests only)");
}

}  // namespace kiln::tune
