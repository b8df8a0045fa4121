"""Scaling with processes: seconds per epoch of the train step with ``train.distributed.nproc`` = 1 and more
(data-parallel, gloo on CPU, NCCL on GPUs), same data and global batch per process. Scaling with the
number of cases comes from the memory suite's runs."""

from __future__ import annotations

import argparse
import functools
import statistics
from pathlib import Path
from typing import Callable

from benchmarks import workload
from benchmarks.common import Row, interleave

SUITE = "scaling"
EPOCHS = 2


def run(args: argparse.Namespace, data: Path, workdir: Path) -> list[Row]:
    def epoch_seconds(nproc: int, repeat: int) -> float:
        name = f"scaling-nproc{nproc}-{repeat}"
        _, seconds = workload.train_to_end(workload.train_command(
            data, workdir, name, "clearml.offline=true", f"train.max_epochs={EPOCHS}", f"train.val_interval={EPOCHS}",
            "train.log_images=false", f"train.distributed.nproc={nproc}", f"device={args.device}"),
            workdir / f"{name}.log", EPOCHS)
        return statistics.median(seconds)

    nprocs = [int(n) for n in args.nprocs]
    print(f"[{SUITE}] seconds per epoch with train.distributed.nproc in {nprocs}", flush=True)
    sides: dict[str, Callable[[int], float]] = {f"nproc={n}": functools.partial(_flip, epoch_seconds, n)
                                                 for n in nprocs}
    samples = interleave(sides, max(1, int(args.repeats) - 1))
    single = samples[f"nproc={nprocs[0]}"]
    return [Row(SUITE, f"seconds per epoch, nproc={n}", "s", samples[f"nproc={n}"], single if n != nprocs[0] else [],
                baseline_label=f"nproc={nprocs[0]}") for n in nprocs]


def _flip(measure: Callable[[int, int], float], nproc: int, repeat: int) -> float:
    return measure(nproc, repeat)
