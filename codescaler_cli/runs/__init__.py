"""What every long run shares, and the runs themselves: `rank_candidates` (what `codescaler rank` runs) and
`generate_solutions` (`codescaler generate`); `codescaler eval` runs `evaluation.run_evaluation`.

- `output`: `RunOutput`, the output file of a run: opened fresh or resumed, grown problem by problem, its settings
  and progress beside it, and the hint that says how to continue an interrupted or failed run
- `resume`: the settings sidecar (compared by the configs' fingerprints) and the repair of a cut-off file
- `cache`: scores and samples kept in SQLite across runs
- `signals`: SIGINT/SIGTERM as `Interrupted`, and writes they never cut in half
- `reporter`: how a run tells the person watching it what it does (silent by default)
"""

from .cache import Cache
from .generate import generate_solutions
from .output import RunOutput
from .rank import RankSummary, rank_candidates
from .reporter import SILENT, Reporter
from .signals import Interrupted

__all__ = ["Cache", "Interrupted", "RankSummary", "Reporter", "RunOutput", "SILENT", "generate_solutions",
           "rank_candidates"]
