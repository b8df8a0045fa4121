"""The last-resort exits: the step's exit watchdog and the local runner's stop of a step that ignores SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from pipelines import local
from tests.support import REPO


def test_exit_watchdog_ends_a_process_stuck_in_an_exit_handler() -> None:
    code = ("import atexit, time\n"
            "from components.common.entry import arm_exit_watchdog\n"
            "atexit.register(time.sleep, 120)  # an exit handler that never returns in time\n"
            "arm_exit_watchdog(3, grace=1.0)\n")
    started = time.monotonic()
    finished = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                              check=False)
    assert finished.returncode == 3 and time.monotonic() - started < 30
    assert "process still alive 1s after the step ended; exiting with code 3" in finished.stderr


def test_a_step_that_ignores_sigterm_is_killed_after_the_grace_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "STOP_GRACE_S", 0.5)
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(120)\n"
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                          start_new_session=True) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        local._stop_group(proc, signal.SIGTERM)
        assert proc.wait(timeout=10) == -signal.SIGKILL
