"""Where a step's prepared data and weights come from: a ClearML id (the remote pipeline) or a local path.

The callers pass the values of their ``inputs.*`` keys (``StepContext.input``); the error messages name
those keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import clearml_io
from .errors import ConfigError
from .manifest import Manifest


def load_manifest(dataset_id: str | None, manifest: str | None, num_classes: int) -> tuple[Manifest, dict[str, Any]]:
    """The prepared data: from the ClearML Dataset ``dataset_id`` if given, else the local ``manifest``.

    Returns the manifest and a description of where it came from (for model lineage); ``num_classes`` is
    ``data.num_classes``, checked against the manifest.
    """
    if dataset_id:
        path, source = clearml_io.fetch_dataset_manifest(str(dataset_id))
    elif manifest:
        path = Path(str(manifest)).expanduser()
        source = {"path": str(path.resolve())}
    else:
        raise ConfigError("inputs.manifest", "no prepared data: set inputs.dataset_id or inputs.manifest, or run "
                                             "the step that prepares it first in the same run (paths.run_id)")
    loaded = Manifest.load(path)
    if loaded.num_classes != int(num_classes):
        raise ConfigError("data.num_classes", f"is {num_classes} but the manifest {path} "
                                              f"declares {loaded.num_classes} classes")
    return loaded, source


def resolve_checkpoint(model_id: str | None, checkpoint: str | None) -> Path:
    """The weights of the ClearML model ``model_id`` if given, else the local file ``checkpoint``."""
    if model_id:
        return clearml_io.fetch_model(str(model_id))
    if not checkpoint:
        raise ConfigError("inputs.checkpoint", "no weights: set inputs.model_id or inputs.checkpoint, or run the "
                                               "step that trains them first in the same run (paths.run_id)")
    path = Path(str(checkpoint)).expanduser()
    if not path.is_file():
        raise ConfigError("inputs.checkpoint", f"checkpoint file '{path}' does not exist")
    return path
