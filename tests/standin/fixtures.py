"""Pytest fixtures for tests that need ClearML: import them into a conftest with
``from tests.standin.fixtures import *``.

By default a stand-in server is started for the session. With ``CLEARML_TESTS_REAL_SERVER=1`` and the
standard ``CLEARML_API_HOST``, ``CLEARML_WEB_HOST``, ``CLEARML_FILES_HOST``, ``CLEARML_API_ACCESS_KEY``
and ``CLEARML_API_SECRET_KEY`` set, the same tests run against that server instead.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.standin import procs
from tests.standin.agent import AgentDaemon, run_agent_execute
from tests.standin.client import ApiClient
from tests.standin.environment import ClearMLEndpoint, real_server_from_env
from tests.standin.repo import GitCheckout, make_project_clone
from tests.standin.server import StandinServer, standin_endpoint

USE_REAL_SERVER_VAR = "CLEARML_TESTS_REAL_SERVER"

__all__ = [
    "AgentDaemon", "ApiClient", "ClearMLEndpoint", "GitCheckout", "SdkRunner", "run_agent_execute",
    "agent_factory", "clearml_api", "clearml_server", "project_checkout", "sdk", "standin",
    "standin_gap_check", "unique_name",
]


@pytest.fixture(scope="session")
def clearml_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClearMLEndpoint]:
    """The ClearML the tests use: a fresh stand-in per session, or a real server when opted in."""
    sandbox = tmp_path_factory.mktemp("clearml")
    if os.environ.get(USE_REAL_SERVER_VAR) == "1":
        endpoint = real_server_from_env(sandbox)
        if endpoint is None:
            raise pytest.UsageError(f"{USE_REAL_SERVER_VAR}=1 needs CLEARML_API_HOST, CLEARML_WEB_HOST, "
                                    "CLEARML_FILES_HOST, CLEARML_API_ACCESS_KEY and CLEARML_API_SECRET_KEY")
        endpoint.prepare()
        yield endpoint
        return
    with standin_endpoint(sandbox) as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def clearml_api(clearml_server: ClearMLEndpoint) -> ApiClient:
    """A REST client for assertions (no SDK state in the pytest process)."""
    return ApiClient(clearml_server)


@pytest.fixture
def standin(clearml_server: ClearMLEndpoint) -> StandinServer:
    """The stand-in server itself, for tests about the stand-in (skipped against a real server)."""
    if clearml_server.standin is None:
        pytest.skip("tests of the stand-in server itself do not apply when CLEARML_TESTS_REAL_SERVER=1 points at a real server")
    return clearml_server.standin


@pytest.fixture(autouse=True)
def standin_gap_check(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that made the SDK or agent call an endpoint the stand-in does not implement."""
    if "clearml_server" not in request.fixturenames:
        yield
        return
    endpoint: ClearMLEndpoint = request.getfixturevalue("clearml_server")
    server = endpoint.standin
    before = len(server.state.unknown_calls) if server else 0
    yield
    if server is not None:
        gaps = server.state.unknown_calls[before:]
        assert not gaps, f"endpoints the stand-in does not implement were called: {sorted(set(gaps))}"


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A project/queue-safe name unique to this test run (tests may share a real server)."""
    return f"{request.node.name[:40].replace('[', '-').replace(']', '')}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def project_checkout(clearml_server: ClearMLEndpoint, tmp_path_factory: pytest.TempPathFactory) -> GitCheckout:
    """A throwaway git clone of the project (current working tree) with a file:// origin."""
    return make_project_clone(tmp_path_factory.mktemp("checkout"), env=clearml_server.env())


class SdkRunner:
    """Runs Python scripts with the real SDK in a child process with the isolated ClearML env."""

    def __init__(self, endpoint: ClearMLEndpoint, logdir: Path, cwd: Path) -> None:
        self.endpoint = endpoint
        self.logdir = logdir
        self.cwd = cwd
        self.count = 0

    def run(self, script: Path | str, *args: str, cwd: Path | None = None, timeout: float = 180.0,
            check: bool = True) -> procs.Finished:
        self.count += 1
        log_path = self.logdir / f"sdk-{self.count}-{Path(script).stem}.log"
        result = procs.run([sys.executable, str(script), *args], self.endpoint.env(), cwd or self.cwd,
                           log_path, timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{script} exited {result.returncode}:\n{result.output[-6000:]}")
        return result

    def run_json(self, script: Path | str, *args: str, **kwargs: Any) -> Any:
        """Run a script whose last stdout line is JSON, and return it parsed
        (with ``check=False``, a failed run returns its return code and output instead)."""
        result = self.run(script, *args, **kwargs)
        output = result.output
        if result.returncode != 0:
            return {"returncode": result.returncode, "output": output[-3000:]}
        lines = [line for line in output.splitlines() if line.startswith("{") or line.startswith("[")]
        if not lines:
            raise AssertionError(f"{script} printed no JSON:\n{output[-6000:]}")
        return json.loads(lines[-1])


@pytest.fixture
def sdk(clearml_server: ClearMLEndpoint, tmp_path: Path) -> SdkRunner:
    """Run SDK scripts in child processes (cwd: a temp dir outside any git repository)."""
    workdir = tmp_path / "sdk-cwd"
    workdir.mkdir()
    return SdkRunner(clearml_server, tmp_path, workdir)


@pytest.fixture
def agent_factory(clearml_server: ClearMLEndpoint, tmp_path: Path) -> Iterator[Callable[..., AgentDaemon]]:
    """Start ``AgentDaemon``s that are always stopped (process group, then SIGKILL) at teardown."""
    started: list[AgentDaemon] = []

    def start(queues: list[str], services_mode: bool = False) -> AgentDaemon:
        daemon = AgentDaemon(clearml_server, queues, services_mode=services_mode,
                             workdir=tmp_path / f"agent-{len(started)}").start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in reversed(started):
        daemon.stop()
