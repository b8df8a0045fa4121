"""The one wrapper around every step: ``@step(name)`` on a component's ``run`` and ``run_step`` in its
Hydra entry point.

``@step("train")`` turns ``body(cfg, ctx) -> result`` into ``run(cfg, task=None) -> result``, which tests call
directly and the entry point calls with the step's ClearML task. Around the body it creates the step's
output folder, writes the resolved config, times the step, checks that the result hands on exactly
what ``pipelines/dag.py`` declares, records the outputs on the task (``Outputs/<name>``) and writes
``result.json``. ``run_step`` adds the ClearML task and the exit: a user error (bad data, bad config)
ends the process with exit code 2 and a one-paragraph message, any other error with 1, and the process
ends promptly in every case.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypedDict, TypeVar, cast

from clearml import Task
from omegaconf import DictConfig, OmegaConf

from pipelines import dag

from . import clearml_compat, clearml_io, tracking
from .errors import PipelineError

log = logging.getLogger(__name__)

RESOLVED_CONFIG_NAME = "config.resolved.yaml"
RESULT_NAME = "result.json"
# a process that has decided to exit but is still alive this long after (e.g. stuck in an SDK exit handler)
# is ended with its exit code: a failed step waits up to REPO_WAIT_S for the SDK's repository detection and
# then gets EXIT_GRACE_S; a finished step gets CLOSE_GRACE_S to close its task (uploads included)
REPO_WAIT_S = 300.0
EXIT_GRACE_S = 120.0
CLOSE_GRACE_S = 1800.0
EXIT_USER_ERROR = 2
EXIT_FAILURE = 1


class StepResult(TypedDict, total=False):
    """What every step returns and writes to ``result.json``; steps extend it with their own fields."""

    step: str
    # the values the step hands on, exactly the names pipelines/dag.py declares (outputs + local_outputs)
    outputs: dict[str, Any]
    # human-readable lines for the end-of-run summary of a local run
    summary: list[str]
    seconds: float
    clearml_task_id: str | None
    clearml_offline_session: str | None


R = TypeVar("R", bound=StepResult)


@dataclass
class StepContext:
    """What a step's body gets besides the config: its DAG entry, output folder and ClearML task."""

    step: dag.Step
    cfg: DictConfig
    dir: Path
    task: Task | None = None

    @property
    def name(self) -> str:
        return self.step.name

    def input(self, name: str) -> Any:
        """``inputs.<name>`` if set. Else, for a step run on its own in an earlier run's folder, what a local
        run would hand over (``dag.local_handover``) from the producer's result.json, unless another input
        from the same producer was set by hand (then that one is meant)."""
        if name not in self.step.inputs:
            raise KeyError(f"step '{self.name}' does not declare the input '{name}' (pipelines/dag.py)")
        value = self._given(name)
        if value is not None:
            return value
        handover = dag.local_handover(self.step)
        source = handover.get(name)
        if source is None or any(self._given(n) is not None for n in self.step.inputs
                                 if dag.producer(self.step, n) is source):
            return None
        folder = source.folder(str(self.cfg.paths.run_dir))
        return read_result(folder).get("outputs", {}).get(name) if (folder / RESULT_NAME).is_file() else None

    def _given(self, name: str) -> Any:
        value = OmegaConf.select(self.cfg, f"inputs.{name}", default=None)
        return None if value in (None, "") else value


