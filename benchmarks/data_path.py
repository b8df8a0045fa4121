"""Data path: training patches per second delivered by the train step's loader (cached deterministic
transforms, ``ThreadDataLoader``) against the tutorial loader (plain ``Dataset`` + ``DataLoader`` with 2
worker processes re-reading NIfTI), same files and transforms, no network; and the one-off cost of filling
the cache. The share of training time spent waiting for data comes from the time-to-target runs."""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path
from typing import Any

from benchmarks import tutorial_recipe
from benchmarks.common import Row, check, interleave
from components import train
from components.common.data import metadata_off_when_cached
from components.common.inputs import load_manifest
from pipelines.config import compose_config

SUITE = "data path"
PASSES = 2  # epochs per measurement


def run(args: argparse.Namespace, data: Path, workdir: Path) -> list[Row]:
    cfg = compose_config([f"inputs.manifest={data}", f"paths.output_root={workdir}", "paths.run_id=data-path"])
    manifest, _ = load_manifest(None, str(data), int(cfg.data.num_classes))
    filled = time.perf_counter()
    ours_loader, _ = train.build_loaders(cfg, manifest, workdir / "data-path-cache", rank=0, world_size=1)
    fill_seconds = time.perf_counter() - filled
    train_files, val_files, _ = tutorial_recipe.file_lists(data)
    tutorial_loader, _ = tutorial_recipe.loaders(train_files, val_files)
    print(f"[{SUITE}] patches/s over {PASSES} epochs of {len(train_files)} cases", flush=True)
    samples = interleave({"ours": lambda _: _patches_per_second(ours_loader, train_step=True),
                          "tutorial": lambda _: _patches_per_second(tutorial_loader)}, int(args.repeats))
    return [check(Row(SUITE, "training patches per second (no network)", "patches/s", samples["ours"],
                      samples["tutorial"], baseline_label="tutorial", better="higher"), minimum_ratio=3.5),
            Row(SUITE, "filling the cache (once per run)", "s", [fill_seconds])]


def _patches_per_second(loader: Any, train_step: bool = False) -> float:
    """Patches per second over ``PASSES`` epochs; ``train_step``: with MONAI metadata as the train step sets it."""
    started, patches = time.perf_counter(), 0
    with metadata_off_when_cached(loader.dataset) if train_step else contextlib.nullcontext():
        for _ in range(PASSES):
            for batch in loader:
                patches += int(batch["image"].shape[0])
    return patches / (time.perf_counter() - started)
