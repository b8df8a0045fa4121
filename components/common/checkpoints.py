"""Training checkpoints: written atomically, found again for ``train.resume``, and fetched from an earlier
attempt's ClearML task when this machine has none (a retried step on a fresh agent checkout)."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from ignite import distributed as idist
from ignite.handlers import DiskSaver

from .errors import ConfigError

log = logging.getLogger(__name__)

# a save is written here first and renamed into the checkpoint folder once complete
PARTIAL_DIR = ".partial"
# ignite's file names for epoch checkpoints (prefix "", the checkpoint's default name "checkpoint")
EPOCH_CHECKPOINT = re.compile(r"^checkpoint_(\d+)\.pt$")


class AtomicCheckpointSaver(DiskSaver):
    """ignite save handler that never leaves a half-written checkpoint under its final name.

    The checkpoint is written to ``<dir>/.partial/<name>``, synced to disk and renamed into ``<dir>``
    (same file system, so the rename is atomic). Unlike ignite's own atomic mode (an anonymous temporary
    file), the file being written already has the checkpoint's name, so ClearML's ``torch.save`` capture
    names the output model after it (``clearml_compat.register_checkpoints_by_final_path`` points the model
    at the renamed file). A kill during a save leaves the previous checkpoints intact and at most a partial
    file in ``.partial/``, which nothing reads (the folder is removed again when a save leaves it empty).
    """

    def __init__(self, dirname: str | Path) -> None:
        super().__init__(str(dirname), atomic=True, create_dir=True, require_empty=False)

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        if idist.get_rank() != self.save_on_rank:
            return
        final = Path(self.dirname) / filename
        partial = Path(self.dirname) / PARTIAL_DIR / filename
        partial.parent.mkdir(exist_ok=True)
        try:
            with partial.open("wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, final)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        if not any(partial.parent.iterdir()):  # leave no empty folder beside the checkpoints
            partial.parent.rmdir()


def epoch_of(path: Path) -> int:
    """The epoch in an epoch checkpoint's file name (``checkpoint_<epoch>.pt``), -1 for other names."""
    match = EPOCH_CHECKPOINT.match(path.name)
    return int(match.group(1)) if match else -1


def epoch_checkpoints(folder: Path) -> list[Path]:
    """The epoch checkpoints in ``folder``, newest epoch first."""
    return sorted((p for p in folder.glob("checkpoint_*.pt") if epoch_of(p) >= 0), key=epoch_of, reverse=True)


def trained_epochs(path: Path) -> int:
    """Epochs a checkpoint has trained (from ignite's ``Engine.state_dict()``); raises if it is unreadable."""
    state = torch.load(path, map_location="cpu", weights_only=True)["trainer"]
    return int(state["iteration"]) // int(state["epoch_length"])


def saved_files(path: Path) -> list[str]:
    """The files the checkpoint handlers kept when ``path`` was written (their bookkeeping in it)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    return [item[1] for key in ("checkpointer", "best_checkpointer") for item in state.get(key, {}).get("_saved", [])]


def find_resume_checkpoint(resume: Any, folder: Path, max_epochs: int) -> tuple[Path, int] | None:
    """``train.resume``: null (fresh start), ``auto`` (newest readable epoch checkpoint in ``folder``, if
    any) or a file; returns the checkpoint and the epochs it has trained.

    ``auto`` skips a newest checkpoint that a crash left unreadable and takes the one before; when
    checkpoints exist but none is readable it stops instead of silently starting over. A checkpoint that
    has trained more epochs than ``train.max_epochs`` is refused.
    """
    if resume in (None, "", False):
        return None
    if str(resume) == "auto":
        found = epoch_checkpoints(folder)
        problems = []
        for path in found:
            try:
                epoch = trained_epochs(path)
            except Exception as e:  # torch raises several types for truncated or corrupt files
                log.warning("checkpoint %s is unreadable (%s); trying the one before", path, e)
                problems.append(f"{path.name}: {e}")
                continue
            return _check_epochs(path, epoch, max_epochs)
        if found:
            raise ConfigError("train.resume", f"every checkpoint in {folder} is unreadable ({'; '.join(problems)}); "
                                              "remove them, or set train.resume=null to start from scratch")
        return None
    path = Path(str(resume)).expanduser()
    if not path.is_file():
        raise ConfigError("train.resume", f"checkpoint '{path}' does not exist")
    try:
        epoch = trained_epochs(path)
    except Exception as e:  # torch raises several types for unreadable files
        raise ConfigError("train.resume", f"checkpoint '{path}' is unreadable: {e}") from e
    return _check_epochs(path, epoch, max_epochs)


def _check_epochs(path: Path, epoch: int, max_epochs: int) -> tuple[Path, int]:
    if epoch > max_epochs:
        raise ConfigError("train.max_epochs", f"is {max_epochs}, but checkpoint {path} has already trained {epoch} "
                                              "epochs; raise train.max_epochs to continue it, or set "
                                              "train.resume=null to start from scratch")
    return path, epoch