def step(name: str) -> Callable[[Callable[[DictConfig, StepContext], R]], Callable[..., R]]:
    """Decorator for a component's ``run``: see the module docstring."""
    declared = dag.by_name()[name]

    def wrap(body: Callable[[DictConfig, StepContext], R]) -> Callable[..., R]:
        @functools.wraps(body)
        def run(cfg: DictConfig, task: Task | None = None) -> R:
            started = time.time()
            folder = declared.folder(str(cfg.paths.run_dir)).expanduser()
            folder.mkdir(parents=True, exist_ok=True)
            (folder / RESOLVED_CONFIG_NAME).write_text(OmegaConf.to_yaml(cfg, resolve=True))
            result = body(cfg, StepContext(declared, cfg, folder, task))
            outputs = cast(dict[str, Any], result.get("outputs") or {})
            handed_on = set(outputs)
            expected = set(declared.outputs) | set(declared.local_outputs)
            if handed_on != expected:
                raise RuntimeError(f"step '{name}' handed on {sorted(handed_on)}, but pipelines/dag.py declares "
                                   f"{sorted(expected)}")
            if task is not None:
                clearml_io.set_outputs(task, **{k: outputs[k] for k in declared.outputs})
            result["step"] = name
            result["seconds"] = round(time.time() - started, 2)
            result["clearml_task_id"] = task.id if task is not None else None
            result["clearml_offline_session"] = tracking.offline_session_zip(task)
            write_result(folder, result)
            return result

        return run

    return wrap


def write_result(folder: Path, result: StepResult) -> Path:
    """Write a step's result as JSON (atomically): the hand-over to the local runner and the next step."""
    path = folder / RESULT_NAME
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    os.replace(tmp, path)
    return path


def read_result(folder: Path | str) -> StepResult:
    """Read a step's ``result.json``; a clear error if the step has not produced it."""
    path = Path(folder) / RESULT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no result file; did the step that writes it run and succeed?")
    result: StepResult = json.loads(path.read_text())
    return result


def run_step(cfg: DictConfig, name: str, run: Callable[..., Any]) -> int:
    """The body of a step's Hydra entry point: create the task, ``run(cfg, task=task)``, close the task.

    Returns the process exit code, for ``sys.exit``. On failure the error goes to stderr (so it is in the
    task's console log), the task is flushed and the process exits non-zero, which marks the task failed:
    ClearML's exit handler does it for a local online task, the agent under an agent (marking it failed
    from here would let an agent stop collecting the console output before the message is in it); an
    offline session has no status, so the failure is recorded in it (``clearml_compat.record_offline_failure``).
    Either way an exit watchdog is armed first, so the process ends even if closing the task hangs.
    """
    task = tracking.init_step_task(cfg, name, dag.by_name()[name].task_type)
    try:
        run(cfg, task=task)
    except PipelineError as e:
        return _fail(task, name, EXIT_USER_ERROR, str(e))
    except Exception as e:  # a bug, or a library error: keep the traceback in the task's log
        traceback.print_exc()
        return _fail(task, name, EXIT_FAILURE, f"{type(e).__name__}: {e}")
    arm_exit_watchdog(0, CLOSE_GRACE_S)
    tracking.close_task(task)
    return 0


def _fail(task: Task, name: str, code: int, message: str) -> int:
    arm_exit_watchdog(code, REPO_WAIT_S + EXIT_GRACE_S)
    log.error("%s step failed: %s", name, message)
    print(f"ERROR in {name}: {message}", file=sys.stderr, flush=True)
    clearml_compat.record_offline_failure(task, name, code, message)
    # let the SDK's repository detection finish, so that its exit handler has no thread to kill
    clearml_compat.wait_for_repo_detection(task, REPO_WAIT_S)
    task.flush(wait_for_uploads=True)
    return code


def arm_exit_watchdog(code: int, grace: float) -> threading.Thread:
    """End the process with ``code`` if it is still alive ``grace`` seconds from now.

    Armed when a step's work is done and only closing and exiting remain: whatever hangs after that
    (closing the task, a library's at-exit hook, a non-daemon thread) cannot keep the process, and with it
    a pipeline run or an agent's slot, alive.
    """
    def expire() -> None:
        time.sleep(grace)
        print(f"process still alive {grace:.0f}s after the step ended; exiting with code {code}",
              file=sys.stderr, flush=True)
        os._exit(code)

    watchdog = threading.Thread(target=expire, name="exit-watchdog", daemon=True)
    watchdog.start()
    return watchdog
