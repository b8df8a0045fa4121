"""ClearML overhead: the train step with ClearML tracking, image logging and checkpoint capture on (offline
mode, and online against the stand-in server) against the same step with no ClearML task at all. Each side
is the whole process's wall time, so ``Task.init``, reporting and the offline session archive count."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Iterator

from benchmarks import workload
from benchmarks.common import Row, check, interleave, python, python_env

SUITE = "ClearML overhead"


def run(args: argparse.Namespace, data: Path, workdir: Path) -> list[Row]:
    epochs = int(args.overhead_epochs)
    common = (f"train.max_epochs={epochs}", f"device={args.device}", "seed=0")

    epoch_times: dict[str, list[float]] = {"off": [], "offline": [], "online": []}

    def timed(side: str, repeat: int, command: list[str], env: dict[str, str] | None = None) -> float:
        watched, seconds = workload.train_to_end(command, workdir / f"overhead-{side}-{repeat}.log", epochs, env)
        epoch_times[side] += seconds
        return watched.wall

    with standin_server(workdir / "standin") as online_env:
        sides = {
            "off": lambda r: timed("off", r, python(
                "benchmarks.untracked_train", f"inputs.manifest={data}", f"paths.output_root={workdir}",
                f"paths.run_id=overhead-off-{r}", *common)),
            "offline": lambda r: timed("offline", r, workload.train_command(
                data, workdir, f"overhead-offline-{r}", "clearml.offline=true", *common)),
            "online": lambda r: timed("online", r, workload.train_command(
                data, workdir, f"overhead-online-{r}", "clearml.offline=false", *common), env=online_env),
        }
        print(f"[{SUITE}] train step, {epochs} epochs, ClearML off / offline / online (stand-in)", flush=True)
        samples = interleave(sides, int(args.repeats))
    note = "ratio = off / on; 0.97 is 3 % slower"
    return [check(Row(SUITE, f"train step, offline tracking ({epochs} epochs)", "s", samples["offline"],
                      samples["off"], baseline_label="off", note=note), minimum_ratio=0.97),
            check(Row(SUITE, f"train step, online tracking, stand-in server ({epochs} epochs)", "s",
                      samples["online"], samples["off"], baseline_label="off", note=note), minimum_ratio=0.97),
            *(Row(SUITE, f"one epoch's training iterations, {side} tracking", "s", epoch_times[side], epoch_times["off"],
                  baseline_label="off", note="the steady per-epoch cost, without start-up and close")
              for side in ("offline", "online"))]


@contextlib.contextmanager
def standin_server(folder: Path) -> Iterator[dict[str, str]]:
    """The project's in-memory ClearML stand-in (tests/standin) for the online side; yields the child
    processes' environment pointing at it."""
    from tests.standin.server import standin_endpoint

    with standin_endpoint(folder) as endpoint:
        yield python_env(**endpoint.env())
