"""What passes between steps through ClearML: Datasets and models by id, and the ``Outputs/<name>``
parameters a pipeline references (``${step.parameters.Outputs/...}``). (A step's own task: ``tracking``.)

Used by the remote pipeline: preprocess publishes its output folder as a Dataset version, train and
evaluate fetch it by id; evaluate fetches train's model by id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clearml import Dataset, Model, Task

from . import clearml_compat
from .errors import ConfigError, DataError
from .manifest import MANIFEST_NAME

log = logging.getLogger(__name__)

OUTPUTS_SECTION = "Outputs"
# files of a step folder that are not part of the data set
NOT_DATA = ("result.json", "config.resolved.yaml", "*.log", ".hydra/*")


def publish_dataset(folder: Path, project: str, name: str, tags: list[str] | None = None) -> dict[str, Any]:
    """Upload ``folder`` as a new version of the Dataset ``project/name`` and finalize it.

    The new version is parented on the latest completed version of the same name, so ClearML stores
    only what changed and the lineage of data versions is visible in the UI.
    """
    parent = latest_dataset(project, name)
    dataset = Dataset.create(dataset_project=project, dataset_name=name, dataset_tags=tags or None,
                             parent_datasets=[parent.id] if parent else None)
    dataset.add_files(path=str(folder), wildcard="*", recursive=True)
    for pattern in NOT_DATA:
        dataset.remove_files(dataset_path=pattern, recursive=True)
    dataset.upload(show_progress=False)
    dataset.finalize(auto_upload=True)
    log.info("published dataset %s/%s version %s (id %s, parent %s)", project, name, dataset.version, dataset.id,
             parent.id if parent else None)
    return {"id": dataset.id, "version": dataset.version, "parent": parent.id if parent else None}


def latest_dataset(project: str, name: str) -> Dataset | None:
    """The newest completed version of a Dataset, or None when there is none yet."""
    try:
        return Dataset.get(dataset_project=project, dataset_name=name, only_completed=True)
    except ValueError:
        return None


def fetch_dataset_manifest(dataset_id: str) -> tuple[Path, dict[str, Any]]:
    """Local copy of a prepared-data Dataset; returns its ``manifest.json`` and the Dataset's id/version."""
    try:
        dataset = Dataset.get(dataset_id=dataset_id)
    except ValueError as e:
        raise ConfigError("inputs.dataset_id", f"no ClearML Dataset with id '{dataset_id}': {e}") from e
    folder = Path(dataset.get_local_copy())
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file():
        raise DataError(f"dataset {dataset_id}", f"has no {MANIFEST_NAME}; is it a prepared-data Dataset "
                                                 "(the output of a data-preparing step)?")
    return manifest, {"id": dataset.id, "version": dataset.version, "name": dataset.name, "project": dataset.project}


def fetch_model(model_id: str) -> Path:
    """Local copy of a registered model's weights file.

    An id the server does not know is a user error (``ConfigError``, exit code 2); a failed download is
    not (the SDK's error propagates: exit code 1 with its traceback).
    """
    model = clearml_compat.input_model(model_id)
    if model is None:
        raise ConfigError("inputs.model_id", f"no ClearML model with id '{model_id}'")
    return Path(model.get_local_copy(raise_on_error=True))  # a failed download raises the SDK's own error


def set_outputs(task: Task, **values: Any) -> None:
    """Record step outputs as ``Outputs/<name>`` parameters (for pipeline references and the UI)."""
    # "null", not "": an empty value would reach a consumer as the Hydra override "++inputs.<name>" (no value),
    # which Hydra refuses; null arrives as None
    task.update_parameters({f"{OUTPUTS_SECTION}/{k}": "null" if v is None else str(v) for k, v in values.items()})


@dataclass(frozen=True)
class PublishOutcome:
    """What ``report_test_metrics_on_model`` did: whether the model is published now, and was before."""

    published: bool
    was_published: bool

    def describe(self, asked: bool) -> str:
        if asked:
            return "already published" if self.was_published else "published"
        return "not published (published earlier)" if self.was_published else "not published"


def report_test_metrics_on_model(model_id: str, metrics: dict[str, float], publish: bool) -> PublishOutcome:
    """Attach test metrics to a model (metadata) and publish it if ``publish``."""
    model = Model(model_id=model_id)
    for key, value in metrics.items():
        model.set_metadata(key, f"{value:.5f}", v_type="float")
    was_published = bool(model.published)
    if publish and not was_published:
        model.publish()
    return PublishOutcome(published=bool(model.published), was_published=was_published)
