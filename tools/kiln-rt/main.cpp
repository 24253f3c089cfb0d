// kiln-rt: run, benchmark and inspect kiln artifacts with libkiln_runtime only.
#include "commands.h"

int main(int argc, char** argv) {
  return kiln::tools::rt_main(argc, argv);
}
