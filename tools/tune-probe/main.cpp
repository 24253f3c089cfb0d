// kiln-tune-probe: a request on stdin, the answer on stdout (probe.h). Linked -static so that it
// runs on a board (or under qemu-aarch64) with nothing else copied next to it.
#include <iostream>

#include "probe.h"

int main() {
  std::ios::sync_with_stdio(false);
  return kiln::tune_probe::tune_probe_main(std::cin, std::cout, std::cerr);
}
