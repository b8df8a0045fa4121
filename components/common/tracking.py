"""The step's own ClearML task: create it (online, offline or under an agent), report to it, register the
models it produced, close it. (What passes *between* steps through ClearML is in ``clearml_io``.)

``Task.init`` is called from inside each step's Hydra entry point so that ClearML's Hydra binding
records the overrides (``Hydra`` hyperparameter section) and the full config (``OmegaConf``
configuration object), and, under an agent, applies the values edited in the UI.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Sequence

from clearml import OutputModel, Task
from clearml.config import running_remotely
from omegaconf import DictConfig

from . import clearml_compat, secrets
from .errors import ConfigError

log = logging.getLogger(__name__)


def use_offline_mode(clearml_cfg: DictConfig) -> bool:
    """Decide offline mode from ``clearml.offline`` (``auto``, ``true`` or ``false``).

    ``auto`` goes offline when no server is configured; under an agent the task is always online.
    """
    if running_remotely():
        return False
    value = clearml_cfg.offline
    if isinstance(value, bool):
        return value
    if str(value).lower() == "auto":
        return not clearml_compat.access_key_configured()
    raise ConfigError("clearml.offline", f"must be auto, true or false, got '{value}'")


def task_name(clearml_cfg: DictConfig, step: str) -> str:
    """``<clearml.task_prefix><step>``: the name of a step's task, local or in a pipeline."""
    return f"{clearml_cfg.task_prefix}{step}"


def init_step_task(cfg: DictConfig, step: str, task_type: str) -> Task:
    """Create (or, under an agent, attach to) the ClearML task of one step."""
    ccfg = cfg.clearml
    secrets.check_overrides(_hydra_overrides())  # before Task.init records them as the Hydra parameters
    offline = use_offline_mode(ccfg)
    clearml_compat.report_from_threads()
    clearml_compat.exit_on_sigterm()
    if offline:
        Task.set_offline(True)
    task: Task = Task.init(
        project_name=str(ccfg.project),
        task_name=task_name(ccfg, step),
        task_type=Task.TaskTypes(task_type),
        tags=list(ccfg.tags or []),
        output_uri=None if offline else (ccfg.output_uri if ccfg.output_uri is not None else True),
        reuse_last_task_id=False,
        auto_connect_frameworks={"pytorch": True, "tensorboard": True, "matplotlib": False,
                                 "tensorflow": False, "hydra": True, "joblib": False},
    )
    secrets.mask_recorded_config(task)
    if offline:
        log.info("ClearML offline mode: session stored in %s", task.get_offline_mode_folder())
    return task


def _hydra_overrides() -> list[str]:
    """The overrides of the running Hydra app (under an agent: with the task's Hydra parameters), if any."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def offline_session_zip(task: Task | None) -> str | None:
    """Where the offline session archive is written when the task closes (None when online or untracked)."""
    if task is None or not task.is_offline():
        return None
    return f"{task.get_offline_mode_folder()}.zip"


def report_table(task: Task, title: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Report a table (shown under Plots) from a header and rows."""
    task.get_logger().report_table(title, "table", iteration=0, table_plot=[list(header), *map(list, rows)])


def report_values(task: Task, title: str, values: dict[str, float], monitored: bool = False) -> None:
    """Report ``values`` as single values named ``<title>_<name>``; with ``monitored`` also as the scalars
    ``<title>/<name>`` a pipeline's ``monitor_metrics`` can copy onto the pipeline run."""
    logger = task.get_logger()
    for name, value in values.items():
        logger.report_single_value(f"{title}_{name}", value)
        if monitored:
            clearml_compat.report_monitored_scalar(logger, title, name, value)


def register_model(task: Task, weights: Path, name: str, tags: Sequence[str] = (),
                   metadata: dict[str, Any] | None = None, config: dict[str, Any] | None = None,
                   labels: dict[str, int] | None = None, stored_as: str | None = None) -> OutputModel:
    """Register a checkpoint file as an output model of ``task``, with lineage metadata.

    Secrets in ``config`` and ``metadata`` are masked (``secrets.mask``) before anything is recorded.

    Online, the file is uploaded to the task's output destination (as ``stored_as`` when given, which
    names the model's entry on the task independently of the checkpoint's epoch/score file name);
    offline, ClearML keeps a copy in the session so that importing the session recreates the model.
    """
    config, metadata = secrets.mask(config), secrets.mask(metadata)
    model = OutputModel(task=task, name=name, framework="PyTorch", tags=list(tags),
                        config_dict=dict(clearml_compat.model_config_for(task, config) or {}) or None,
                        label_enumeration=labels, comment=", ".join(f"{k}={v}" for k, v in (metadata or {}).items()))
    clearml_compat.upload_weights(model, task, weights, stored_as)
    if metadata and not task.is_offline():
        for key, value in metadata.items():
            model.set_metadata(key, str(value), v_type=type(value).__name__)
    return model


def close_task(task: Task) -> None:
    """Flush and close the task (writes the offline archive in offline mode)."""
    task.flush(wait_for_uploads=True)
    task.close()
