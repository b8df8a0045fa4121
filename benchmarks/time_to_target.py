"""Time to target quality: wall time from launch until validation mean Dice first reaches the target, the
train step (offline ClearML tracking, as the default run) against the tutorial-style script, same data.

Each repeat uses the seed of its number on both sides, so the median is over seeds, not one lucky draw.
The same runs give the share of training time each side waits for data (the data path suite reports it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks import workload
from benchmarks.common import Row, Watched, check, interleave, run_watched

SUITE = "time to target"


def run(args: argparse.Namespace, data: Path, workdir: Path) -> list[Row]:
    target, device = float(args.target_dice), str(args.device)
    seen: dict[str, list[Watched]] = {"ours": [], "tutorial": []}

    def ours(repeat: int) -> float:
        command = workload.train_command(data, workdir, f"ttt-{repeat}", "clearml.offline=true", f"device={device}",
                                         f"seed={repeat}")
        return _timed(seen["ours"], command, workdir / f"ttt-ours-{repeat}.log",
                      workload.Reach(workload.OURS_EPOCH, target))

    def tutorial(repeat: int) -> float:
        return _timed(seen["tutorial"], workload.baseline_command(data, device, repeat),
                      workdir / f"ttt-tutorial-{repeat}.log", workload.Reach(workload.BASELINE_VAL, target))

    print(f"[{SUITE}] val mean Dice >= {target} on {device}, {args.repeats} seeds", flush=True)
    samples = interleave({"ours": ours, "tutorial": tutorial}, int(args.repeats))
    epochs = {side: [float(w.match["epoch"]) for w in runs if w.match] for side, runs in seen.items()}
    parse = {"ours": workload.ours_epochs, "tutorial": workload.baseline_epochs}
    waits = {side: [100 * parse[side](w.output).data_wait_share for w in runs] for side, runs in seen.items()}
    rows = [
        check(Row(SUITE, f"seconds to val Dice {target:g} ({device})", "s", samples["ours"], samples["tutorial"],
                  baseline_label="tutorial"), minimum_ratio=2.0),
        Row(SUITE, "epochs to the target", "epochs", epochs["ours"], epochs["tutorial"], baseline_label="tutorial"),
        check(Row("data path", "data wait share of training iterations", "%", waits["ours"], waits["tutorial"],
                  baseline_label="tutorial"), maximum=5.0),
    ]
    return rows


def _timed(runs: list[Watched], command: list[str], log: Path, until: workload.Reach) -> float:
    watched = run_watched(command, log, until=until)
    runs.append(watched)
    assert watched.seconds is not None
    return watched.seconds
