"""Orchestration overhead of a remote pipeline run: the wall time outside the steps' own work, per step.

Starts the stand-in ClearML server with real ``clearml-agent`` daemons as the remote tests do
(``tests/standin``, ``tests.remote.harness``), runs ``monai-pipeline controller`` with the tiny test config,
then reads every step task back from the server and splits each step's share of the run (``breakdown``):

    previous step done --controller--> task created --launch--> enqueued --pickup--> started
      --startup--> Task.init done --work--> last log line --finish--> completed

* controller: the controller noticing that the previous step ended (its poll interval, ``pipeline.poll_seconds``)
  and creating the next task; for the first step, the controller's own start (repository detection, steps).
* launch: the new task's parameters and the enqueue (known only when the run was watched live, else 0 and
  counted in pickup).
* pickup: the agent's queue poll (``CLEARML_AGENT_QUEUE_POLL_FREQ_SEC``, 5 s unless set; the tests set 1 s).
* startup: the agent's ``execute`` process (configuration print-out, git fetch and checkout, environment), then
  the step's interpreter, its imports (torch, MONAI, ignite, ClearML), Hydra and ``Task.init``; it ends at the
  first line with a logging timestamp the step prints (components log only after ``Task.init``). The agent's
  share ends at its "Starting Task Execution" log event (``StepTimes.agent_setup``), which is late by up to
  the agent's poll interval (it sends its log that often), so it is reported apart, not as a part.
* work: the step's own work, from that first line to the last timestamped line (dataset and model transfers
  during the work are in it).
* finish: flushing and closing the task (uploads), process exit and the agent noticing the exit (it checks
  the process every poll interval) and marking the task completed.

Every part is >= 0 and a step's parts add up to "previous step done -> completed"; with the parts of all steps
and ``tail`` (last step done -> controller done) they add up to the controller's run. Times come from the
server (created, started, completed), the agent's log events and the step's logging timestamps (local time
of the agent's machine, read as the local time here): markers out of order are clamped into place.

Each repeat is two pipeline runs (ours and the baseline's controller poll), about a minute each on 2 cores:

    .venv/bin/python -m benchmarks --suites orchestration [--orchestration-repeats N] [--agent-poll-seconds 5]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from benchmarks.common import Row, check, interleave

SUITE = "orchestration"
TARGET_SECONDS = 10.0
RUN_TIMEOUT_S = 400.0  # one tiny pipeline run takes about 45 s on 2 cores
# (name, what it covers), in the order they follow each other within a step
PARTS: tuple[tuple[str, str], ...] = (
    ("controller", "previous step done -> task created (controller poll)"),
    ("launch", "task created -> enqueued"),
    ("pickup", "enqueued -> started (agent queue poll)"),
    ("startup", "started -> Task.init done (agent, git checkout, interpreter, imports, Hydra, Task.init)"),
    ("work", "the step's own work"),
    ("finish", "work done -> completed (uploads, close, exit, agent notices)"),
)
PART_NAMES = tuple(name for name, _ in PARTS)
HANDOVER_MARK = "Starting Task Execution"  # clearml-agent's last line before the step's own process
# a logging timestamp: ClearML's "2026-01-02 03:04:05,678 - clearml..." and the components' "[2026-... step INFO]"
LOG_TIME = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")


@dataclass
class StepTimes:
    """One step task's share of the run, in seconds per part (``PART_NAMES``)."""

    name: str
    task_id: str
    status: str
    parts: dict[str, float]
    # started -> the agent's hand-over log event (its execute process, git checkout): part of startup, late by up
    # to the agent's poll interval; None when the agent logged no hand-over
    agent_setup: float | None = None

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    @property
    def overhead(self) -> float:
        return self.total - self.parts["work"]


