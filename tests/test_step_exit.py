"""A step that fails exits at once, every time, and a step never outlives the runner that started it.

The failing-step case once deadlocked in ClearML's exit handler under CPU load (the SDK killed its own
repository-detection thread while that thread held a lock); it is repeated here with busy processes
beside it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import TINY_OVERRIDES
from tests.standin import procs
from tests.support import REPO, OfflineSession, cli, no_server_env, run_command, section

pytestmark = pytest.mark.slow
REPEATS = 6
# alone a failing preprocess ends in ~10 s; a hang is what this must catch, not a slow machine
EXIT_WITHIN_S = 120.0


@pytest.fixture
def cpu_load(tmp_path: Path) -> Iterator[None]:
    """One busy process per core for the duration of the test."""
    burners = [procs.start([sys.executable, "-c", "while True: pass"], dict(os.environ), tmp_path,
                           tmp_path / f"burner-{i}.log") for i in range(os.cpu_count() or 2)]
    try:
        yield
    finally:
        for burner in burners:
            burner.stop()


def _failing_preprocess(tmp_path: Path, run_id: str, env: dict[str, str]) -> procs.Finished:
    """The preprocess step on a data folder that does not exist (a user error: exit code 2)."""
    missing = tmp_path / "nope"
    return run_command([sys.executable, "components/preprocess.py", *TINY_OVERRIDES, "data=folder",
                        f"data.images_dir={missing}", f"data.labels_dir={missing}", f"paths.output_root={tmp_path}",
                        f"paths.run_id={run_id}"], tmp_path / f"{run_id}.log", env=env, timeout=EXIT_WITHIN_S)


def test_failing_step_exits_promptly_under_cpu_load(tmp_path: Path, cpu_load: None) -> None:
    for attempt in range(REPEATS):
        started = time.monotonic()
        finished = _failing_preprocess(tmp_path, f"fail{attempt}", no_server_env(tmp_path))
        took = time.monotonic() - started
        assert finished.returncode == 2, finished.output[-4000:]
        assert "ERROR in preprocess: config key 'data.images_dir'" in finished.output
        assert "process still alive" not in finished.output, f"attempt {attempt} needed the exit watchdog"
        # closed: the offline session archive was written (the failure in it: the next test)
        assert "Offline session stored in" in finished.output, finished.output[-4000:]
        print(f"attempt {attempt}: exited in {took:.1f}s")


def test_failing_step_is_recorded_failed_in_its_offline_session(tmp_path: Path) -> None:
    finished = _failing_preprocess(tmp_path, "fail", {**no_server_env(tmp_path), "CLEARML_CACHE_DIR": str(tmp_path / "c")})
    assert finished.returncode == 2
    sessions = list((tmp_path / "c" / "offline").glob("*.zip"))
    assert len(sessions) == 1
    session = OfflineSession.read(sessions[0])
    # an offline session has no status (clearml_compat.record_offline_failure): the failure is a parameter
    failure = section(session.task, "Failure")
    assert section(session.task, "Hydra")["data"] == "folder", "recording the failure must keep the other parameters"
    assert failure["exit_code"] == "2" and failure["step"] == "preprocess"
    assert "data.images_dir" in failure["message"]
    assert "ERROR in preprocess" in session.log(), session.log()[-2000:]


def _wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def _step_pids(mark: str, runner_pid: int) -> list[int]:
    return [pid for pid in procs._marked_pids(mark) if pid != runner_pid]


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_step_process_ends_with_its_runner(tmp_path: Path, signum: int) -> None:
    """``monai-pipeline run`` killed (SIGKILL: the kernel ends the step) or terminated (SIGTERM: forwarded to
    the step's process group) while train runs: no step process is left."""
    runner = procs.start(cli("run", *TINY_OVERRIDES, "train.max_epochs=500", f"paths.output_root={tmp_path}",
                             "paths.run_id=kill"), no_server_env(tmp_path), REPO, tmp_path / "runner.log")
    try:
        _wait_for(lambda: "epoch 1/500" in (tmp_path / "kill" / "train.log").read_text()
                  if (tmp_path / "kill" / "train.log").exists() else False, 180, "train's first epoch")
        assert _step_pids(runner.mark, runner.popen.pid), "the train step should be running"
        os.kill(runner.popen.pid, signum)
        runner.wait(timeout=60)
        _wait_for(lambda: not _step_pids(runner.mark, runner.popen.pid), 60, "the step process to end")
    finally:
        runner.stop()
    if signum == signal.SIGTERM:
        assert runner.popen.returncode != 0


def test_an_unexpected_error_exits_1_with_its_traceback_in_the_log(tmp_path: Path) -> None:
    """Not a user error (a loss that does not fit the labels fails inside training): exit code 1, the
    traceback in the console log, the failure recorded in the session."""
    env = {**no_server_env(tmp_path), "CLEARML_CACHE_DIR": str(tmp_path / "c")}
    common = [*TINY_OVERRIDES, f"paths.output_root={tmp_path}", "paths.run_id=bug"]
    assert run_command([sys.executable, "components/preprocess.py", *common], tmp_path / "prep.log", env=env).returncode == 0
    finished = run_command([sys.executable, "components/train.py", *common, "train.loss._target_=torch.nn.CrossEntropyLoss",
                            "~train.loss.to_onehot_y", "~train.loss.softmax"], tmp_path / "train.log", env=env,
                           timeout=EXIT_WITHIN_S)
    assert finished.returncode == 1, finished.output[-4000:]
    assert "Traceback (most recent call last)" in finished.output
    assert "ERROR in train: RuntimeError: Expected target size" in finished.output
    (train_session,) = [s for s in (tmp_path / "c" / "offline").glob("*.zip") if "train" in OfflineSession.read(s).task["name"]]
    assert section(OfflineSession.read(train_session).task, "Failure")["exit_code"] == "1"
