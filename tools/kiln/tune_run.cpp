// The tuning run of `kiln tune` (search, measurement through the runner, tuning log): not built
// yet. PLACEHOLDER for the lead's search (issue 14 points 1, 2 and 4): replace this file.
#include <cstdio>

#include "tools/kiln/tune_cmd.h"

namespace kiln::tools {

int run_tuning(const TuneArgs&, kiln::tune::Runner&) {
  std::fprintf(stderr, "kiln tune: error: search not built yet (only --identify works so far)\n");
  return 1;
}

}  // namespace kiln::tools
