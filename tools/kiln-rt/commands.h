// kiln-rt's commands as a library, so the compiler CLI can forward `kiln run|bench|inspect`.
#pragma once

namespace kiln::tools {

// argv[1] is the subcommand: run, bench or inspect (see `kiln-rt --help`). Returns the exit code;
// errors go to stderr prefixed "kiln-rt: error: ".
int rt_main(int argc, char** argv);

}  // namespace kiln::tools