@dataclass
class Breakdown:
    """A pipeline run split into its steps' parts, plus the controller's end after the last step."""

    controller_id: str
    steps: list[StepTimes]
    tail: float
    total: float
    poll_seconds: float | None
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def work(self) -> float:
        return sum(s.parts["work"] for s in self.steps)

    @property
    def overhead_per_step(self) -> float:
        """(the run's wall time - the steps' own work) / number of step tasks; the run's wall time is the
        command's (``extra['wall']``) when known, else the controller task's run (``total``)."""
        return (self.extra.get("wall", self.total) - self.work) / max(1, len(self.steps))

    def mean(self, part: str) -> float:
        """A part's mean over the step tasks (``agent_setup`` too, over the steps that have it)."""
        values = [s.parts[part] if part in s.parts else getattr(s, part) for s in self.steps]
        present = [v for v in values if v is not None]
        return statistics.fmean(present) if present else 0.0

    def text(self) -> str:
        """The breakdown as a table: one line per step, seconds per part."""
        head = f"{'step':<12}" + "".join(f"{p:>11}" for p in PART_NAMES) + f"{'overhead':>10}{'(agent)':>9}"
        lines = [head]
        for s in self.steps:
            agent = "" if s.agent_setup is None else f"{s.agent_setup:.2f}"
            lines.append(f"{s.name:<12}" + "".join(f"{s.parts[p]:>11.2f}" for p in PART_NAMES)
                         + f"{s.overhead:>10.2f}{agent:>9}")
        lines.append(f"tail (last step done -> controller done) {self.tail:.2f} s; run {self.total:.2f} s, work "
                     f"{self.work:.2f} s, overhead {self.overhead_per_step:.2f} s per step; controller poll "
                     f"{self.poll_seconds} s")
        return "\n".join(lines)


def _server_time(value: Any) -> float | None:
    """Seconds since the epoch of a server datetime (ISO 8601 with offset), None when unset."""
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _log_time(text: str) -> float:
    """Seconds since the epoch of a logging timestamp, written in the local time of the process."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _ended(task: Mapping[str, Any]) -> float | None:
    return _server_time(task.get("completed")) or _server_time(task.get("status_changed"))


def _events(client: Any, task_id: str, batch: int = 2000) -> list[dict[str, Any]]:
    """A task's whole console log, oldest first (the server returns the newest ``batch`` events per call)."""
    events: list[dict[str, Any]] = []
    since: int | None = None
    while True:
        body: dict[str, Any] = {"task": task_id, "batch_size": batch}
        if since is not None:
            body.update(from_timestamp=since, navigate_earlier=True)
        found = client.call("events.get_task_log", **body)["events"]
        events += found
        if len(found) < batch:
            return sorted(events, key=lambda e: e.get("timestamp") or 0)
        since = min(e["timestamp"] for e in found)


def _process_marks(events: list[dict[str, Any]]) -> tuple[float | None, float | None, float | None]:
    """(agent hand-over, first and last logging timestamp of the step's process) from a task's console log
    (the agent's own lines carry no logging timestamps)."""
    handover = next((e["timestamp"] / 1000.0 for e in events if HANDOVER_MARK in (e.get("msg") or "")), None)
    stamps = [_log_time(m) for event in events for m in LOG_TIME.findall(event.get("msg") or "")]
    return handover, (min(stamps) if stamps else None), (max(stamps) if stamps else None)


def step_times(client: Any, task: Mapping[str, Any], previous_end: float,
               enqueued: float | None = None) -> StepTimes:
    """The parts of one finished step task that was launched after ``previous_end``."""
    created, started, end = _server_time(task["created"]), _server_time(task.get("started")), _ended(task)
    if created is None or end is None:
        raise ValueError(f"task {task['id']} ({task['name']}) has not run to its end: {task.get('status')}")
    handover, first, last = _process_marks(_events(client, task["id"]))
    # markers in order, each clamped between the one before and the task's end (a missing one: no time)
    marks = [created, enqueued if enqueued is not None else created, started, first, last]
    fixed = [previous_end]
    for mark in marks:
        fixed.append(min(max(fixed[-1] if mark is None else mark, fixed[-1]), max(end, previous_end)))
    fixed.append(max(end, previous_end))
    parts = {name: round(b - a, 3) for name, a, b in zip(PART_NAMES, fixed, fixed[1:])}
    setup = None if handover is None else round(min(max(handover, fixed[3]), fixed[4]) - fixed[3], 3)
    return StepTimes(str(task["name"]), str(task["id"]), str(task.get("status")), parts, setup)


def recorded_poll_seconds(controller: Mapping[str, Any]) -> float | None:
    """The controller's poll interval as it recorded it (user property ``poll_seconds``), None if absent."""
    from pipelines.remote import POLL_PROPERTY

    prop = ((controller.get("hyperparams") or {}).get("properties") or {}).get(POLL_PROPERTY) or {}
    return float(prop["value"]) if prop.get("value") not in (None, "") else None


