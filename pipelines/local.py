"""Run the pipeline on this machine: each step's component script as its own process and ClearML task.

With no ClearML server configured the tasks run in ClearML's offline mode; their session archives are
kept in ``outputs/<run-id>/clearml/offline`` and can be imported into a server later. The steps run in
the order of ``pipelines/dag.py``; each gets the inputs it declares from the results of earlier steps.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any, Sequence

from components.common.entry import read_result
from components.common.errors import StepFailed
from components.common.runtime import die_with_parent
from components.common.tracking import use_offline_mode
from .config import compose_config
from .dag import REPO_ROOT, STEPS, Step, local_handover, python_env

log = logging.getLogger(__name__)

IMPORT_COMMAND = "clearml-task --import-offline-session"
# after forwarding SIGTERM/SIGINT to a step, how long it may take to exit before it is killed
STOP_GRACE_S = 30.0


def run_local(overrides: Sequence[str] = (), echo: bool = True) -> dict[str, Any]:
    """Run every step of ``dag.STEPS`` with the given Hydra overrides; return the run summary.

    The config is composed and checked first, so a mistyped key fails before any step starts. Each step
    gets the same overrides plus the run id, the offline switch and its inputs, and writes into
    ``outputs/<run-id>/<step>/``.
    """
    cfg = compose_config(overrides)
    run_id = str(cfg.paths.run_id)
    run_dir = Path(str(cfg.paths.run_dir)).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    offline = use_offline_mode(cfg.clearml)
    own_keys = ("paths.run_id=", "paths.output_root=", "clearml.offline=")
    pinned = [*(o for o in overrides if not o.startswith(own_keys)), f"paths.run_id={run_id}",
              f"paths.output_root={Path(str(cfg.paths.output_root)).resolve()}", f"clearml.offline={str(offline).lower()}"]
    env = python_env(dict(os.environ))
    if offline:
        env["CLEARML_CACHE_DIR"] = str(run_dir / "clearml")
    _say(echo, f"run {run_id}: {'offline (no ClearML server configured)' if offline else 'online'}; outputs in {run_dir}")

    results: dict[str, Any] = {}
    timings: dict[str, float] = {}
    for step in STEPS:
        _say(echo, f"--- {step.name} ---")
        log_path = run_dir / f"{step.name}.log"
        started = time.time()
        cmd = [sys.executable, str(step.path), *pinned, *input_overrides(step, results)]
        code = run_step_process(cmd, env, log_path, echo)
        timings[step.name] = round(time.time() - started, 1)
        if code != 0:
            _write_summary(run_dir, run_id, offline, results, timings, failed=step.name)
            raise StepFailed(step.name, code, str(log_path))
        results[step.name] = read_result(step.folder(run_dir))
    summary = _write_summary(run_dir, run_id, offline, results, timings)
    _say(echo, format_summary(summary))
    return summary


def input_overrides(step: Step, results: dict[str, Any]) -> list[str]:
    """``++inputs.<name>=<value>`` for each input a local run hands over (``dag.local_handover``) that its
    producer in this run handed on."""
    wired = []
    for name, source in local_handover(step).items():
        value = results.get(source.name, {}).get("outputs", {}).get(name)
        if value not in (None, ""):
            wired.append(f"++inputs.{name}={json.dumps(value) if not isinstance(value, str) else _quoted(value)}")
    return wired


def _quoted(text: str) -> str:
    """A string value as a Hydra override value (quoted, so paths with special characters stay text)."""
    return "'" + text.replace("'", "\\'") + "'"


def _say(echo: bool, text: str) -> None:
    if echo:
        print(text, flush=True)


def run_step_process(cmd: list[str], env: dict[str, str], log_path: Path, echo: bool) -> int:
    """Run a step, copying its output to the console (if ``echo``) and to ``log_path``; return its exit code.

    The step runs in its own process group. SIGTERM or SIGINT (Ctrl-C) to the runner is forwarded to the
    whole group, and the group is killed if it has not exited ``STOP_GRACE_S`` later; if the runner itself
    is killed, the kernel kills the step (``PR_SET_PDEATHSIG``), so a step never outlives its runner.
    """
    with log_path.open("w") as log_file, subprocess.Popen(
            cmd, env=env, cwd=str(REPO_ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            start_new_session=True, preexec_fn=die_with_parent) as proc:  # noqa: PLW1509 (only prctl, before exec)
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

        def forward(signum: int, _frame: FrameType | None) -> None:
            _stop_group(proc, signum)
            raise KeyboardInterrupt if signum == signal.SIGINT else SystemExit(128 + signum)

        for sig in previous:
            signal.signal(sig, forward)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log_file.write(line)
                if echo:
                    sys.stdout.write(line)
            return proc.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if proc.poll() is None:
                _stop_group(proc, signal.SIGTERM)


def _stop_group(proc: subprocess.Popen[str], signum: int) -> None:
    """Send ``signum`` to the step's process group; SIGKILL it if it is still alive after the grace time."""
    try:
        os.killpg(proc.pid, signum)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        log.warning("step process %d did not exit %ss after signal %d; killing it", proc.pid, STOP_GRACE_S, signum)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def _write_summary(run_dir: Path, run_id: str, offline: bool, results: dict[str, Any], timings: dict[str, float],
                   failed: str | None = None) -> dict[str, Any]:
    sessions = {step: r["clearml_offline_session"] for step, r in results.items() if r.get("clearml_offline_session")}
    summary = {
        "run_id": run_id,
        "run_dir": str(run_dir),
        "status": f"failed at {failed}" if failed else "completed",
        "offline": offline,
        "seconds": timings,
        **{key: results.get(step.name, {}).get(field) for step in STEPS for key, field in step.summary_fields},
        "outputs": {k: v.get("outputs") for k, v in results.items()},
        "lines": {k: v.get("summary") or [] for k, v in results.items()},
        "clearml_tasks": {k: v.get("clearml_task_id") for k, v in results.items()},
        "offline_sessions": sessions,
        "import_commands": [f"{IMPORT_COMMAND} {s}" for s in sessions.values()],
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable end-of-run summary."""
    lines = [f"=== run {summary['run_id']}: {summary['status']} ==="]
    for step_lines in summary["lines"].values():
        lines.extend(step_lines)
    lines.append("step times: " + ", ".join(f"{k} {v:.0f}s" for k, v in summary["seconds"].items())
                 + f" (total {sum(summary['seconds'].values()):.0f}s)")
    lines.append(f"outputs: {summary['run_dir']} (summary.json, per-step folders and logs)")
    if summary["offline_sessions"]:
        lines.append("ClearML offline sessions (import into a server with):")
        lines.extend(f"  {c}" for c in summary["import_commands"])
    return "\n".join(lines)
