"""Run-time helpers every step uses: device choice and seeding."""

from __future__ import annotations

import ctypes
import logging
import signal
import sys

import torch
from monai.utils import set_determinism

from .errors import ConfigError

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
