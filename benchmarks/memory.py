"""Memory: peak resident memory of a one-epoch train step (offline tracking) with the in-memory cache at the
default data set size and at larger multiples of it, the bytes the cache holds per case, and from these the
largest data set that fits with ``train.cache.type=cache`` and with ``persistent``. The same runs give the
time per epoch as the data set grows (suite "scaling")."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import psutil
from monai.transforms import Compose

from benchmarks import workload
from benchmarks.common import Row
from components.common.data import case_cache_bytes
from components.common.inputs import load_manifest
from components.common.transforms import deterministic_transforms, training_transforms
from pipelines.config import compose_config

SUITE = "memory"
MIB = 2**20


def run(args: argparse.Namespace, data: Path, workdir: Path) -> list[Row]:
    cfg = compose_config([f"inputs.manifest={data}"])
    manifest, _ = load_manifest(None, str(data), int(cfg.data.num_classes))
    chain = Compose([deterministic_transforms(cfg.data), training_transforms(cfg.train, "train.augment")])
    per_case = case_cache_bytes(manifest.records("train")[0], chain)
    rows = [Row(SUITE, "cached per case (image + label after the deterministic transforms)", "MiB",
                [per_case / MIB])]
    peaks, cases, train_cases, epoch_seconds = [], [], [], []
    for factor in args.memory_factors:
        folder = data if factor == 1 else workload.replicate(data, int(factor))
        sized = load_manifest(None, str(folder), int(cfg.data.num_classes))[0]
        num_cases, cached_cases = len(sized.records("train")), len(sized.records("train")) + len(sized.records("val"))
        print(f"[{SUITE}] {factor}x: {num_cases} training cases, one epoch", flush=True)
        log = workdir / f"memory-{factor}x.log"
        watched, epochs = workload.train_to_end(workload.train_command(
            folder, workdir, f"memory-{factor}x", "clearml.offline=true", "train.max_epochs=1",
            "train.log_images=false", f"device={args.device}"), log, epochs=1)
        peaks.append(watched.peak_rss)
        cases.append(cached_cases)
        train_cases.append(num_cases)
        epoch_seconds.append(epochs[0])
        rows.append(Row(SUITE, f"peak RSS of a train step, {factor}x cases ({num_cases} train)", "MiB",
                        [watched.peak_rss / MIB]))
    for factor, n, seconds in zip(args.memory_factors, train_cases, epoch_seconds):
        rows.append(Row("scaling", f"seconds per epoch, {factor}x cases ({n} train)", "s", [seconds],
                        note=f"{seconds / n:.3f} s per case"))
    if len(cases) > 1:
        growth = (peaks[-1] - peaks[0]) / max(cases[-1] - cases[0], 1)
        rows.append(Row(SUITE, "peak RSS growth per added case (train and val are cached)", "MiB", [growth / MIB],
                        note=f"from {args.memory_factors[0]}x to {args.memory_factors[-1]}x"))
    share = float(cfg.train.cache.max_memory)
    available, disk = psutil.virtual_memory().available, shutil.disk_usage(workdir).free
    rows.append(Row(SUITE, f"largest data set with cache=cache ({share:g} of {available / 2**30:.1f} GiB available)",
                    "cases", [available * share // per_case],
                    note="beyond it the train step caches on disk instead (train.cache.max_memory)"))
    rows.append(Row(SUITE, f"largest data set with cache=persistent ({disk / 2**30:.0f} GiB free disk)", "cases",
                    [disk // per_case], note="memory then holds only the batches in flight"))
    return rows
