"""Harness for the real clearml-agent: ``daemon`` on named queues and ``execute --id``.

The agent runs tasks with the current interpreter, without creating a virtualenv or running pip:

* ``CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL=1`` skips creating the Python environment, and
* ``CLEARML_AGENT_SKIP_PIP_VENV_INSTALL=<python>`` names the interpreter to run tasks with
  (alone it still runs pip on that interpreter; together nothing is installed).
* ``CLEARML_AGENT_QUEUE_POLL_FREQ_SEC=1`` polls queues every second instead of every 5.
* ``--foreground`` keeps the daemon attached (it would otherwise detach and outlive the test),
  ``--cpu-only`` skips GPU probing, ``--create-queue`` creates missing queues.
* Code comes from the task's repository; a ``file://`` origin (see repo.py) is cloned like any remote.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from types import TracebackType

from tests.standin import procs
from tests.standin.environment import ClearMLEndpoint


def agent_env(endpoint: ClearMLEndpoint, worker_id: str, python: str = sys.executable,
              poll_seconds: float = 1.0) -> dict[str, str]:
    """Environment for an agent process that runs tasks on ``python`` with nothing installed, polling its
    queues (and its task's process) every ``poll_seconds`` (clearml-agent's default is 5)."""
    env = endpoint.env()
    env.update({
        "CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL": "1",
        "CLEARML_AGENT_SKIP_PIP_VENV_INSTALL": python,
        "CLEARML_AGENT_QUEUE_POLL_FREQ_SEC": f"{poll_seconds:g}",
        "CLEARML_AGENT_DISABLE_SSH_MOUNT": "1",
        "CLEARML_WORKER_ID": worker_id,
        "CLEARML_WORKER_NAME": worker_id,
        "PYTHONUNBUFFERED": "1",
    })
    return env


class AgentDaemon:
    """``clearml-agent daemon --foreground`` on ``queues``; a context manager that always stops it."""

    def __init__(self, endpoint: ClearMLEndpoint, queues: list[str], services_mode: bool = False,
                 workdir: Path | None = None, worker_id: str | None = None, poll_seconds: float = 1.0) -> None:
        self.endpoint = endpoint
        self.poll_seconds = poll_seconds
        self.queues = list(queues)
        self.services_mode = services_mode
        self.worker_id = worker_id or f"standin-agent-{uuid.uuid4().hex[:8]}"
        self.workdir = workdir or endpoint.sandbox / "agents" / self.worker_id
        self.process: procs.ManagedProcess | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "agent.log"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "clearml_agent", "daemon", "--foreground", "--cpu-only",
               "--create-queue", "--queue", *self.queues]
        if self.services_mode:
            cmd.append("--services-mode")
        return cmd

    def start(self) -> "AgentDaemon":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = procs.start(self.command(),
                                   agent_env(self.endpoint, self.worker_id, poll_seconds=self.poll_seconds),
                                   self.workdir, self.log_path)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def log(self) -> str:
        return self.process.log() if self.process else ""

    def __enter__(self) -> "AgentDaemon":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def run_agent_execute(endpoint: ClearMLEndpoint, task_id: str, timeout: float = 300.0,
                      workdir: Path | None = None) -> procs.Finished:
    """``clearml-agent execute --id TASK``: run one task in the foreground until it ends."""
    worker_id = f"standin-exec-{uuid.uuid4().hex[:8]}"
    workdir = workdir or endpoint.sandbox / "agents" / worker_id
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "clearml_agent", "execute", "--id", task_id, "--cpu-only"]
    return procs.run(cmd, agent_env(endpoint, worker_id), workdir, workdir / "execute.log", timeout)
