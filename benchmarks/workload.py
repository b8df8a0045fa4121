"""The data and commands the benchmarks share: a prepared synthetic data set (made once per run, optionally
replicated to more cases), the train step and the tutorial-style baseline as commands, and their progress
lines parsed."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import Watched, python, run_watched
from components import preprocess
from pipelines.config import compose_config

# the train step's per-epoch line (components/train.py _attach_progress)
OURS_EPOCH = re.compile(r"epoch (?P<epoch>\d+)/\d+ .*?(?:val mean Dice (?P<dice>[0-9.]+))?\s+"
                        r"\((?P<seconds>[0-9.]+)s, data wait (?P<wait>\d+)%\)")
# benchmarks/tutorial_recipe.py's lines
BASELINE_EPOCH = re.compile(r"epoch (?P<epoch>\d+) loss \S+ data_wait (?P<wait>[0-9.]+) step (?P<step>[0-9.]+)")
BASELINE_VAL = re.compile(r"epoch (?P<epoch>\d+) val_mean_dice (?P<dice>[0-9.]+)")


def prepare(workdir: Path, num_cases: int, *overrides: str) -> Path:
    """Run the preprocess step (offline, no ClearML server needed) on the default synthetic data with
    ``num_cases`` cases; return the prepared folder (it holds manifest.json)."""
    cfg = compose_config([f"paths.output_root={workdir}", f"paths.run_id=data-{num_cases}",
                          f"data.num_cases={num_cases}", "clearml.offline=true", *overrides])
    result = preprocess.run(cfg)
    return Path(result["manifest"]).parent


def replicate(folder: Path, factor: int) -> Path:
    """A prepared folder with every case repeated ``factor`` times (symbolic links to the same files, new ids,
    same splits): a data set ``factor`` times larger without generating and writing new volumes."""
    target = folder.parent / f"{folder.name}-x{factor}"
    manifest = json.loads((folder / "manifest.json").read_text())
    cases: list[dict[str, str]] = []
    splits: dict[str, list[str]] = {name: [] for name in manifest["splits"]}
    for copy in range(factor):
        for case in manifest["cases"]:
            new = dict(case, id=f"{case['id']}-{copy}")
            for key in ("image", "label"):
                link = target / f"{copy}" / case[key]
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.exists():
                    os.symlink(folder / case[key], link)
                new[key] = f"{copy}/{case[key]}"
            cases.append(new)
            splits[case["split"]].append(new["id"])
    (target / "manifest.json").write_text(json.dumps(dict(manifest, cases=cases, splits=splits), indent=1))
    return target


def train_command(data: Path, workdir: Path, run_id: str, *overrides: str) -> list[str]:
    """The train step as a user runs it (its own process, Hydra overrides), on a prepared folder."""
    return python("components.train", f"inputs.manifest={data}", f"paths.output_root={workdir}",
                  f"paths.run_id={run_id}", *overrides)


def baseline_command(data: Path, device: str, seed: int, epochs: int = 20) -> list[str]:
    return python("benchmarks.tutorial_recipe", "--data", str(data), "--device", device, "--seed", str(seed),
                  "--epochs", str(epochs))


@dataclass
class EpochTimes:
    """Per epoch of a training log: seconds of training iterations and the seconds spent waiting for data."""

    seconds: list[float]
    waited: list[float]

    @property
    def data_wait_share(self) -> float:
        return sum(self.waited) / sum(self.seconds) if self.seconds else 0.0


def ours_epochs(output: str) -> EpochTimes:
    found = [m for m in map(OURS_EPOCH.search, output.splitlines()) if m]
    return EpochTimes([float(m["seconds"]) for m in found],
                      [float(m["seconds"]) * int(m["wait"]) / 100 for m in found])


def baseline_epochs(output: str) -> EpochTimes:
    found = [m for m in map(BASELINE_EPOCH.search, output.splitlines()) if m]
    return EpochTimes([float(m["wait"]) + float(m["step"]) for m in found], [float(m["wait"]) for m in found])


class Reach:
    """A line watcher: matches the first progress line whose validation Dice is at least ``target``."""

    def __init__(self, pattern: re.Pattern[str], target: float) -> None:
        self.pattern, self.target = pattern, target

    def __call__(self, line: str) -> re.Match[str] | None:
        m = self.pattern.search(line)
        return m if m and m["dice"] is not None and float(m["dice"]) >= self.target else None


def train_to_end(command: list[str], log: Path, epochs: int,
                 env: dict[str, str] | None = None) -> tuple[Watched, list[float]]:
    """Run a train command to its end; return what was watched and each epoch's seconds. A run that fails or
    logs another number of epochs than ``epochs`` is an error naming its log."""
    watched = run_watched(command, log, env=env)
    seconds = ours_epochs(watched.output).seconds
    if watched.returncode != 0 or len(seconds) != epochs:
        raise RuntimeError(f"{command[2]} exited {watched.returncode} after {len(seconds)} of {epochs} epochs; "
                           f"see {log}")
    return watched, seconds
