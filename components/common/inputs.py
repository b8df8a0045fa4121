"""Where a step's inputs come from: ClearML (Dataset / model ids, in the remote pipeline) or local paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from . import clearml_io, runtime
from .errors import ConfigError
from .manifest import Manifest


def load_manifest(cfg: DictConfig) -> tuple[Manifest, dict[str, Any]]:
    """The prepared data: from the ClearML Dataset ``inputs.dataset_id`` if set, else ``paths.manifest``.

    Returns the manifest and a description of where it came from (for model lineage).
    """
    if cfg.inputs.get("dataset_id"):
        path, dataset = clearml_io.fetch_dataset_manifest(str(cfg.inputs.dataset_id))
    else:
        path, dataset = Path(str(cfg.paths.manifest)), {"path": str(Path(str(cfg.paths.manifest)).resolve())}
    manifest = Manifest.load(path)
    if manifest.num_classes != int(cfg.data.num_classes):
        raise ConfigError("data.num_classes", f"is {cfg.data.num_classes} but the manifest {path} "
                                              f"declares {manifest.num_classes} classes")
    return manifest, dataset


def resolve_checkpoint(cfg: DictConfig) -> Path:
    """The ClearML model ``inputs.model_id`` if set, else ``evaluate.checkpoint``, else train's best checkpoint."""
    if cfg.inputs.get("model_id"):
        return clearml_io.fetch_model(str(cfg.inputs.model_id))
    if cfg.evaluate.get("checkpoint"):
        path = Path(str(cfg.evaluate.checkpoint)).expanduser()
    else:
        best = runtime.read_result(str(cfg.paths.train_dir)).get("best_checkpoint")
        if not best:
            raise ConfigError("evaluate.checkpoint", f"not set, and {cfg.paths.train_dir}/result.json has no best checkpoint")
        path = Path(best)
    if not path.is_file():
        raise ConfigError("evaluate.checkpoint", f"checkpoint file '{path}' does not exist")
    return path
