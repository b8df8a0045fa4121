"""Run-time helpers every step uses: device choice, seeding, resolved-config and result files."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from monai.utils import set_determinism
from omegaconf import DictConfig, OmegaConf

from .errors import ConfigError

log = logging.getLogger(__name__)

RESOLVED_CONFIG_NAME = "config.resolved.yaml"
RESULT_NAME = "result.json"


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


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (MONAI's helper) so that CPU runs are repeatable."""
    set_determinism(seed=int(seed), use_deterministic_algorithms=None)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def step_dir(cfg: DictConfig, step: str) -> Path:
    """The output folder of one step (``paths.<step>_dir``), created if needed."""
    key = f"{step}_dir"
    if key not in cfg.paths:
        raise ConfigError(f"paths.{key}", "is missing")
    path = Path(str(cfg.paths[key])).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_resolved_config(cfg: DictConfig, folder: Path) -> Path:
    """Write the fully resolved config next to the step's outputs, so a run can be repeated exactly."""
    path = folder / RESOLVED_CONFIG_NAME
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return path


def write_result(folder: Path, result: Mapping[str, Any]) -> Path:
    """Write a step's result (paths, ids, metrics) as JSON: the hand-over to the next step and to tests."""
    path = folder / RESULT_NAME
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    os.replace(tmp, path)
    return path


def read_result(folder: Path | str) -> dict[str, Any]:
    """Read a step's ``result.json``; a clear error if the step has not produced it."""
    path = Path(folder) / RESULT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no result file; did the step that writes it run and succeed?")
    return json.loads(path.read_text())
