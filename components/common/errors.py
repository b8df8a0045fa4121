"""Exceptions with messages that name the file or config key at fault."""

from __future__ import annotations


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
