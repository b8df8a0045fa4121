"""Target: the default pipeline (``monai-pipeline run``) takes at most 5 minutes on 2 CPU cores and reaches
test mean Dice >= 0.90 on the default synthetic data. Prints the figures; exits 1 if a target is missed."""

from __future__ import annotations

import sys
import tempfile
import time

from pipelines.local import run_local

BUDGET_S = 300.0
DICE_TARGET = 0.90


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.time()
        summary = run_local([f"paths.output_root={tmp}", "paths.run_id=bench", "clearml.offline=true"], echo=False)
        wall = time.time() - started
    dice = summary["test_metrics"]["mean_dice"]
    print(f"default run: {wall:.0f} s wall ({wall / BUDGET_S:.0%} of the {BUDGET_S:.0f} s budget); "
          f"steps: {summary['seconds']}")
    print(f"test mean Dice {dice:.4f} (target >= {DICE_TARGET}); per class {summary['test_metrics']['dice']}")
    return 0 if wall <= BUDGET_S and dice >= DICE_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
