// Where the kiln CLI finds binaries built next to it (the board's runtime for --bundle, the
// tuning probe for `kiln tune`) and which machine a binary is for.
#pragma once

#include <filesystem>
#include <string>

namespace kiln::tools {

// uname's machine with kiln's names: "x86_64", "aarch64", ...
std::string host_arch();

// e_machine of an ELF file: "x86_64", "aarch64", another name, or "" if not a 64-bit ELF.
std::string elf_arch(const std::filesystem::path& path);

// The build tree of this kiln executable (<build>/tools/kiln/kiln), or "" if unknown.
std::filesystem::path kiln_build_root();

}  // namespace kiln::tools
