// Binaries next to kiln; see binaries.h.
#include "tools/kiln/binaries.h"

#include <sys/utsname.h>

#include <fstream>

namespace kiln::tools {

namespace fs = std::filesystem;

std::string host_arch() {
  struct utsname u;
  if (uname(&u) != 0) return "unknown";
  std::string m = u.machine;
  return m == "arm64" ? "aarch64" : m;
}

std::string elf_arch(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  unsigned char h[20] = {};
  if (!f.read(reinterpret_cast<char*>(h), sizeof h)) return "";
  if (h[0] != 0x7f || h[1] != 'E' || h[2] != 'L' || h[3] != 'F') return "";
  const int machine = h[18] | h[19] << 8;
  if (h[4] == 1) return "32-bit ELF (e_machine " + std::to_string(machine) + ")";
  if (machine == 62) return "x86_64";
  if (machine == 183) return "aarch64";
  return "e_machine " + std::to_string(machine);
}

fs::path kiln_build_root() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  return exe.parent_path().parent_path().parent_path();  // <build>/tools/kiln/kiln
}

}  // namespace kiln::tools
