// Child processes for the tuning runners; see process.h.
#include "compiler/tune/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>

extern char** environ;

namespace kiln::tune {
namespace {

constexpr size_t kMaxCapture = size_t(64) << 20;

using Clock = std::chrono::steady_clock;

volatile sig_atomic_t g_interrupted = 0;

// SIGPIPE ignored while we write the child's stdin (a child that exits without reading gives
// EPIPE, not a dead kiln); the previous disposition comes back at scope exit.
class IgnoreSigpipe {
 public:
  IgnoreSigpipe() {
    struct sigaction ignore = {};
    ignore.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ignore, &old_);
  }
  ~IgnoreSigpipe() { sigaction(SIGPIPE, &old_, nullptr); }

 private:
  struct sigaction old_ = {};
};

void close_fd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// Appends what fd has to `to`; closes fd at end of file or on error.
void drain(int& fd, std::string& to) {
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      if (to.size() < kMaxCapture) to.append(buf, std::min(size_t(n), kMaxCapture - to.size()));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    close_fd(fd);
    return;
  }
}

}  // namespace

void interrupt_children() {
  g_interrupted = 1;
}
void clear_interrupt() {
  g_interrupted = 0;
}
bool interrupted() {
  return g_interrupted != 0;
}

std::string signal_name(int signal) {
  switch (signal) {
    case SIGHUP:
      return "SIGHUP";
    case SIGINT:
      return "SIGINT";
    case SIGQUIT:
      return "SIGQUIT";
    case SIGILL:
      return "SIGILL";
    case SIGTRAP:
      return "SIGTRAP";
    case SIGABRT:
      return "SIGABRT";
    case SIGBUS:
      return "SIGBUS";
    case SIGFPE:
      return "SIGFPE";
    case SIGKILL:
      return "SIGKILL";
    case SIGSEGV:
      return "SIGSEGV";
    case SIGPIPE:
      return "SIGPIPE";
    case SIGALRM:
      return "SIGALRM";
    case SIGTERM:
      return "SIGTERM";
    case SIGXCPU:
      return "SIGXCPU";
    case SIGSYS:
      return "SIGSYS";
    default:
      return "signal " + std::to_string(signal);
  }
}

std::string last_line(const std::string& text) {
  size_t end = text.size();
  while (end > 0) {
    while (end > 0 && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
    size_t begin = text.rfind('\n', end == 0 ? 0 : end - 1);
    begin = begin == std::string::npos ? 0 : begin + 1;
    std::string line = text.substr(begin, end - begin);
    size_t first = line.find_first_not_of(" \t\r");
    if (first != std::string::npos) return line.substr(first);
    end = begin;
  }
  return "";
}

Result<ProcessResult> run_process(const std::vector<std::string>& argv, const std::string& input,
                                  int timeout_seconds) {
  if (argv.empty()) return Status::error("run_process: empty argv");
  if (interrupted()) return Status::error("interrupted");
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0) return Status::error(std::string("pipe: ") + strerror(errno));
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]), close(in[1]);
    return Status::error(std::string("pipe: ") + strerror(errno));
  }
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(in[0]), close(in[1]), close(out[0]), close(out[1]);
    return Status::error(std::string("pipe: ") + strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  // The child starts with default signal handling and an empty mask, whatever kiln has set.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults, empty;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  sigemptyset(&empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(in[0]), close(out[1]), close(err[1]);
  int to_child = in[1], from_out = out[0], from_err = err[0];
  if (rc != 0) {
    close_fd(to_child), close_fd(from_out), close_fd(from_err);
    return Status::error("cannot run '" + argv[0] + "': " + strerror(rc));
  }
  for (int fd : {to_child, from_out, from_err}) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

  IgnoreSigpipe ignore_sigpipe;
  ProcessResult r;
  size_t written = 0;
  if (input.empty()) close_fd(to_child);
  const auto deadline = Clock::now() + std::chrono::seconds(timeout_seconds);
  bool exited = false;
  int status = 0;
  Clock::time_point exited_at;
  while (from_out >= 0 || from_err >= 0 || !exited) {
    const auto now = Clock::now();
    if (interrupted()) break;
    if (now >= deadline) {
      r.timed_out = true;
      break;
    }
    // A child that has exited but left its pipes open in a grandchild gets 1 s to finish.
    if (exited && now - exited_at > std::chrono::seconds(1)) break;
    if (!exited) {
      pid_t w = waitpid(pid, &status, WNOHANG);
      if (w == pid) exited = true, exited_at = Clock::now();
    }
    pollfd fds[3];
    int n = 0;
    if (to_child >= 0) fds[n++] = {to_child, POLLOUT, 0};
    if (from_out >= 0) fds[n++] = {from_out, POLLIN, 0};
    if (from_err >= 0) fds[n++] = {from_err, POLLIN, 0};
    const int wait_ms = int(std::min<long long>(
        100, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1));
    if (n == 0) {
      usleep(wait_ms * 1000);
      continue;
    }
    if (poll(fds, n, wait_ms) < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      if (!fds[i].revents) continue;
      if (fds[i].fd == to_child) {
        if (fds[i].revents & (POLLERR | POLLHUP | POLLNVAL)) {
          close_fd(to_child);  // the child closed its stdin: it reads no more
          continue;
        }
        ssize_t w = write(to_child, input.data() + written, input.size() - written);
        if (w > 0) written += size_t(w);
        if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == input.size())
          close_fd(to_child);
      } else if (fds[i].fd == from_out) {
        drain(from_out, r.out);
      } else {
        drain(from_err, r.err);
      }
    }
  }
  close_fd(to_child), close_fd(from_out), close_fd(from_err);
  if (!exited) {  // timed out, interrupted (or poll failed): nothing more will be read
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (interrupted()) return Status::error("interrupted");
  if (r.timed_out) return r;
  if (WIFSIGNALED(status)) {
    r.signaled = true;
    r.signal = WTERMSIG(status);
  } else {
    r.exit_code = WEXITSTATUS(status);
  }
  return r;
}

}  // namespace kiln::tune
