"""Run-time helpers every step uses: device choice, seeding, and an out-of-memory error that says what to lower."""

from __future__ import annotations

import ctypes
import logging
import signal
import sys
from contextlib import contextmanager
from typing import Iterator

import torch
from monai.utils import set_determinism
from omegaconf import DictConfig, OmegaConf

from .errors import ConfigError, ResourceError

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def select_device(requested: str) -> torch.device:
    """Turn the ``device`` config value (``auto``, ``cpu``, ``cuda``, ``cuda:N``) into a usable device.

    ``auto`` picks CUDA when available; asking for CUDA on a machine without it is an error rather than
    a silent fall-back, so a GPU queue misconfiguration shows up at once.
    """
    value = str(requested).strip().lower()
    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if value == "cpu":
        return torch.device("cpu")
    if value.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("device", f"'{requested}' was requested but no CUDA device is available on this machine "
                                        "(use device=auto or device=cpu)")
        device = torch.device(value)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError("device", f"'{requested}' does not exist: this machine has "
                                        f"{torch.cuda.device_count()} CUDA device(s)")
        return device
    raise ConfigError("device", f"unknown device '{requested}' (expected auto, cpu, cuda or cuda:N)")


def die_with_parent() -> None:
    """Have the kernel SIGKILL this process when its parent dies, even by SIGKILL (Linux; a no-op elsewhere).

    Used for processes a step starts (a runner's step process, data-parallel ranks), so none outlives the
    process that started it."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch and make cuDNN deterministic (MONAI's ``set_determinism``), so that CPU
    runs are repeatable."""
    set_determinism(seed=int(seed), use_deterministic_algorithms=None)


# the config keys that size a step's memory use, per stage (what to lower after an out-of-memory error)
_TRAIN_SIZES = ("train.batch_size", "train.samples_per_volume", "train.patch_size")
_INFERENCE_SIZES = ("inference.inferer.roi_size", "inference.inferer.sw_batch_size")


@contextmanager
def explain_out_of_memory(cfg: DictConfig, stage: str, device: torch.device, training: bool) -> Iterator[None]:
    """Turn torch's out-of-memory error during ``stage`` into a ``ResourceError`` naming the sizes to lower
    with their values (training: batch, patches per volume, patch size, then the sliding window)."""
    try:
        yield
    except torch.OutOfMemoryError as e:
        keys = (*_TRAIN_SIZES, *_INFERENCE_SIZES) if training else _INFERENCE_SIZES
        sizes = ", ".join(f"{k}={_plain(OmegaConf.select(cfg, k))}" for k in keys)
        amp_key = "train.amp" if training else "inference.amp"
        amp = "" if OmegaConf.select(cfg, amp_key) else f"; or enable mixed precision ({amp_key}=true)"
        raise ResourceError(f"out of memory during {stage} on {device}: lower one of {sizes}{amp} "
                            f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from e


def _plain(value: object) -> object:
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
