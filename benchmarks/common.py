"""What every benchmark shares: side-by-side repeats, the result rows, and running a command while watching it.

Every figure is a ratio of two sides measured in the same run: ``interleave`` alternates the sides
(A B, then B A, ...) so that a machine getting slower or faster during the run affects both alike.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import psutil

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    """One figure of a suite: the samples of both sides, their medians and the ratio that is reported.

    ``better`` says which way is good for ``unit`` (``lower`` for times and bytes, ``higher`` for
    throughput); ``ratio`` is always "how many times better ours is" (> 1: ours wins). Rows without a
    baseline report ``ours`` alone (e.g. a share of time or a size)."""

    suite: str
    metric: str
    unit: str
    ours: list[float]
    baseline: list[float] = field(default_factory=list)
    ours_label: str = "ours"
    baseline_label: str = ""
    better: str = "lower"
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ours_median(self) -> float:
        return statistics.median(self.ours)

    @property
    def baseline_median(self) -> float | None:
        return statistics.median(self.baseline) if self.baseline else None

    @property
    def ratio(self) -> float | None:
        base = self.baseline_median
        if base is None or not self.ours_median or not base:
            return None
        return base / self.ours_median if self.better == "lower" else self.ours_median / base

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(ours_median=self.ours_median, baseline_median=self.baseline_median, ratio=self.ratio)
        return out


def check(row: Row, minimum_ratio: float | None = None, maximum: float | None = None,
          minimum: float | None = None) -> Row:
    """Set ``row.target`` and ``row.met`` from one bound: the ratio's minimum, or the median's maximum/minimum."""
    if minimum_ratio is not None:
        row.target, row.met = f">= {minimum_ratio:g}x", row.ratio is not None and row.ratio >= minimum_ratio
    elif maximum is not None:
        row.target, row.met = f"<= {maximum:g} {row.unit}", row.ours_median <= maximum
    elif minimum is not None:
        row.target, row.met = f">= {minimum:g} {row.unit}", row.ours_median >= minimum
    return row


def interleave(sides: dict[str, Callable[[int], float]], repeats: int) -> dict[str, list[float]]:
    """Run each side ``repeats`` times, alternating the order every round (A B, B A, A B ...); each call gets
    the repeat number and returns its measurement."""
    samples: dict[str, list[float]] = {label: [] for label in sides}
    labels = list(sides)
    for repeat in range(repeats):
        for label in (labels if repeat % 2 == 0 else labels[::-1]):
            samples[label].append(sides[label](repeat))
            print(f"  {label} #{repeat + 1}: {samples[label][-1]:.3g}", flush=True)
    return samples


def spread(values: Sequence[float]) -> str:
    return f"{min(values):.3g}-{max(values):.3g}" if len(values) > 1 else ""


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table: medians with their spread (min-max) over the repeats, ratio, target."""
    lines = ["| suite | metric | ours (median, spread) | baseline (median, spread) | ratio | target | met |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ours = f"{_fmt(r.ours_median)} {r.unit}" + (f" ({spread(r.ours)})" if len(r.ours) > 1 else "")
        base = "" if not r.baseline else (f"{r.baseline_label}: {_fmt(r.baseline_median)} {r.unit}"
                                          + (f" ({spread(r.baseline)})" if len(r.baseline) > 1 else ""))
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else ""
        met = "" if r.met is None else ("yes" if r.met else "NO")
        metric = r.metric + (f" ({r.note})" if r.note else "")
        lines.append(f"| {r.suite} | {metric} | {ours} | {base} | {ratio} | {r.target} | {met} |")
    return "\n".join(lines)


def python_env(**extra: str) -> dict[str, str]:
    """The environment for child Python processes: the repository importable, output unbuffered."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class Watched:
    """What ``run_watched`` saw: seconds from start to the first matching line (None: never), the whole
    output, the exit code (None when stopped at the match), the peak resident memory of the process tree
    and the seconds until the process ended or was stopped."""

    seconds: float | None
    match: re.Match[str] | None
    output: str
    returncode: int | None
    peak_rss: int
    wall: float


def run_watched(command: Sequence[str], log: Path, until: Callable[[str], re.Match[str] | None] | None = None,
                timeout: float = 600.0, env: dict[str, str] | None = None) -> Watched:
    """Run ``command`` (cwd: the repository root), copy its output to ``log`` and, with ``until``, stop it at
    the first line for which ``until`` returns a match. The process tree's resident memory is sampled every
    0.2 s. A process that ends without the match, or a timeout, is an error naming the log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    proc = subprocess.Popen(list(command), cwd=ROOT, env=env or python_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines: list[str] = []
    found: tuple[float, re.Match[str]] | None = None
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        with log.open("w") as out:
            for line in proc.stdout:
                out.write(line)
                out.flush()
                lines.append(line)
                match = until(line) if until else None
                if match:
                    found = (time.perf_counter() - started, match)
                    break
    finally:
        timer.cancel()
        done.set()
        sampler.join()
        stop_tree(proc)
    wall = time.perf_counter() - started
    code = None if found else proc.returncode
    if until is not None and found is None:
        raise RuntimeError(f"{command[0]} ... ended (exit {proc.returncode}) before the line it was watched for; "
                           f"see {log}")
    return Watched(found[0] if found else None, found[1] if found else None, "".join(lines), code, peak[0], wall)


def tree_rss(pid: int) -> int:
    """Resident memory of a process and its children, in bytes (0 when it has ended)."""
    try:
        parent = psutil.Process(pid)
        procs = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def stop_tree(proc: subprocess.Popen[str]) -> None:
    """Kill a child process and everything it started, and reap it."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    for p in [*children]:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            continue
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def python(module: str, *args: str) -> list[str]:
    """``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]
