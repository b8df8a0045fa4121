"""Every workaround for a ClearML SDK behaviour, in one place, each with the version it was seen with.

The rest of the project calls these functions and constants instead of private SDK API. Each
workaround names the clearml release it was written against (``SEEN_WITH``); when another release is
installed, the first use of a workaround logs a warning naming it, so whoever upgrades knows what to
re-check (the test suite pins the verified release in requirements/constraints.txt).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

import clearml

log = logging.getLogger(__name__)

SEEN_WITH = "2.1.12"
_warned: set[str] = set()


def installed_version() -> str:
    return str(getattr(clearml, "__version__", "unknown"))


def check_version(workaround: str, seen_with: str = SEEN_WITH) -> bool:
    """True when the installed clearml is the release ``workaround`` was written for; else warn once."""
    version = installed_version()
    if version == seen_with:
        return True
    if workaround not in _warned:
        _warned.add(workaround)
        log.warning("ClearML workaround '%s' was written for clearml %s, but %s is installed: check whether it is "
                    "still needed (components/common/clearml_compat.py)", workaround, seen_with, version)
    return False


# --- Task life cycle ---------------------------------------------------------------------------------

def report_from_threads() -> None:
    """Make ClearML report from a thread of this process instead of a forked reporting subprocess.

    clearml 2.1.12 forks at the end of ``Task.init`` while other threads may be mid-request: the child
    inherits the HTTP connection pool (a request in flight then never gets its response: a step hangs on
    its next API call) and the pipe of a running ``git`` subprocess (``close()`` then waits 300 s for
    repository detection). Reporting from a thread avoids the fork. Call before ``Task.init``.
    """
    from clearml.config import config_obj

    check_version("report_use_subprocess=False")
    config_obj.set_overrides({"sdk": {"development": {"report_use_subprocess": False}}})


def exit_on_sigterm() -> None:
    """Make SIGTERM end the process (exit code 143) once ``Task.init`` has hooked the signal.

    clearml 2.1.12's signal hook (``utilities/process/exit_hooks.py``) returns at once when the previous
    handler is ``SIG_DFL``: it tests ``if not org_handler`` and SIG_DFL is 0. A step started plainly
    therefore ignored SIGTERM (an agent's abort, a runner's stop, ``timeout``) and trained on. With a
    Python handler installed before ``Task.init``, ClearML's hook closes the task and then chains to it.
    Call before ``Task.init``.
    """
    import signal

    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        check_version("SIGTERM ignored after Task.init")
        signal.signal(signal.SIGTERM, _exit_143)


def _exit_143(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def wait_for_repo_detection(task: Any, timeout: float = 300.0) -> None:
    """Wait until ClearML has recorded the repository, commit, diff and requirements of ``task``.

    clearml 2.1.12 detects them in a background thread. The controller needs them complete before it
    copies them onto the step tasks. And a process that exits with an error makes the SDK's exit handler
    kill that thread by raising SystemExit inside it (``utilities/lowlevel/threads.py``); a thread killed
    while it holds the task's edit lock or a logging lock deadlocks the exit handler (seen under CPU
    load: ``Task._edit`` waiting on an RLock, ``BackgroundMonitor.stop`` joining forever). Waiting for the
    thread to finish first leaves nothing to kill. ``Task.close()`` waits the same way (300 s).
    """
    check_version("wait for repository detection")
    task._wait_for_repo_detection(timeout=timeout)  # noqa: SLF001 (public close() does the same)


def record_offline_failure(task: Any, step: str, code: int, message: str) -> None:
    """Keep a failed offline task's failure in its session.

    clearml 2.1.12's offline session (task.json) carries no status, and ``import_offline_session`` marks
    every imported task completed; the failure is recorded as the ``Failure/*`` parameters (and the
    error is in the session's console log), so the imported task still says what went wrong.
    """
    if not task.is_offline():
        return
    check_version("offline failure record")
    task.update_parameters({"Failure/step": step, "Failure/exit_code": code, "Failure/message": message})


def access_key_configured() -> bool:
    """True when ClearML credentials are set (``CLEARML_API_ACCESS_KEY`` or a ``clearml.conf``).

    Uses the SDK's own environment definition (``backend_api.session.defs.ENV_ACCESS_KEY``, which also
    knows the legacy ``TRAINS_*`` name) when it exists; other releases fall back to the variable names.
    """
    from clearml.config import config_obj

    try:
        from clearml.backend_api.session.defs import ENV_ACCESS_KEY
        from_env = ENV_ACCESS_KEY.get()
    except ImportError:
        check_version("ENV_ACCESS_KEY")
        from_env = os.environ.get("CLEARML_API_ACCESS_KEY") or os.environ.get("TRAINS_API_ACCESS_KEY")
    return bool(from_env or config_obj.get("api.credentials.access_key", None))


# --- models --------------------------------------------------------------------------------------------

# Torch must be imported before ``Task.init`` for ClearML's torch.save binding to capture checkpoints as
# output models (clearml 2.1.12 patches torch only if it is already imported). Step modules that save
# checkpoints import torch at the top, before anything calls Task.init.
TORCH_BEFORE_TASK_INIT = True

def register_checkpoints_by_final_path() -> None:
    """Register a checkpoint that ``checkpoints.AtomicCheckpointSaver`` writes under ``.partial/`` with the
    path it is renamed to.

    clearml 2.1.12's ``torch.save`` binding registers (or, with an output destination, uploads under the
    file's name) the path given to ``torch.save``: for an atomic save that is the partial file, which is
    gone a moment later. Its documented pre-save callback (``WeightsFileHandler.add_pre_callback``) may change
    the registered path; the upload still copies the complete partial file before the rename. Idempotent.
    """
    from clearml.binding.frameworks import WeightsFileHandler

    check_version("atomic checkpoint capture")
    WeightsFileHandler.add_pre_callback(_final_checkpoint_path)  # the SDK adds a function only once


def _final_checkpoint_path(action: Any, info: Any) -> Any:
    from clearml.binding.frameworks import WeightsFileHandler

    from .checkpoints import PARTIAL_DIR

    path = Path(info.local_model_path or "")
    if str(action) == str(WeightsFileHandler.CallbackType.save) and path.parent.name == PARTIAL_DIR:
        info.local_model_path = str(path.parent.parent / path.name)
        info.upload_filename = path.name
    return info


# clearml 2.1.12's PipelineController.add_step(monitor_models=...) matches model names exactly (the
# documented "*" pattern is not applied), so the best model is registered under a fixed file name, and its
# entry on the task (what pipelines/dag.py monitors) is named after that file's stem.
BEST_MODEL_NAME = "best"
BEST_MODEL_FILE = f"{BEST_MODEL_NAME}.pt"


def input_model(model_id: str) -> Any | None:
    """The registered model ``model_id`` as an ``InputModel``, or None when the server has no such model.

    clearml 2.1.12's ``InputModel(model_id=...)`` does not raise for an unknown id: the server's refusal is
    logged, the model's record stays None, and reading any field then raises AttributeError.
    """
    from clearml import InputModel

    check_version("InputModel of an unknown id")
    model = InputModel(model_id=model_id)
    try:
        model.url  # noqa: B018  (reads the record)
    except AttributeError:
        return None
    return model


def model_config_for(task: Any, config: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The config to store on an output model of ``task``.

    clearml 2.1.12 stores an offline model's config both as text and as dict, and importing the session
    then fails ("Only one of (config_text, config_dict) is allowed"); offline the resolved config stays in
    the task's OmegaConf configuration and the lineage in the model's comment.
    """
    if task.is_offline():
        check_version("offline model config")
        return None
    return config


def upload_weights(model: Any, task: Any, weights: Path, stored_as: str | None) -> None:
    """Attach ``weights`` to an ``OutputModel``; online upload it as ``stored_as`` (the entry's name).

    clearml 2.1.12: offline, ``OutputModel.update_weights`` checks ``published`` on the placeholder model,
    which raises AttributeError ('DummyModel' has no 'locked'); the offline branch it would take is called
    directly.
    """
    if task.is_offline():
        check_version("offline OutputModel weights")
        model._update_weights_offline(weights_filename=str(weights))  # noqa: SLF001
        return
    model.update_weights(weights_filename=str(weights), auto_delete_file=False, async_enable=False,
                         target_filename=stored_as)


# --- pipeline controller ------------------------------------------------------------------------------

def report_monitored_scalar(logger: Any, title: str, series: str, value: float) -> None:
    """Report ``value`` as a plain scalar at iteration 0 (besides any single value).

    clearml 2.1.12's ``monitor_metrics`` copies the last value of a scalar series onto the pipeline run;
    single values (``report_single_value``) are not in the scalar histograms it reads.
    """
    check_version("monitored metrics as scalars")
    logger.report_scalar(title, series, value, iteration=0)


def fresh_attempt(job: Any, pipeline_id: str, parameters: Mapping[str, str]) -> Any:
    """A new job for a clone of ``job``'s failed task with ``parameters`` set; the failed task is kept.

    clearml 2.1.12's ``retry_on_failure`` relaunches a failed step with the same task (its log and status
    are overwritten) and has no hook to change its parameters; the retry callback may replace
    ``node.job``, which the controller then launches.
    """
    from clearml import Task
    from clearml.automation.job import ClearmlJob

    check_version("retry job swap")
    failed = job.task
    clone: Any = Task.clone(source_task=failed, name=failed.name, parent=pipeline_id, comment=f"retry of {failed.id}")
    clone.update_parameters(dict(parameters))  # set_parameters would drop every other parameter
    return ClearmlJob(base_task_id=clone.id, disable_clone_task=True, parent=pipeline_id)


# clearml 2.1.12's ``Task.init`` records (and under an agent re-applies) any argparse parser it sees as the
# task's ``Args`` section, where the controller keeps its pipeline parameters; the controller's entry point
# (pipelines/remote.py) therefore reads its few arguments from sys.argv without argparse.
CONTROLLER_ARGV_BY_HAND = True


def all_of_tags(tags: list[str] | None) -> list[str] | None:
    """A tag filter that needs every tag in ``tags`` (None for no filter).

    clearml 2.1.12's triggers send ``trigger_on_tags + trigger_required_tags`` as one plain ``tags`` list,
    which the server matches as "any of": a "required" tag is not required. ClearML's documented tag
    filter operator ``__$all`` makes the list all-of; the trigger gets it as its ``trigger_on_tags``.
    """
    if not tags:
        return None
    check_version("trigger required tags")
    return ["__$all", *tags]
