"""Shared fixtures: a tiny, fast configuration and helpers to write NIfTI test files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import nibabel as nib
import numpy as np
import pytest
from omegaconf import DictConfig

# Tests never talk to a ClearML server unless a test sets one up itself.
os.environ.setdefault("CLEARML_OFFLINE_MODE", "0")

from pipelines.config import compose_config  # noqa: E402

# Small volumes, a small network and few epochs: every component runs in seconds on 2 CPU cores.
TINY_SYNTHETIC: tuple[str, ...] = (
    "data.num_cases=8",
    "data.synthetic.shape=[32,32,32]",
    "data.synthetic.num_objects=4",
    "data.synthetic.radius_min=3",
    "data.synthetic.radius_max=7",
    "data.split.val=0.25",
    "data.split.test=0.25",
)
TINY_TRAINING: tuple[str, ...] = (
    "model.net.channels=[8,16,32]",
    "model.net.strides=[2,2]",
    "model.net.num_res_units=1",
    "train.max_epochs=3",
    "train.patch_size=[24,24,24]",
    "train.samples_per_volume=2",
    "train.val_interval=1",
    "train.checkpoint.keep_last=2",
    "evaluate.num_overlays=1",
    "device=cpu",
    "clearml.offline=true",
)
TINY_OVERRIDES: tuple[str, ...] = TINY_SYNTHETIC + TINY_TRAINING


@pytest.fixture
def tiny_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Factory: the tiny config with outputs under ``tmp_path`` plus any extra overrides."""

    def make(*extra: str, run_id: str = "test", synthetic: bool = True) -> DictConfig:
        tiny = TINY_OVERRIDES if synthetic else TINY_TRAINING
        return compose_config([*tiny, f"paths.output_root={tmp_path}", f"paths.run_id={run_id}", *extra])

    return make


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    """Save ``data`` as NIfTI (identity affine by default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def make_case(folder: Path, name: str, shape: Sequence[int] = (24, 24, 24), classes: int = 2,
              seed: int = 0) -> tuple[Path, Path]:
    """A valid image/label pair: a noisy cube whose label has classes 1..classes-1."""
    rng = np.random.RandomState(seed)
    label = np.zeros(shape, dtype=np.uint8)
    for c in range(1, classes):
        lo = 3 + 6 * (c - 1)
        label[lo:lo + 5, lo:lo + 5, lo:lo + 5] = c
    image = (label * 1.0 + rng.normal(0, 0.2, shape)).astype(np.float32)
    return (write_nifti(folder / "imagesTr" / f"{name}.nii.gz", image),
            write_nifti(folder / "labelsTr" / f"{name}.nii.gz", label))
