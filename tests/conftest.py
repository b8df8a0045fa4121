"""Shared fixtures: a tiny, fast configuration and helpers to write NIfTI test files."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Callable, Sequence

import nibabel as nib
import numpy as np
import pytest
from omegaconf import DictConfig

from pipelines.config import compose_config

# conf/debug/tiny.yaml shrinks data and training; the UNet is shrunk here (the overlay cannot know which
# network is chosen, and a test that switches to segresnet drops these). Every step runs in seconds.
TINY_NETWORK: tuple[str, ...] = (
    "model.net.channels=[8,16,32]",
    "model.net.strides=[2,2]",
    "model.net.num_res_units=1",
)
TINY_OVERRIDES: tuple[str, ...] = ("debug=tiny", *TINY_NETWORK, "clearml.offline=true")


@pytest.fixture(autouse=True, scope="session")
def _children_get_the_default_ctrl_c() -> None:
    """Processes the tests start handle Ctrl-C as in a terminal's foreground. A test run started in the
    background (``cmd &``) ignores SIGINT, and children inherit an ignored signal: Python would raise no
    KeyboardInterrupt in a step, and Ctrl-C could not be tested. A handled signal is reset to the default
    in a child, so this process handles it (as Python does by default)."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True, scope="session")
def _no_clearml_server_by_default() -> None:
    """Tests never talk to a ClearML server unless a test sets one up itself."""
    os.environ.setdefault("CLEARML_OFFLINE_MODE", "0")


@pytest.fixture
def tiny_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Factory: the tiny config with outputs under ``tmp_path`` plus any extra overrides."""

    def make(*extra: str, run_id: str = "test") -> DictConfig:
        return compose_config([*TINY_OVERRIDES, f"paths.output_root={tmp_path}", f"paths.run_id={run_id}", *extra])

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
