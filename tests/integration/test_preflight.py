"""Preflight checks (pipelines/preflight.py) end to end: ``monai-pipeline`` run as a child process against
the stand-in (no agents). An unreachable or wrong API server, rejected credentials or a missing queue must
give exit code 2 and a message naming the cause within seconds, and nothing may be created or enqueued."""

from __future__ import annotations

import socket
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.remote.harness import TINY
from tests.standin.client import ApiClient
from tests.standin.environment import ClearMLEndpoint
from tests.support import REPO, cli, run_command

pytestmark = [pytest.mark.integration]

LIMIT = 30.0  # seconds a failed preflight may take, child process start included
# without the preflight the SDK retries for minutes: the child is killed after this and the test fails
CHILD_TIMEOUT = 120.0


@dataclass
class Outcome:
    code: int
    output: str
    seconds: float


def monai_pipeline(endpoint: ClearMLEndpoint, logdir: Path, *args: str, **env_changes: str) -> Outcome:
    """``monai-pipeline args...`` in a child process with the stand-in's environment (plus ``env_changes``),
    timed from start to exit."""
    env = {**endpoint.env(), **env_changes}
    log = logdir / f"cli-{len(list(logdir.glob('cli-*.log')))}-{args[0]}.log"
    start = time.monotonic()
    done = run_command(cli(*args), log, env=env, cwd=REPO, timeout=CHILD_TIMEOUT)
    seconds = time.monotonic() - start
    print(f"monai-pipeline {' '.join(args[:2])}: exit {done.returncode} after {seconds:.1f} s")
    return Outcome(done.returncode, done.output, seconds)


def server_state(api: ApiClient) -> dict[str, Any]:
    """What a run could create or enqueue: every task, project and queue (with its entries)."""
    tasks = api.call("tasks.get_all", search_hidden=True, only_fields=["id"])["tasks"]
    projects = api.call("projects.get_all", search_hidden=True, only_fields=["name"])["projects"]
    queues = api.call("queues.get_all", only_fields=["name", "entries"])["queues"]
    return {"tasks": sorted(t["id"] for t in tasks), "projects": sorted(p["name"] for p in projects),
            "queues": {q["name"]: [e["task"] for e in q.get("entries") or []] for q in queues}}


def assert_failed_fast(outcome: Outcome, *expected: str) -> None:
    assert outcome.code == 2, outcome.output[-4000:]
    for text in expected:
        assert text in outcome.output, f"{text!r} not in:\n{outcome.output[-4000:]}"
    assert "Traceback" not in outcome.output, outcome.output[-4000:]
    assert outcome.seconds < LIMIT, f"took {outcome.seconds:.1f} s:\n{outcome.output[-4000:]}"


@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:8]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: connecting is refused


