"""Run the pipeline on this machine: each step's component script as its own process and ClearML task.

With no ClearML server configured the tasks run in ClearML's offline mode; their session archives are
kept in ``outputs/<run-id>/clearml/offline`` and can be imported into a server later.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from components.common.runtime import read_result
from components.common.tracking import use_offline_mode
from .config import compose_config
from .dag import REPO_ROOT, STEPS

log = logging.getLogger(__name__)

IMPORT_COMMAND = "clearml-task --import-offline-session"


class StepFailed(RuntimeError):
    """A step's process ended with a non-zero exit code."""

    def __init__(self, step: str, code: int, log_path: Path) -> None:
        super().__init__(f"step '{step}' failed with exit code {code}; its log: {log_path}")
        self.step, self.code, self.log_path = step, code, log_path


def run_local(overrides: Sequence[str] = (), echo: bool = True) -> dict[str, Any]:
    """Run preprocess -> train -> evaluate with the given Hydra overrides; return the run summary.

    The config is composed and checked first, so a mistyped key fails before any step starts. Each step
    gets the same overrides plus the run id and the offline switch, and reads its input from the
    previous step's folder under ``outputs/<run-id>/``.
    """
    cfg = compose_config(overrides)
    run_id = str(cfg.paths.run_id)
    run_dir = Path(str(cfg.paths.run_dir)).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    offline = use_offline_mode(cfg.clearml)
    own_keys = ("paths.run_id=", "paths.output_root=", "clearml.offline=")
    pinned = [*(o for o in overrides if not o.startswith(own_keys)), f"paths.run_id={run_id}", f"paths.output_root={Path(str(cfg.paths.output_root)).resolve()}",
              f"clearml.offline={str(offline).lower()}"]
    env = dict(os.environ)
    if offline:
        env["CLEARML_CACHE_DIR"] = str(run_dir / "clearml")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    _say(echo, f"run {run_id}: {'offline (no ClearML server configured)' if offline else 'online'}; outputs in {run_dir}")

    results: dict[str, Any] = {}
    timings: dict[str, float] = {}
    for step in STEPS:
        _say(echo, f"--- {step.name} ---")
        log_path = run_dir / f"{step.name}.log"
        started = time.time()
        code = _run_logged([sys.executable, str(step.path), *pinned], env, log_path, echo)
        timings[step.name] = round(time.time() - started, 1)
        if code != 0:
            _write_summary(run_dir, run_id, offline, results, timings, failed=step.name)
            raise StepFailed(step.name, code, log_path)
        results[step.name] = read_result(Path(str(cfg.paths[f"{step.name}_dir"])).resolve())
    summary = _write_summary(run_dir, run_id, offline, results, timings)
    _say(echo, format_summary(summary))
    return summary


def _say(echo: bool, text: str) -> None:
    if echo:
        print(text, flush=True)


def _run_logged(cmd: list[str], env: dict[str, str], log_path: Path, echo: bool) -> int:
    """Run a step, copying its output to the console (if ``echo``) and to ``log_path``."""
    with log_path.open("w") as log_file, subprocess.Popen(cmd, env=env, cwd=str(REPO_ROOT), stdout=subprocess.PIPE,
                                                         stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            log_file.write(line)
            if echo:
                sys.stdout.write(line)
        return proc.wait()


def _write_summary(run_dir: Path, run_id: str, offline: bool, results: dict[str, Any], timings: dict[str, float],
                   failed: str | None = None) -> dict[str, Any]:
    sessions = {step: r["clearml_offline_session"] for step, r in results.items() if r.get("clearml_offline_session")}
    summary = {
        "run_id": run_id,
        "run_dir": str(run_dir),
        "status": f"failed at {failed}" if failed else "completed",
        "offline": offline,
        "seconds": timings,
        "test_metrics": results.get("evaluate", {}).get("metrics"),
        "best_checkpoint": results.get("train", {}).get("best_checkpoint"),
        "best_val_mean_dice": results.get("train", {}).get("best_val_mean_dice"),
        "clearml_tasks": {k: v.get("clearml_task_id") for k, v in results.items()},
        "offline_sessions": sessions,
        "import_commands": [f"{IMPORT_COMMAND} {s}" for s in sessions.values()],
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable end-of-run summary."""
    lines = [f"=== run {summary['run_id']}: {summary['status']} ==="]
    metrics = summary.get("test_metrics")
    if metrics:
        lines.append(f"test mean Dice {metrics['mean_dice']:.4f}  mean HD95 {metrics['mean_hd95']:.2f} mm")
        for name, value in metrics["dice"].items():
            lines.append(f"  {name:>12}: Dice {value:.4f}  HD95 {metrics['hd95'][name]:.2f} mm")
    lines.append("step times: " + ", ".join(f"{k} {v:.0f}s" for k, v in summary["seconds"].items())
                 + f" (total {sum(summary['seconds'].values()):.0f}s)")
    if summary.get("best_checkpoint"):
        lines.append(f"best model: {summary['best_checkpoint']}")
    lines.append(f"outputs: {summary['run_dir']} (summary.json, per-step folders and logs)")
    if summary["offline_sessions"]:
        lines.append("ClearML offline sessions (import into a server with):")
        lines.extend(f"  {c}" for c in summary["import_commands"])
    return "\n".join(lines)
