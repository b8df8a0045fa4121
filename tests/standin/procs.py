"""Child processes that never outlive a test: own process group, env marker, SIGTERM then SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

MARK_VAR = "STANDIN_PROCESS_MARK"


def _marked_pids(mark: str) -> list[int]:
    """Pids whose environment carries ``MARK_VAR=mark`` (descendants that left our process group)."""
    needle = f"{MARK_VAR}={mark}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue  # the process ended meanwhile, or is not ours to read
    return pids


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return


@dataclass
class ManagedProcess:
    """A started child; ``stop()`` ends it, its group and every marked descendant."""

    popen: subprocess.Popen[bytes]
    mark: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> None:
        pgid = self.popen.pid
        if self.popen.poll() is None:
            _signal_group(pgid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass  # escalates to SIGKILL just below
        _signal_group(pgid, signal.SIGKILL)
        if self.popen.poll() is None:
            self.popen.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        while (strays := _marked_pids(self.mark)) and time.monotonic() < deadline:
            for pid in strays:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
            time.sleep(0.1)
        if _marked_pids(self.mark):
            raise RuntimeError(f"processes of {self.popen.args!r} survived SIGKILL")


def start(cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> ManagedProcess:
    """Start ``cmd`` in its own session with output to ``log_path``."""
    mark = uuid.uuid4().hex
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log_file:
        popen = subprocess.Popen(cmd, cwd=cwd, env={**env, MARK_VAR: mark}, stdout=log_file,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    return ManagedProcess(popen, mark, log_path)


@dataclass
class Finished:
    returncode: int
    output: str


def run(cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path, timeout: float) -> Finished:
    """Run ``cmd`` to completion (or ``timeout``), always cleaning up; returns code and output."""
    proc = start(cmd, env, cwd, log_path)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.stop()
        raise TimeoutError(f"{cmd!r} did not finish in {timeout}s; output:\n{proc.log()[-4000:]}") from None
    proc.stop()
    return Finished(code, proc.log())