def breakdown(client: Any, controller_task_id: str, enqueued: Mapping[str, float] | None = None) -> Breakdown:
    """Split a finished pipeline run (its controller task) into each step task's parts (``PARTS``).

    ``client`` is a ``tests.standin.client.ApiClient`` (any server). Step tasks are taken in the order they
    were created, retried attempts included; each one's "previous step done" is the latest end of a step
    task that ended before it was created (the controller's start for the first). ``enqueued`` (task id ->
    epoch seconds, seen while the run went on) splits launch from pickup; without it launch is 0."""
    from tests.remote.harness import step_tasks

    controller = client.task(controller_task_id)
    begin, end = _server_time(controller.get("started")) or _server_time(controller["created"]), _ended(controller)
    if begin is None or end is None or controller.get("status") not in ("completed", "failed", "stopped", "published"):
        raise ValueError(f"controller {controller_task_id} has not finished: {controller.get('status')}")
    tasks = sorted(step_tasks(client, controller_task_id), key=lambda t: _server_time(t["created"]) or 0.0)
    steps: list[StepTimes] = []
    ends: list[float] = []
    for task in tasks:
        created = _server_time(task["created"]) or begin
        previous = max([e for e in ends if e <= created], default=begin)
        steps.append(step_times(client, task, previous, (enqueued or {}).get(task["id"])))
        ends.append(previous + steps[-1].total)  # the task's end (never before ``previous``)
    last = max(ends, default=begin)
    return Breakdown(controller_task_id, steps, tail=round(max(0.0, end - last), 3), total=round(end - begin, 3),
                     poll_seconds=recorded_poll_seconds(controller))


# --- the benchmark: stand-in server, agents, `monai-pipeline controller` --------------------------------


class _QueuedWatcher:
    """Polls the server for queued tasks while a run goes on: task id -> when it was enqueued."""

    def __init__(self, endpoint: Any, every: float = 0.2) -> None:
        from tests.standin.client import ApiClient

        self.client = ApiClient(endpoint)
        self.every = every
        self.seen: dict[str, float] = {}
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="queued-watcher", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.requests += 1
                found = self.client.call("tasks.get_all", status=["queued"], search_hidden=True,
                                         only_fields=["id", "status_changed"])["tasks"]
            except Exception:  # noqa: BLE001 (a missed poll only coarsens the launch/pickup split)
                continue
            for t in found:
                at = _server_time(t.get("status_changed"))
                if at is not None:
                    self.seen.setdefault(t["id"], at)

    def __enter__(self) -> "_QueuedWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class _Stand:
    """The stand-in server, a project checkout, queues and agents: what a run needs."""

    endpoint: Any
    api: Any
    checkout: Any
    queues: Any
    agents: Any
    logdir: Path


@contextmanager
def _stand(root: Path, agent_poll: float) -> Iterator[_Stand]:
    from tests.remote.harness import Queues, start_agents
    from tests.standin.client import ApiClient
    from tests.standin.repo import make_project_clone
    from tests.standin.server import standin_endpoint

    with standin_endpoint(root / "clearml") as endpoint:
        api = ApiClient(endpoint)
        checkout = make_project_clone(root / "checkout", env=endpoint.env())
        tag = uuid.uuid4().hex[:8]
        queues = Queues(controller=f"services-{tag}", cpu=f"cpu-{tag}", gpu=f"gpu-{tag}")
        for queue in (queues.controller, queues.cpu, queues.gpu):
            api.call("queues.create", name=queue)
        agents = start_agents(endpoint, queues, root / "agents", poll_seconds=agent_poll)
        try:
            yield _Stand(endpoint, api, checkout, queues, agents, root / "logs")
        finally:
            agents.stop()


def run_pipeline(stand: _Stand, poll: float, timeout: float = 400.0) -> Breakdown:
    """One ``monai-pipeline controller`` run with the tiny config, watched; its breakdown with the command's
    own start-up (``extra['cli_start']``) and exit (``extra['cli_exit']``) and wall time (``extra['wall']``)."""
    from tests.remote.harness import TINY, controller_id, run_cli

    overrides = [*TINY, f"clearml.project=bench/orchestration-{uuid.uuid4().hex[:8]}", "pipeline.force_rerun=true",
                 f"pipeline.poll_seconds={poll:g}", *stand.queues.overrides()]
    calls = stand.endpoint.standin.state.calls
    with _QueuedWatcher(stand.endpoint) as watcher:
        before = len(calls)
        begin = time.time()
        done = run_cli(stand.endpoint, stand.checkout.work, stand.logdir, "controller", *overrides, timeout=timeout)
        end = time.time()
    requests = len(calls) - before - watcher.requests  # the controller's, the steps' and the agents'
    if done.returncode != 0:
        raise RuntimeError(f"monai-pipeline controller exited {done.returncode}:\n{done.output[-4000:]}")
    result = breakdown(stand.api, controller_id(done.output), watcher.seen)
    controller = stand.api.task(result.controller_id)
    started = _server_time(controller.get("started")) or begin
    result.extra = {"wall": end - begin, "cli_start": max(0.0, started - begin),
                    "cli_exit": max(0.0, end - started - result.total), "requests": float(requests)}
    print(result.text(), flush=True)
    return result


