"""Exceptions with messages that name the file or config key at fault."""

from __future__ import annotations

import sys
from typing import Callable


class PipelineError(Exception):
    """Base class for errors a user can fix (bad data, bad config)."""


class ConfigError(PipelineError):
    """A configuration key is missing, mistyped or out of range."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config key '{key}': {problem}")
        self.key = key
        self.problem = problem


class DataError(PipelineError):
    """A data file or data description is unreadable or inconsistent."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class ResourceError(PipelineError):
    """The configured sizes do not fit the machine (e.g. GPU memory); the message names the keys to lower."""


class StepFailed(Exception):
    """A step's process ended with a non-zero exit code (its log has the details)."""

    def __init__(self, step: str, code: int, log_path: str) -> None:
        super().__init__(f"step '{step}' failed with exit code {code}; its log: {log_path}")
        self.step, self.code, self.log_path = step, code, log_path


def exit_code_of(command: Callable[[], int], user_error_code: int = 2) -> int:
    """Run a console command; a user error (``PipelineError``) is printed as ``error: ...`` and gives
    ``user_error_code`` instead of a traceback."""
    try:
        return command()
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return user_error_code
