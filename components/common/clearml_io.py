"""What passes between steps through ClearML: Datasets and models by id, and the ``Outputs/<name>``
parameters a pipeline references (``${step.parameters.Outputs/...}``). (A step's own task: ``tracking``.)

Used by the remote pipeline: preprocess publishes its output folder as a Dataset version, train and
evaluate fetch it by id; evaluate fetches train's model by id.
"""

from __future__ import annotations

import logging
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


def publish_dataset(folder: Path, project: str, name: str, tags: list[str] | None = None,
                    raw: dict[str, Any] | None = None) -> dict[str, Any]:
    """Upload ``folder`` as a new version of the Dataset ``project/name`` and finalize it.

    Its parents are the latest completed version of the same name and, when the cases came from a raw
    ClearML Dataset (``raw``: the manifest's source record), that raw version: the data lineage the UI
    draws. ClearML stores only what changed against the parents (an image copied unchanged from the raw
    version is not uploaded again); ``sync_folder`` drops what the parents hold but the folder does not.
    """
    parent = latest_dataset(project, name)
    raw_id = (raw or {}).get("dataset_id")
    parents = [p for p in (parent.id if parent else None, raw_id) if p]
    description = (f"prepared from {raw['dataset_project']}/{raw['dataset_name']} version {raw['dataset_version']} "
                   f"(raw dataset {raw_id})" if raw and raw_id else "prepared data (manifest.json + cases)")
    dataset = Dataset.create(dataset_project=project, dataset_name=name, dataset_tags=tags or None,
                             parent_datasets=parents or None, description=description)
    dataset.sync_folder(local_path=str(folder))
    for pattern in NOT_DATA:
        dataset.remove_files(dataset_path=pattern, recursive=True)
    dataset.upload(show_progress=False)
    dataset.finalize(auto_upload=True)
    log.info("published dataset %s/%s version %s (id %s, parents %s)", project, name, dataset.version, dataset.id,
             parents or None)
    return {"id": dataset.id, "version": dataset.version, "parent": parent.id if parent else None,
            "raw_dataset_id": raw_id}


def latest_raw_dataset_id(spec: Any) -> str:
    """Id of the raw-data Dataset version ``spec`` (``data.dataset``) names, without downloading it."""
    return str(_raw_dataset(spec).id)


def _raw_dataset(spec: Any) -> Dataset:
    if not clearml_compat.access_key_configured():
        raise ConfigError("data.dataset", "reading cases from a ClearML Dataset needs a ClearML server: set "
                                          "CLEARML_API_HOST and credentials (or clearml.conf)")
    try:
        if spec.get("id"):
            return Dataset.get(dataset_id=str(spec.id))
        if not spec.get("project") or not spec.get("name"):
            raise ConfigError("data.dataset", "set data.dataset.id, or data.dataset.project and data.dataset.name")
        return Dataset.get(dataset_project=str(spec.project), dataset_name=str(spec.name),
                           dataset_version=str(spec.version) if spec.get("version") else None, only_completed=True)
    except ValueError as e:
        wanted = spec.get("id") or f"{spec.get('project')}/{spec.get('name')} version {spec.get('version') or 'latest'}"
        raise ConfigError("data.dataset", f"no completed ClearML Dataset {wanted}: {e}") from e


def fetch_raw_dataset(spec: Any) -> tuple[Path, dict[str, Any]]:
    """Local copy of the raw-data Dataset version ``spec`` names (``data.dataset``: ``id``, or ``project`` +
    ``name`` with an optional ``version``; the newest completed version by default)."""
    dataset = _raw_dataset(spec)
    folder = Path(dataset.get_local_copy())
    log.info("raw data: dataset %s/%s version %s (id %s), %d file(s)", dataset.project, dataset.name,
             dataset.version, dataset.id, len(dataset.list_files()))
    return folder, {"id": dataset.id, "version": dataset.version, "project": dataset.project, "name": dataset.name}


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


def project_tree_ids(project: str) -> list[str]:
    """Ids of ``project`` and all its subprojects, hidden ones included (pipelines keep their runs and step
    tasks in hidden subprojects); empty when the project does not exist."""
    import re

    from clearml.backend_api.session.client import APIClient

    found = APIClient().projects.get_all(name=f"^{re.escape(project)}(/.*)?$", search_hidden=True, only_fields=["id"])
    return [p.id for p in found]


def set_outputs(task: Task, **values: Any) -> None:
    """Record step outputs as ``Outputs/<name>`` parameters (for pipeline references and the UI)."""
    # "null", not "": an empty value would reach a consumer as the Hydra override "++inputs.<name>" (no value),
    # which Hydra refuses; null arrives as None
    task.update_parameters({f"{OUTPUTS_SECTION}/{k}": "null" if v is None else str(v) for k, v in values.items()})


def report_test_metrics_on_model(model_id: str, metrics: dict[str, float]) -> None:
    """Attach test metrics to a registered model (its metadata; the promote step decides on publishing)."""
    model = Model(model_id=model_id)
    for key, value in metrics.items():
        model.set_metadata(key, f"{value:.5f}", v_type="float")


def download_attempt_checkpoints(task_id: str, folder: Path) -> list[Path]:
    """Copy into ``folder`` the newest readable epoch checkpoint that task ``task_id`` (an earlier attempt of
    the train step) captured as an output model, and the files its checkpoint bookkeeping names (the best
    checkpoint, the epoch before); returns the files copied (none when the attempt saved no checkpoint).

    A checkpoint whose upload a kill cut short is skipped for the one before; when the attempt has
    checkpoints but none can be read, that is an error, not a silent fresh start.
    """
    from . import checkpoints as ckpt

    try:
        task: Any = Task.get_task(task_id=task_id)
    except ValueError as e:
        raise ConfigError("train.resume_from_task", f"no ClearML task with id '{task_id}': {e}") from e
    entries = task.models["output"]
    names = {str(n) for n in entries.keys()}
    epochs = {n: ckpt.epoch_of(Path(f"{n}.pt")) for n in names}  # entries are named after the files' stems
    newest_first = sorted((n for n in names if epochs[n] >= 0), key=epochs.__getitem__, reverse=True)
    folder.mkdir(parents=True, exist_ok=True)
    problems = []
    for name in newest_first:
        path = folder / f"{name}.pt"
        try:
            _copy_model(entries[name], path)
            kept = ckpt.saved_files(path)
        except Exception as e:  # a missing upload, a truncated file: torch and the SDK raise several types
            log.warning("checkpoint %s of task %s is unusable (%s); trying the one before", name, task_id, e)
            problems.append(f"{name}: {e}")
            path.unlink(missing_ok=True)
            continue
        fetched = [path]
        for filename in kept:
            other = folder / filename
            if Path(filename).stem in names and not other.exists():
                _copy_model(entries[Path(filename).stem], other)
                fetched.append(other)
        return fetched
    if problems:
        raise ConfigError("train.resume_from_task", f"no checkpoint of task {task_id} is readable "
                                                    f"({'; '.join(problems)})")
    return []


def _copy_model(model: Model, target: Path) -> None:
    """Copy a model's weights file to ``target``; the SDK raises when it cannot be fetched."""
    import shutil

    shutil.copyfile(model.get_local_copy(raise_on_error=True), target)
