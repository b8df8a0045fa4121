"""What every step's Hydra entry point does around ``run(cfg, task)``: the ClearML task and clean errors."""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable

from omegaconf import DictConfig

from .errors import PipelineError
from .tracking import close_task, init_step_task

log = logging.getLogger(__name__)


def run_step(cfg: DictConfig, step: str, run: Callable[..., Any]) -> Any:
    """Create the step's ClearML task, call ``run(cfg, task=task)`` and close the task.

    A user error (bad data, bad config) ends the process with exit code 2 and a one-paragraph message
    instead of a traceback; the non-zero exit marks the task failed. (Marking it failed from here would let
    an agent see the status change and stop collecting the console output before the message is in it.)
    """
    task = init_step_task(cfg, step)
    try:
        result = run(cfg, task=task)
    except PipelineError as e:
        log.error("%s step failed: %s", step, e)
        print(f"ERROR in {step}: {e}", file=sys.stderr, flush=True)
        task.flush(wait_for_uploads=True)
        sys.exit(2)
    close_task(task)
    return result

