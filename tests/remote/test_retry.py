"""A train step killed on its agent is retried by the pipeline and resumes where it stopped.

The train step's Python process is SIGKILLed on the agent (a preempted GPU machine) once its epoch-2
checkpoint is uploaded. The agent marks that attempt failed; the controller's retry waits its delay, clones
the failed task (which stays, with its log) with ``train.resume=auto`` and ``train.resume_from_task``, and
the clone — in a fresh agent checkout, without the failed attempt's files — downloads its captured
checkpoints and trains only the epochs that are missing. The pipeline completes.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

import pytest

from tests.remote.harness import RUN_TIMEOUT, Env, step_tasks, task_log, wait_until
from tests.standin import procs

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.agent]
EPOCHS = 5
KILL_AFTER = 2


def _process_of(task_id: str, script: str) -> int | None:
    """The pid of the agent's process running ``script`` for ``task_id`` (the agent passes CLEARML_TASK_ID)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # ended meanwhile, or not ours
            continue
        if script.encode() in cmdline and f"CLEARML_TASK_ID={task_id}".encode() in environ:
            return int(entry.name)
    return None


def _uploaded(env: Env, task_id: str, entry: str) -> bool:
    """True once the task's output model ``entry`` exists and its file is on the file server."""
    models = {e["name"]: e["model"] for e in (env.api.task(task_id).get("models") or {}).get("output", [])}
    if entry not in models:
        return False
    uri = env.api.call("models.get_by_id", model=models[entry])["model"].get("uri") or ""
    standin = env.endpoint.standin
    assert standin is not None
    name = uri.rsplit("/", 1)[-1]
    return bool(name) and any(p.stat().st_size > 0 for p in standin.files_root.rglob(name) if task_id in str(p))


def _trained_epochs(log: str) -> list[int]:
    return [int(n) for n in re.findall(rf"epoch (\d+)/{EPOCHS} ", log)]


def test_a_train_step_killed_on_its_agent_is_retried_and_resumes(env: Env, tmp_path: Path) -> None:
    runner = procs.start([sys.executable, "-m", "pipelines.cli", "controller",
                          *env.overrides(f"train.max_epochs={EPOCHS}", "train.samples_per_volume=8", "train.val_interval=1",
                                         "pipeline.retries.delay=2")],
                         env.endpoint.env(), env.checkout.work, tmp_path / "controller.log")
    try:
        log = tmp_path / "controller.log"
        controller = wait_until("the controller task", lambda: re.findall(r"pipeline controller task: (\w+)",
                                                                          log.read_text()), 120,
                                lambda: log.read_text()[-3000:], poll=0.1)[-1]
        assert runner.popen.poll() is None, (tmp_path / "controller.log").read_text()[-3000:]

        def first_train() -> str | None:
            found = [t for t in step_tasks(env.api, controller) if t["name"].endswith("train")]
            return found[0]["id"] if found else None

        failed = wait_until("the train step", first_train, RUN_TIMEOUT, lambda: env.describe(controller), poll=0.1)
        wait_until(f"train's epoch-{KILL_AFTER} checkpoint upload", lambda: _uploaded(env, failed, f"checkpoint_{KILL_AFTER}"),
                   RUN_TIMEOUT, lambda: env.describe(controller), poll=0.1)
        pid = _process_of(failed, "components/train.py")
        assert pid is not None, "the train step's process runs on this machine's agent"
        os.kill(pid, signal.SIGKILL)
        assert runner.wait(timeout=RUN_TIMEOUT) == 0, (tmp_path / "controller.log").read_text()[-6000:]
    finally:
        runner.stop()

    assert env.api.task(controller)["status"] == "completed", env.describe(controller)
    trains = {t["id"]: t for t in step_tasks(env.api, controller) if t["name"].endswith("train")}
    assert len(trains) == 2 and trains[failed]["status"] == "failed", env.describe(controller)
    (retry,) = [t for i, t in trains.items() if i != failed]
    assert retry["status"] == "completed" and failed in (retry.get("comment") or ""), retry
    assert "failed; retry 1/" in (tmp_path / "controller.log").read_text()

    failed_log, retry_log = task_log(env.api, failed), task_log(env.api, retry["id"])
    assert _trained_epochs(failed_log)[:KILL_AFTER] == list(range(1, KILL_AFTER + 1)), "the failed attempt's log is kept"
    assert f"from the earlier attempt {failed}" in retry_log and f"(epoch {KILL_AFTER})" in retry_log, retry_log[-4000:]
    done_before = _trained_epochs(failed_log)
    assert _trained_epochs(retry_log) == list(range(KILL_AFTER + 1, EPOCHS + 1)), retry_log[-4000:]
    assert max(done_before) == KILL_AFTER, "no epoch is trained twice"

    # the resumed task's scalars continue from the iteration after the checkpoint
    losses = env.api.call("events.scalar_metrics_iter_histogram", task=retry["id"])["train_loss"]["train_loss"]
    resumed_after = min(losses["x"]) - 1  # KILL_AFTER epochs of iterations
    assert resumed_after > 0 and resumed_after % KILL_AFTER == 0
    assert max(losses["x"]) == resumed_after // KILL_AFTER * EPOCHS
