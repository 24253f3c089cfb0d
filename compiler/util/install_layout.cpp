// Detects the installed package layout; see install_layout.h.
#include "compiler/util/install_layout.h"

#include <filesystem>
#include <system_error>

namespace kiln::util {

std::string installed_package_dir() {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path dir = fs::read_symlink("/proc/self/exe", ec).parent_path();
  if (ec) return "";
  const bool installed =
      fs::is_regular_file(dir / "kernels" / "kiln" / "kernels" / "kernels.h", ec) &&
      fs::is_regular_file(dir / "include" / "kiln" / "backend.h", ec);
  return installed ? dir.string() : "";
}

}  // namespace kiln::util