def import_seconds(module: str = "components.train") -> float:
    """Wall time of a fresh interpreter importing ``module`` (what every step's process does first)."""
    import subprocess

    from benchmarks.common import ROOT, python_env

    begin = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, env=python_env(), check=True)
    return time.perf_counter() - begin


def run(args: argparse.Namespace, data: Any, workdir: Path) -> list[Row]:
    """The suite: ``args`` (``python -m benchmarks``) gives ``orchestration_repeats``, ``poll_seconds``
    ([BEFORE, AFTER]: the baseline's controller poll and ours) and ``agent_poll_seconds``; ``data`` is not used;
    the server's files, agents, checkout and logs go under ``workdir``."""
    repeats = int(args.orchestration_repeats)
    baseline_poll, poll = (float(v) for v in args.poll_seconds)
    agent_poll = float(args.agent_poll_seconds)
    timeout = RUN_TIMEOUT_S
    ours_label, base_label = f"poll {poll:g} s", f"poll {baseline_poll:g} s"
    runs: dict[str, list[Breakdown]] = {ours_label: [], base_label: []}
    with ExitStack() as stack:
        root = Path(workdir) / "orchestration"
        root.mkdir(parents=True, exist_ok=True)
        stand = stack.enter_context(_stand(Path(tempfile.mkdtemp(prefix="run-", dir=root)), agent_poll))

        def side(label: str, seconds: float) -> Callable[[int], float]:
            def measure(_: int) -> float:
                runs[label].append(run_pipeline(stand, seconds, timeout))
                return runs[label][-1].overhead_per_step
            return measure

        samples = interleave({ours_label: side(ours_label, poll), base_label: side(base_label, baseline_poll)},
                             repeats)
    imports = [import_seconds()]
    ours, base = runs[ours_label], runs[base_label]
    note = f"agents poll every {agent_poll:g} s"
    rows = [check(Row(SUITE, "orchestration overhead per step", "s", samples[ours_label], samples[base_label],
                      ours_label, base_label, note=note), maximum=TARGET_SECONDS),
            Row(SUITE, "wall time of `monai-pipeline controller` (tiny config)", "s", [b.extra["wall"] for b in ours],
                [b.extra["wall"] for b in base], ours_label, base_label, note=note),
            Row(SUITE, "steps' own work, all steps", "s", [b.work for b in ours], [b.work for b in base],
                ours_label, base_label)]
    for name, what in PARTS:
        rows.append(Row(SUITE, f"per step: {name}: {what}", "s", [b.mean(name) for b in ours],
                        [b.mean(name) for b in base], ours_label, base_label))
        if name == "startup":
            rows.append(Row(SUITE, "per step: startup, of which the agent (to its hand-over log event, late by up to "
                                   "its poll)", "s", [b.mean("agent_setup") for b in ours],
                            [b.mean("agent_setup") for b in base], ours_label, base_label))
    rows += [Row(SUITE, "per run: command -> controller started (CLI start-up, preflight)", "s",
                 [b.extra["cli_start"] for b in ours], [b.extra["cli_start"] for b in base], ours_label, base_label),
             Row(SUITE, "per run: last step done -> controller done (controller poll)", "s", [b.tail for b in ours],
                 [b.tail for b in base], ours_label, base_label),
             Row(SUITE, "per run: controller done -> command exit", "s", [b.extra["cli_exit"] for b in ours],
                 [b.extra["cli_exit"] for b in base], ours_label, base_label),
             Row(SUITE, "per run: API requests to the server (controller, steps, agents)", "requests",
                 [b.extra["requests"] for b in ours], [b.extra["requests"] for b in base], ours_label, base_label),
             Row(SUITE, "fresh interpreter importing components.train (part of startup)", "s", imports),
             Row(SUITE, "per step: startup minus that import (agent, checkout, Hydra, Task.init)", "s",
                 [b.mean("startup") - statistics.median(imports) for b in ours])]
    return rows
