"""The manifest: the list of cases with their split, the label names and the data set statistics.

Preprocess writes it; train and evaluate read it. Image and label paths are stored relative to the
manifest's folder when they lie inside it, so the folder can be moved or shipped as a ClearML Dataset.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, DataError

MANIFEST_NAME = "manifest.json"
SPLITS = ("train", "val", "test")


@dataclass
class Case:
    """One image with its label map (``label`` is None when the source has no label for it)."""

    id: str
    image: str
    label: str | None
    split: str | None = None


@dataclass
class Manifest:
    """Cases, splits, labels and statistics of one prepared data set."""

    labels: dict[str, str]
    cases: list[Case]
    source: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    seed: int = 0
    root: Path | None = None

    @property
    def num_classes(self) -> int:
        """Number of classes including background."""
        return len(self.labels)

    def split(self, name: str) -> list[Case]:
        """The cases of one split."""
        return [c for c in self.cases if c.split == name]

    def resolve(self, path: str) -> Path:
        """Absolute path of an image/label entry (entries are relative to the manifest folder)."""
        p = Path(path)
        return p if p.is_absolute() or self.root is None else self.root / p

    def records(self, split: str) -> list[dict[str, str]]:
        """MONAI-style dictionaries (``image``, ``label``, ``id``) with absolute paths for one split."""
        out = []
        for c in self.split(split):
            if c.label is None:
                raise DataError(c.image, f"case '{c.id}' in split '{split}' has no label")
            out.append({"id": c.id, "image": str(self.resolve(c.image)), "label": str(self.resolve(c.label))})
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": 1,
            "labels": self.labels,
            "seed": self.seed,
            "source": self.source,
            "splits": {s: [c.id for c in self.split(s)] for s in SPLITS},
            "cases": [asdict(c) for c in self.cases],
            "rejected": self.rejected,
            "stats": self.stats,
        }

    def save(self, folder: Path) -> Path:
        """Write ``manifest.json`` into ``folder``; paths inside it are stored relative to it."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        relative = []
        for c in self.cases:
            relative.append(Case(c.id, _relative_to(self.resolve(c.image), folder),
                                 None if c.label is None else _relative_to(self.resolve(c.label), folder), c.split))
        data = Manifest(self.labels, relative, self.source, self.stats, self.rejected, self.seed).to_json()
        path = folder / MANIFEST_NAME
        path.write_text(json.dumps(data, indent=2))
        return path

    @classmethod
    def load(cls, path: Path | str) -> "Manifest":
        """Read a manifest file (or the ``manifest.json`` inside a folder), checking its structure."""
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_NAME
        if not path.is_file():
            raise DataError(str(path), "manifest not found (run the step that prepares the data first, or set inputs.manifest)")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DataError(str(path), f"not valid JSON: {e}") from e
        for key in ("labels", "cases"):
            if key not in data:
                raise DataError(str(path), f"manifest has no '{key}' entry")
        cases = [Case(**c) for c in data["cases"]]
        return cls(labels={str(k): v for k, v in data["labels"].items()}, cases=cases,
                   source=data.get("source", {}), stats=data.get("stats", {}),
                   rejected=data.get("rejected", []), seed=int(data.get("seed", 0)), root=path.parent.resolve())


def _relative_to(path: Path, folder: Path) -> str:
    try:
        return path.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def assign_splits(cases: list[Case], val_fraction: float, test_fraction: float, seed: int) -> list[Case]:
    """Split cases into train/val/test deterministically for a seed (order of input does not matter).

    Every split gets at least one case; too few cases for that is an error naming the keys to change.
    """
    for key, value in (("data.split.val", val_fraction), ("data.split.test", test_fraction)):
        if not 0.0 < float(value) < 1.0:
            raise ConfigError(key, f"must be a fraction between 0 and 1, got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise ConfigError("data.split", f"val ({val_fraction}) + test ({test_fraction}) leave no training cases")
    n = len(cases)
    n_val = max(1, int(round(n * val_fraction)))
    n_test = max(1, int(round(n * test_fraction)))
    if n - n_val - n_test < 1:
        raise ConfigError("data.split", f"{n} valid case(s) are too few for a train/val/test split "
                                        f"(need at least 3; have val={n_val}, test={n_test}): add cases "
                                        "or lower data.split.val / data.split.test")
    ordered = sorted(cases, key=lambda c: c.id)
    order = np.random.RandomState(seed).permutation(n)
    out = []
    for rank, idx in enumerate(order):
        split = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
        c = ordered[idx]
        out.append(Case(c.id, c.image, c.label, split))
    return sorted(out, key=lambda c: c.id)
