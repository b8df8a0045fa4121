"""The pure parts of the preflight checks (pipelines/preflight.py) and that the commands run them first.

No ClearML server here: failures come from loopback sockets or are built by hand; the end-to-end checks
against the stand-in are in tests/integration/test_preflight.py."""

from __future__ import annotations

import socket
from typing import Any, Iterator

import pytest
import requests
import urllib3

from components.common.errors import PipelineError
from pipelines import preflight, remote, schedule
from pipelines.dag import STEPS
from pipelines.parameters import as_ui_values
from pipelines.preflight import QueueUse
from tests.remote.harness import TINY

HOST = "http://clearml.example:8008"
ENVELOPE = {"meta": {"result_code": 200, "result_msg": "OK"}, "data": {"msg": "ClearML server"}}


class Config(dict):
    """A stand-in for the SDK's config object: ``get(key, default)`` on dotted keys."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key, default)


# ---------------------------------------------------------------------------------------------- server


@pytest.mark.parametrize("environ, config, expected", [
    ({"CLEARML_API_HOST": HOST}, Config({"api.api_server": "http://other"}), "from CLEARML_API_HOST"),
    ({"TRAINS_API_HOST": HOST}, Config(), "from TRAINS_API_HOST"),
    ({"CLEARML_API_HOST": ""}, Config({"api.api_server": HOST}), "from api.api_server in clearml.conf"),
    ({}, Config({"api.host": HOST}), "from api.host in clearml.conf"),
    ({}, Config(), "the SDK's default: set CLEARML_API_HOST or api.api_server in clearml.conf"),
])
def test_host_origin_follows_the_sdks_precedence(environ: dict[str, str], config: Config, expected: str) -> None:
    assert preflight.host_origin(environ, config) == expected


def test_the_api_host_is_the_sdks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLEARML_API_HOST", "http://127.0.0.1:1234/")
    assert preflight.api_host() == "http://127.0.0.1:1234"  # as Session.get_api_server_host() strips it


@pytest.mark.parametrize("status, content_type, payload, expected", [
    (200, "application/json", ENVELOPE, None),  # the real server's answer
    (200, "application/json", {"meta": {"result_code": 200}, "data": {}}, None),
    (503, "application/json", {"meta": {"result_code": 503, "result_msg": "maintenance"}, "data": {}},
     "answered debug.ping with HTTP 503: maintenance"),
    (200, "text/html; charset=utf-8", None, "HTTP 200 (text/html), not as a ClearML API server: is the port right?"),
    (404, "", None, "HTTP 404 (no content type), not as a ClearML API server"),
    (200, "application/json", {"msg": "ok"}, "not as a ClearML API server"),  # JSON, but no meta envelope
])
def test_ping_answer(status: int, content_type: str, payload: Any, expected: str | None) -> None:
    problem = preflight.ping_problem(status, content_type, payload)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) but never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        yield int(s.getsockname()[1])


def _failure(url: str, timeout: tuple[float, float]) -> requests.RequestException:
    from clearml.backend_api.utils import get_http_session_with_retry

    with pytest.raises(requests.RequestException) as caught:
        get_http_session_with_retry(total=0).get(url, timeout=timeout)  # as ping() sends it
    return caught.value


def test_refused_connection_is_named() -> None:
    error = _failure(f"http://127.0.0.1:{_refused_port()}/debug.ping", (2.0, 2.0))
    assert preflight.describe_failure(error).startswith("connection refused")


def test_silent_server_is_a_read_timeout(silent_port: int) -> None:
    error = _failure(f"http://127.0.0.1:{silent_port}/debug.ping", (2.0, 0.3))
    assert preflight.describe_failure(error, (2.0, 0.3)) == (
        "it accepted the connection but sent no answer within 0.3 s (wrong port, or the server hangs?)")


@pytest.mark.parametrize("error", [
    requests.exceptions.ConnectTimeout("timed out"),
    # without retries urllib3 wraps the timeout, and requests raises a plain ConnectionError
    requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(
        None, "/debug.ping", urllib3.exceptions.ConnectTimeoutError(None, "Connection timed out"))),  # type: ignore[arg-type]
])
def test_connect_timeout_is_named(error: BaseException) -> None:
    assert preflight.describe_failure(error, (4.0, 5.0)).startswith("no connection within 4 s")


def test_a_failed_connect_is_no_timeout() -> None:
    # urllib3's NewConnectionError subclasses ConnectTimeoutError: its own reason must be reported
    unreachable = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 101] "  # type: ignore[arg-type]
                                                              "Network is unreachable")
    unreachable.__cause__ = OSError(101, "Network is unreachable")
    error = requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/debug.ping", unreachable))  # type: ignore[arg-type]
    assert preflight.describe_failure(error) == "OSError: [Errno 101] Network is unreachable"


def test_unresolvable_host_and_bad_url_are_named() -> None:
    gaierror = socket.gaierror(-2, "Name or service not known")
    wrapped = requests.exceptions.ConnectionError("HTTPConnectionPool(...): Max retries exceeded")
    wrapped.__cause__ = gaierror
    assert preflight.describe_failure(wrapped) == "the host name does not resolve (Name or service not known)"
    assert preflight.describe_failure(requests.exceptions.MissingSchema("no scheme")).startswith("not a valid http(s) URL")


class FakeHttp:
    """The part of a ``requests`` session ``ping`` uses: one GET, recorded."""

    def __init__(self, answer: Any) -> None:
        self.answer, self.calls = answer, []

    def get(self, url: str, timeout: Any) -> Any:
        self.calls.append((url, timeout))
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


class Answer:
    def __init__(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        self.status_code, self.payload, self.headers = status, payload, {"Content-Type": content_type}

    def json(self) -> Any:
        if self.payload is None:
            raise ValueError("not JSON")
        return self.payload


def test_ping_sends_one_short_request_and_accepts_the_envelope(monkeypatch: pytest.MonkeyPatch) -> None:
    http = FakeHttp(Answer(200, ENVELOPE))
    preflight.ping(HOST, http=http)
    assert http.calls == [(f"{HOST}/debug.ping", preflight.PING_TIMEOUT)]
    assert sum(preflight.PING_TIMEOUT) <= 15


@pytest.mark.parametrize("answer, expected", [
    (requests.exceptions.ReadTimeout("read timed out"), f"cannot reach the ClearML API server at {HOST} (from "
                                                         "CLEARML_API_HOST): it accepted the connection but sent no answer"),
    (Answer(200, None, "text/html"), f"the ClearML API server at {HOST} (from CLEARML_API_HOST) answered debug.ping "
                                     "with HTTP 200 (text/html), not as a ClearML API server"),
])
def test_ping_failures_name_the_host_and_its_setting(monkeypatch: pytest.MonkeyPatch, answer: Any, expected: str) -> None:
    monkeypatch.setenv("CLEARML_API_HOST", HOST)
    with pytest.raises(preflight.ServerError) as caught:
        preflight.ping(HOST, http=FakeHttp(answer))
    assert str(caught.value).startswith(expected) and caught.value.host == HOST
    assert isinstance(caught.value, PipelineError)  # exit code 2 with the message, not a traceback


# ---------------------------------------------------------------------------------------------- queues


def _uses(plan_overrides: list[str], controller: bool) -> list[QueueUse]:
    return preflight.pipeline_queue_uses(remote.plan_from_overrides([*TINY, *plan_overrides]).cfg, controller)


def test_queue_uses_of_a_run_name_the_key_that_chose_each_queue() -> None:
    uses = _uses(["pipeline.queues.controller=ctl", "pipeline.queues.cpu=c1", "pipeline.queues.gpu=g1"], True)
    assert uses[0] == QueueUse("ctl", "pipeline.queues.controller", "the pipeline controller")
    by_step = {u.user: u for u in uses[1:]}
    assert set(by_step) == {f"step '{s.name}'" for s in STEPS}
    for step in STEPS:
        use = by_step[f"step '{step.name}'"]
        assert use.key == f"pipeline.queues.{step.queue_kind}" and use.queue == {"cpu": "c1", "gpu": "g1"}[step.queue_kind]


def test_a_steps_own_queue_setting_is_the_key_named() -> None:
    cfg = remote.plan_from_overrides([*TINY, "++pipeline.steps.train.queue=a100"]).cfg
    uses = {u.user: u for u in preflight.pipeline_queue_uses(cfg, controller=False)}
    assert "the pipeline controller" not in uses
    assert uses["step 'train'"] == QueueUse("a100", "pipeline.steps.train.queue", "step 'train'")
    for step in STEPS:  # the same queue the pipeline gives the step
        assert uses[f"step '{step.name}'"].queue == remote.step_queue(cfg, step)


def test_schedule_queue_uses_add_the_services_and_the_runs_controller() -> None:
    plan, _ = schedule.plan_runs([*TINY, "schedule.queue=svc", "pipeline.queues.controller=ctl"])
    uses = preflight.schedule_queue_uses(plan.cfg)
    assert uses[:2] == [QueueUse("svc", "schedule.queue", "the schedule and trigger services"),
                        QueueUse("ctl", "pipeline.queues.controller", "the pipeline controller")]
    assert len(uses) == 2 + len(STEPS)


def test_missing_queues_message_names_queue_key_users_and_existing_queues() -> None:
    uses = [QueueUse("ctl", "pipeline.queues.controller", "the pipeline controller"),
            QueueUse("gpu-x", "pipeline.queues.gpu", "step 'train'"), QueueUse("gpu-x", "pipeline.queues.gpu", "step 'evaluate'"),
            QueueUse("cpu", "pipeline.queues.cpu", "step 'preprocess'")]
    assert preflight.missing_queues_message(uses, ["ctl", "gpu-x", "cpu"], HOST) is None
    message = preflight.missing_queues_message(uses, ["cpu", "default", "ctl"], HOST)
    assert message == (f"no such queue on the ClearML server at {HOST}: 'gpu-x' (config key pipeline.queues.gpu, used by "
                       "step 'train', step 'evaluate'). Existing queues: 'cpu', 'ctl', 'default'. "
                       + preflight.CREATE_QUEUE_HINT)
    none = preflight.missing_queues_message(uses, [], HOST)
    assert none is not None and "Existing queues: none." in none and "'ctl' (config key pipeline.queues.controller" in none


def test_check_queues_raises_with_the_missing_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight, "existing_queues", lambda session: ["cpu", "default"])
    session = type("Session", (), {"host": HOST})()
    uses = [QueueUse("cpu", "pipeline.queues.cpu", "step 'preprocess'"), QueueUse("gpu", "pipeline.queues.gpu", "step 'train'")]
    with pytest.raises(preflight.MissingQueuesError) as caught:
        preflight.check_queues(uses, session)
    assert caught.value.missing == uses[1:] and caught.value.existing == ["cpu", "default"]
    preflight.check_queues(uses[:1], session)  # all exist: no error


# ---------------------------------------------------------------------------------------------- call sites


def _refuse(*args: Any) -> None:
    raise PipelineError("preflight refused")


def _must_not_run(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("called after a failed preflight")


@pytest.mark.parametrize("command", remote.COMMANDS)
def test_remote_commands_run_the_preflight_before_anything_is_built(monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    seen: list[tuple[str, str]] = []

    def check(cfg: Any, cmd: str) -> None:
        seen.append((cmd, str(cfg.pipeline.queues.gpu)))
        _refuse()

    monkeypatch.setattr(preflight, "check_launch", check)
    monkeypatch.setattr(remote, "build", _must_not_run)
    monkeypatch.setattr(remote, "pin_raw_dataset", _must_not_run)  # asks the server: only after the preflight
    with pytest.raises(PipelineError, match="preflight refused"):
        remote.run(command, [*TINY, "pipeline.queues.gpu=g7"])
    assert seen == [(command, "g7")]


def test_schedule_register_runs_the_preflight_before_the_server_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight, "check_schedule", _refuse)
    monkeypatch.setattr(schedule, "registered_pipeline", _must_not_run)
    monkeypatch.setattr(schedule, "stop_services", _must_not_run)
    monkeypatch.setattr(schedule, "create_service", _must_not_run)
    with pytest.raises(PipelineError, match="preflight refused"):
        schedule.register([*TINY])


def test_the_controller_under_an_agent_fails_before_any_step_on_a_missing_queue(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import clearml

    values = as_ui_values(remote.plan_from_overrides([*TINY, "pipeline.queues.gpu=g9"]).values)
    flushed: list[bool] = []
    task = type("Task", (), {"get_parameters": lambda self: {f"Args/{k}": v for k, v in values.items()},
                             "flush": lambda self, wait_for_uploads: flushed.append(wait_for_uploads),
                             "session": "the controller's session"})()
    monkeypatch.setattr(clearml.Task, "get_task", lambda task_id=None, **kwargs: task)
    monkeypatch.setattr(remote, "_remote_task_id", lambda: "controller-id")
    checked: list[str] = []

    def missing(cfg: Any, session: Any) -> None:
        assert session == "the controller's session", "the controller's own login is reused"
        checked.append(str(cfg.pipeline.queues.gpu))
        raise preflight.MissingQueuesError("no such queue ... 'g9'", [], [])

    monkeypatch.setattr(preflight, "check_step_queues", missing)
    monkeypatch.setattr(remote, "build", _must_not_run)
    assert remote.run_on_agent() == 2
    assert checked == ["g9"] and flushed == [True]
    assert "ERROR in pipeline: no such queue ... 'g9'" in capsys.readouterr().err
