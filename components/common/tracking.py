"""ClearML bookkeeping shared by the steps: task creation (online or offline), artifacts, tables, models.

``Task.init`` is called from inside each step's Hydra entry point so that ClearML's Hydra binding
records the overrides (``Hydra`` hyperparameter section) and the full config (``OmegaConf``
configuration object), and, under an agent, applies the values edited in the UI.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Sequence

from clearml import OutputModel, Task
from clearml.backend_api.session.defs import ENV_ACCESS_KEY
from clearml.config import config_obj, running_remotely
from omegaconf import DictConfig

from .errors import ConfigError

log = logging.getLogger(__name__)

TASK_TYPES = {
    "preprocess": Task.TaskTypes.data_processing,
    "train": Task.TaskTypes.training,
    "evaluate": Task.TaskTypes.testing,
}


def server_configured() -> bool:
    """True when ClearML credentials are set (``CLEARML_API_ACCESS_KEY`` or a ``clearml.conf`` from clearml-init)."""
    return bool(ENV_ACCESS_KEY.get() or config_obj.get("api.credentials.access_key", None))


def use_offline_mode(clearml_cfg: DictConfig) -> bool:
    """Decide offline mode from ``clearml.offline`` (``auto``, ``true`` or ``false``).

    ``auto`` goes offline when no server is configured; under an agent the task is always online.
    """
    if running_remotely():
        return False
    value = clearml_cfg.get("offline", "auto")
    if isinstance(value, bool):
        return value
    if str(value).lower() == "auto":
        return not server_configured()
    raise ConfigError("clearml.offline", f"must be auto, true or false, got '{value}'")


def report_from_threads() -> None:
    """Make ClearML report from a thread of this process instead of a forked reporting subprocess.

    The fork happens at the end of ``Task.init`` while other threads may be mid-request: the child inherits
    the HTTP connection pool (a request in flight then never gets its response: a step hangs on its next API
    call) and the pipe of a running ``git`` subprocess (``close()`` then waits 300 s for repository
    detection). Both were seen here; reporting from a thread avoids the fork. Call before ``Task.init``.
    """
    config_obj.set_overrides({"sdk": {"development": {"report_use_subprocess": False}}})


def init_step_task(cfg: DictConfig, step: str) -> Task:
    """Create (or, under an agent, attach to) the ClearML task of one step."""
    ccfg = cfg.clearml
    offline = use_offline_mode(ccfg)
    report_from_threads()
    if offline:
        Task.set_offline(True)
    task = Task.init(
        project_name=str(ccfg.project),
        task_name=f"{ccfg.task_prefix}{step}",
        task_type=TASK_TYPES[step],
        tags=list(ccfg.tags or []),
        output_uri=None if offline else (ccfg.output_uri if ccfg.output_uri is not None else True),
        reuse_last_task_id=False,
        auto_connect_frameworks={"pytorch": True, "tensorboard": True, "matplotlib": False,
                                 "tensorflow": False, "hydra": True, "joblib": False},
    )
    if offline:
        log.info("ClearML offline mode: session stored in %s", task.get_offline_mode_folder())
    return task


def offline_session_zip(task: Task) -> str | None:
    """Where the offline session archive is written when the task closes (None when online)."""
    if not task.is_offline():
        return None
    return f"{task.get_offline_mode_folder()}.zip"


def report_table(task: Task, title: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Report a table (shown under Plots) from a header and rows."""
    task.get_logger().report_table(title, "table", iteration=0, table_plot=[list(header), *map(list, rows)])


def register_model(task: Task, weights: Path, name: str, tags: Sequence[str] = (),
                   metadata: dict[str, Any] | None = None, config: dict[str, Any] | None = None,
                   labels: dict[str, int] | None = None, stored_as: str | None = None) -> OutputModel:
    """Register a checkpoint file as an output model of ``task``, with lineage metadata.

    Online, the file is uploaded to the task's output destination (as ``stored_as`` when given); offline,
    ClearML keeps a copy in the session so that importing the session recreates the model.
    """
    if task.is_offline():
        # clearml 2.1.x stores an offline model's config both as text and as dict, and importing the session
        # then fails ("Only one of (config_text, config_dict) is allowed"); offline, the resolved config
        # stays in the task's OmegaConf configuration and the lineage in the model's comment.
        config = None
    model = OutputModel(task=task, name=name, framework="PyTorch", tags=list(tags), config_dict=config or None,
                        label_enumeration=labels, comment=", ".join(f"{k}={v}" for k, v in (metadata or {}).items()))
    if task.is_offline():
        # clearml 2.1.x: OutputModel.update_weights checks `published` on the offline placeholder model, which
        # raises AttributeError ('DummyModel' has no 'locked'); call the offline branch it would take directly.
        model._update_weights_offline(weights_filename=str(weights))  # noqa: SLF001
    else:
        # stored_as names the uploaded file, and with it the model's entry on the task (what a pipeline's
        # monitor_models refers to), independently of the checkpoint's epoch/score file name
        model.update_weights(weights_filename=str(weights), auto_delete_file=False, async_enable=False,
                             target_filename=stored_as)
    if metadata and not task.is_offline():
        for key, value in metadata.items():
            model.set_metadata(key, str(value), v_type=type(value).__name__)
    return model


def close_task(task: Task) -> None:
    """Flush and close the task (writes the offline archive in offline mode)."""
    task.flush(wait_for_uploads=True)
    task.close()

