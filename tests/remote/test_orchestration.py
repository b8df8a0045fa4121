"""The orchestration breakdown (``benchmarks/orchestration.py``) on made-up task records, and the controller's
poll interval setting. Fast: no server, no agents (the breakdown of a real run is checked in
``test_remote_pipeline.py`` on its first run)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import pytest

from benchmarks.orchestration import PART_NAMES, breakdown
from components.common.errors import ConfigError
from pipelines.config import compose_config
from pipelines.remote import POLL_PROPERTY, poll_seconds

T0 = 1_800_000_000.0


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds")


def _log_stamp(seconds: float) -> str:
    """A logging timestamp in this machine's local time, as the step's process writes it."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) + f",{int(seconds * 1000) % 1000:03d}"


class FakeClient:
    """What ``breakdown`` asks a server for: the controller, its step tasks and their console logs."""

    def __init__(self, controller: dict[str, Any], steps: list[dict[str, Any]], logs: dict[str, list[dict[str, Any]]]):
        self.tasks = {t["id"]: t for t in (controller, *steps)}
        self.steps, self.logs = steps, logs

    def task(self, task_id: str) -> dict[str, Any]:
        return self.tasks[task_id]

    def call(self, endpoint: str, **body: Any) -> dict[str, Any]:
        if endpoint == "tasks.get_all":
            return {"tasks": [{"id": t["id"], "name": t["name"]} for t in self.steps if t["parent"] == body["parent"]]}
        if endpoint == "events.get_task_log":
            return {"events": self.logs.get(body["task"], [])[-body["batch_size"]:]}
        raise AssertionError(endpoint)


def _step(name: str, created: float, started: float, done: float, status: str = "completed") -> dict[str, Any]:
    return {"id": f"id-{name}-{created}", "name": name, "parent": "ctrl", "status": status, "created": _iso(created),
            "started": _iso(started), "completed": _iso(done) if status == "completed" else None,
            "status_changed": _iso(done)}


def _log(handover: float | None, lines: list[float]) -> list[dict[str, Any]]:
    events = [{"timestamp": int((handover or lines[0]) * 1000) - 500, "msg": "task pulled from queue"}]
    if handover is not None:
        events.append({"timestamp": int(handover * 1000), "msg": "Environment setup completed\nStarting Task Execution:"})
    events += [{"timestamp": int(t * 1000) + 300, "msg": f"[{_log_stamp(t)} step INFO] line"} for t in lines]
    return events


def test_parts_tile_the_run_and_follow_the_markers() -> None:
    controller = {"id": "ctrl", "status": "completed", "created": _iso(T0 - 1), "started": _iso(T0),
                  "completed": _iso(T0 + 40), "hyperparams": {"properties": {POLL_PROPERTY: {"value": "1"}}}}
    first = _step("first", T0 + 1, T0 + 2, T0 + 12)
    second = _step("second", T0 + 13, T0 + 15, T0 + 30)
    logs = {first["id"]: _log(T0 + 3, [T0 + 7, T0 + 9.5]), second["id"]: _log(T0 + 16, [T0 + 20, T0 + 28])}
    result = breakdown(FakeClient(controller, [first, second], logs), "ctrl", enqueued={second["id"]: T0 + 13.5})

    assert [s.name for s in result.steps] == ["first", "second"]
    assert result.steps[0].parts == pytest.approx(
        {"controller": 1, "launch": 0, "pickup": 1, "startup": 5, "work": 2.5, "finish": 2.5}, abs=0.002)
    assert result.steps[1].parts == pytest.approx(
        {"controller": 1, "launch": 0.5, "pickup": 1.5, "startup": 5, "work": 8, "finish": 2}, abs=0.002)
    assert result.steps[0].agent_setup == pytest.approx(1) and result.steps[1].agent_setup == pytest.approx(1)
    assert result.tail == pytest.approx(10) and result.total == pytest.approx(40)
    assert result.work == pytest.approx(10.5)
    assert result.overhead_per_step == pytest.approx((40 - 10.5) / 2)
    assert result.poll_seconds == 1.0


def test_markers_out_of_order_or_missing_are_clamped() -> None:
    """Clocks disagree (a log line before the task started, after it completed) or an agent logged no hand-over:
    no part is negative and the parts still add up; a failed then retried step counts from the failure."""
    controller = {"id": "ctrl", "status": "completed", "created": _iso(T0), "started": _iso(T0),
                  "completed": _iso(T0 + 50), "hyperparams": {}}
    failed = _step("train", T0 + 1, T0 + 2, T0 + 10, status="failed")
    retry = _step("train", T0 + 20, T0 + 21, T0 + 30)
    logs = {failed["id"]: _log(None, [T0 + 1.5, T0 + 12]),  # before started, after the end
            retry["id"]: _log(T0 + 25, [T0 + 24])}  # its line before the agent's hand-over event
    result = breakdown(FakeClient(controller, [retry, failed], logs), "ctrl")

    assert [s.status for s in result.steps] == ["failed", "completed"]
    for step in result.steps:
        assert list(step.parts) == list(PART_NAMES) and min(step.parts.values()) >= 0
    assert result.steps[0].agent_setup is None
    assert result.steps[0].parts["startup"] == 0 and result.steps[0].parts["work"] == pytest.approx(8)
    assert result.steps[1].parts["controller"] == pytest.approx(10)  # the retry's delay, from the failure
    assert result.steps[1].agent_setup == pytest.approx(3)  # clamped to the end of startup (the first line)
    assert sum(s.total for s in result.steps) + result.tail == pytest.approx(result.total)
    assert result.poll_seconds is None


def test_breakdown_refuses_a_running_pipeline() -> None:
    controller = {"id": "ctrl", "status": "in_progress", "created": _iso(T0), "started": _iso(T0)}
    with pytest.raises(ValueError, match="has not finished"):
        breakdown(FakeClient(controller, [], {}), "ctrl")


def test_poll_seconds_is_validated() -> None:
    assert poll_seconds(compose_config([])) == 1.0
    assert poll_seconds(compose_config(["pipeline.poll_seconds=2.5"])) == 2.5
    for bad in ("0", "-1", "soon"):
        with pytest.raises(ConfigError, match="pipeline.poll_seconds"):
            poll_seconds(compose_config([f"pipeline.poll_seconds={bad}"]))