@pytest.fixture
def silent_host() -> Iterator[str]:
    """A host whose port accepts TCP connections (the kernel's backlog) but never answers a request."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


# ---------------------------------------------------------------------------------------------- server


@pytest.mark.parametrize("case", ["closed port", "never answers", "web server port"])
def test_an_unreachable_or_wrong_api_server_fails_fast_naming_the_host(
        clearml_server: ClearMLEndpoint, clearml_api: ApiClient, logdir: Path, silent_host: str, tag: str,
        case: str) -> None:
    host, reason = {
        "closed port": (f"http://127.0.0.1:{_closed_port()}", "connection refused"),
        "never answers": (silent_host, "it accepted the connection but sent no answer within 5 s"),
        "web server port": (clearml_server.web_host, "not as a ClearML API server: is the port right?"),
    }[case]
    before = server_state(clearml_api)
    outcome = monai_pipeline(clearml_server, logdir, "remote", *TINY, f"clearml.project=standin-tests/preflight-{tag}",
                             CLEARML_API_HOST=host)
    what = "answered debug.ping" if case == "web server port" else "cannot reach the ClearML API server"
    assert_failed_fast(outcome, host, "(from CLEARML_API_HOST)", what, reason)
    assert server_state(clearml_api) == before


def test_rejected_credentials_fail_fast_and_say_so(clearml_server: ClearMLEndpoint, clearml_api: ApiClient,
                                                   logdir: Path, tag: str) -> None:
    before = server_state(clearml_api)
    outcome = monai_pipeline(clearml_server, logdir, "remote", *TINY, f"clearml.project=standin-tests/preflight-{tag}",
                             CLEARML_API_SECRET_KEY="not-the-secret")
    assert_failed_fast(outcome, f"the ClearML API server at {clearml_server.api_host} refused the login",
                       "CLEARML_API_ACCESS_KEY / CLEARML_API_SECRET_KEY", "error 401")
    assert server_state(clearml_api) == before


# ---------------------------------------------------------------------------------------------- queues


@pytest.fixture
def queues(clearml_api: ApiClient, tag: str) -> dict[str, str]:
    """A controller and a cpu queue that exist, and the name of a gpu queue that does not."""
    names = {"controller": f"ctl-{tag}", "cpu": f"cpu-{tag}", "gpu": f"gpu-{tag}-missing"}
    for kind in ("controller", "cpu"):
        clearml_api.call("queues.create", name=names[kind])
    return names


def _run_overrides(queues: dict[str, str], tag: str) -> list[str]:
    return [*TINY, f"clearml.project=standin-tests/preflight-{tag}",
            *(f"pipeline.queues.{kind}={name}" for kind, name in queues.items())]


@pytest.mark.parametrize("command", ["remote", "controller", "register"])
def test_a_missing_step_queue_fails_before_anything_is_created(
        clearml_server: ClearMLEndpoint, clearml_api: ApiClient, logdir: Path, queues: dict[str, str], tag: str,
        command: str) -> None:
    before = server_state(clearml_api)
    outcome = monai_pipeline(clearml_server, logdir, command, *_run_overrides(queues, tag))
    assert_failed_fast(outcome, f"no such queue on the ClearML server at {clearml_server.api_host}: "
                                f"'{queues['gpu']}' (config key pipeline.queues.gpu, used by step 'train', step "
                                "'evaluate', step 'promote'). Existing queues: ")
    existing = outcome.output.split("Existing queues: ", 1)[1].split(".", 1)[0]
    assert f"'{queues['controller']}'" in existing and f"'{queues['cpu']}'" in existing, existing
    assert f"'{queues['gpu']}'" not in existing
    assert server_state(clearml_api) == before  # no task, no project, no queue, nothing enqueued


def test_a_missing_controller_queue_fails_remote_before_anything_is_created(
        clearml_server: ClearMLEndpoint, clearml_api: ApiClient, logdir: Path, queues: dict[str, str], tag: str) -> None:
    clearml_api.call("queues.create", name=queues["gpu"])
    missing = f"services-{tag}-missing"
    before = server_state(clearml_api)
    outcome = monai_pipeline(clearml_server, logdir, "remote", *_run_overrides({**queues, "controller": missing}, tag))
    assert_failed_fast(outcome, f"'{missing}' (config key pipeline.queues.controller, used by the pipeline controller)")
    assert "config key pipeline.queues.gpu" not in outcome.output  # the step queues exist now
    assert server_state(clearml_api) == before


def test_schedule_register_with_a_missing_queue_fails_before_anything_is_created(
        clearml_server: ClearMLEndpoint, clearml_api: ApiClient, logdir: Path, queues: dict[str, str], tag: str) -> None:
    clearml_api.call("queues.create", name=queues["gpu"])
    missing = f"services-{tag}-missing"
    before = server_state(clearml_api)
    outcome = monai_pipeline(clearml_server, logdir, "schedule", "register", *_run_overrides(queues, tag),
                             f"schedule.queue={missing}")
    assert_failed_fast(outcome, f"'{missing}' (config key schedule.queue, used by the schedule and trigger services)",
                       f"'{queues['controller']}'")
    assert server_state(clearml_api) == before  # no pipeline lookup result, no service task, nothing enqueued


def test_the_preflight_passes_when_everything_exists_and_creates_nothing(
        clearml_server: ClearMLEndpoint, clearml_api: ApiClient, logdir: Path, queues: dict[str, str], tag: str) -> None:
    clearml_api.call("queues.create", name=queues["gpu"])
    script = ("import sys; from pipelines import preflight; from pipelines.remote import plan_from_overrides; "
              "cfg = plan_from_overrides(sys.argv[1:]).cfg; preflight.check_launch(cfg, 'remote'); "
              "preflight.check_step_queues(cfg, preflight.login(preflight.api_host())); print('preflight passed')")
    before = server_state(clearml_api)
    done = run_command([sys.executable, "-c", script, *_run_overrides(queues, tag)], logdir / "passes.log",
                       env=clearml_server.env(), cwd=REPO, timeout=CHILD_TIMEOUT)
    assert done.returncode == 0 and "preflight passed" in done.output, done.output[-4000:]
    assert server_state(clearml_api) == before
