"""The pipeline's steps, defined once: name, component script, parents. Every runner uses this."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Step:
    """One pipeline step: a component script run as its own ClearML task."""

    name: str
    script: str
    parents: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        return REPO_ROOT / self.script


STEPS: tuple[Step, ...] = (
    Step("preprocess", "components/preprocess.py"),
    Step("train", "components/train.py", parents=("preprocess",)),
    Step("evaluate", "components/evaluate.py", parents=("train",)),
)


def step(name: str) -> Step:
    """Look a step up by name."""
    for s in STEPS:
        if s.name == name:
            return s
    raise KeyError(f"unknown pipeline step '{name}' (steps: {', '.join(s.name for s in STEPS)})")
