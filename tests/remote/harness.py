"""Helpers for the remote-pipeline tests: agents per queue, the CLI in a child process, reading step tasks."""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from pipelines.dag import STEPS
from tests.conftest import TINY_OVERRIDES
from tests.standin import procs
from tests.standin.agent import AgentDaemon
from tests.standin.client import ApiClient
from tests.standin.environment import ClearMLEndpoint
from tests.standin.repo import GitCheckout
from tests.support import section

STEP_NAMES = tuple(s.name for s in STEPS)
# the tiny config without the offline switch (the pipeline sets that itself)
TINY = tuple(o for o in TINY_OVERRIDES if not o.startswith("clearml.offline="))
RUN_TIMEOUT = 300.0


@dataclass
class Queues:
    """One queue per role, named uniquely for a test module; each has its own agent."""

    controller: str
    cpu: str
    gpu: str

    def overrides(self) -> list[str]:
        return [f"pipeline.queues.controller={self.controller}", f"pipeline.queues.cpu={self.cpu}",
                f"pipeline.queues.gpu={self.gpu}"]


@dataclass
class Agents:
    """The services-mode agent (controllers) and one agent per step queue."""

    services: AgentDaemon
    cpu: AgentDaemon
    gpu: AgentDaemon
    extra: list[AgentDaemon] = field(default_factory=list)

    def logs(self, tail: int = 4000) -> str:
        return "\n".join(f"--- {name} agent ---\n{agent.log()[-tail:]}"
                         for name, agent in (("services", self.services), ("cpu", self.cpu), ("gpu", self.gpu)))

    def stop(self) -> None:
        for agent in (self.services, self.cpu, self.gpu, *self.extra):
            agent.stop()


def start_agents(endpoint: ClearMLEndpoint, queues: Queues, workdir: Path, poll_seconds: float = 1.0) -> Agents:
    started: list[AgentDaemon] = []
    try:
        for name, queue, services in (("services", queues.controller, True), ("cpu", queues.cpu, False),
                                      ("gpu", queues.gpu, False)):
            started.append(AgentDaemon(endpoint, [queue], services_mode=services, workdir=workdir / name,
                                       poll_seconds=poll_seconds).start())
    except BaseException:
        for agent in started:
            agent.stop()
        raise
    return Agents(*started)


def run_cli(endpoint: ClearMLEndpoint, checkout: Path, logdir: Path, command: str, *overrides: str,
            timeout: float = 120.0) -> procs.Finished:
    """``monai-pipeline <command> overrides...`` from the checkout (so the checkout's code is what runs)."""
    logdir.mkdir(parents=True, exist_ok=True)
    count = len(list(logdir.glob("cli-*.log")))
    return procs.run([sys.executable, "-m", "pipelines.cli", command, *overrides], endpoint.env(), checkout,
                     logdir / f"cli-{count}-{command}.log", timeout)


def wait_until(what: str, probe: Callable[[], Any], timeout: float, describe: Callable[[], str],
               poll: float = 2.0) -> Any:
    """Poll ``probe`` until it returns something truthy, and return that; on timeout fail with ``describe()``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{describe()}")


def controller_id(output: str) -> str:
    found = re.findall(r"pipeline controller task: (\w+)", output)
    assert found, f"no controller task id printed:\n{output[-4000:]}"
    return found[-1]


def step_tasks(api: ApiClient, controller: str) -> list[dict[str, Any]]:
    """All tasks created by a pipeline run (including retried or cached-and-deleted ones still present)."""
    found = api.call("tasks.get_all", parent=controller, search_hidden=True, only_fields=["id", "name"])["tasks"]
    return [api.task(t["id"]) for t in found]


def steps_by_name(api: ApiClient, controller: str) -> dict[str, dict[str, Any]]:
    tasks = step_tasks(api, controller)
    by_name = {t["name"]: t for t in tasks}
    assert len(by_name) == len(tasks), [t["name"] for t in tasks]
    return by_name


def hydra(task: dict[str, Any]) -> dict[str, str]:
    """The step's ``Hydra`` hyperparameter section as key -> value."""
    return section(task, "Hydra")


def outputs(task: dict[str, Any]) -> dict[str, str]:
    return section(task, "Outputs")


def recorded_config(task: dict[str, Any]) -> DictConfig:
    """The step's ``OmegaConf`` configuration object: the config its Hydra main really ran with."""
    config = (task.get("configuration") or {}).get("OmegaConf")
    assert config and config.get("value"), f"task {task['id']} ({task['name']}) has no OmegaConf configuration"
    return OmegaConf.create(config["value"])


def task_log(api: ApiClient, task_id: str) -> str:
    events = api.call("events.get_task_log", task=task_id, batch_size=2000)["events"]
    return "\n".join(e.get("msg", "") for e in events)


def describe(api: ApiClient, controller: str, agents: Agents | None = None) -> str:
    """Diagnostics for an assertion message: controller and step states, the tail of their logs, agents."""
    lines = []
    for task_id in [controller, *(t["id"] for t in step_tasks(api, controller))]:
        task = api.task(task_id)
        lines.append(f"=== {task['name']} {task_id}: {task['status']} ({task.get('status_message')!r}, "
                     f"{task.get('status_reason')!r})\n{task_log(api, task_id)[-2500:]}")
    if agents is not None:
        lines.append(agents.logs())
    return "\n".join(lines)


@dataclass
class Env:
    endpoint: ClearMLEndpoint
    api: ApiClient
    checkout: GitCheckout
    queues: Queues
    agents: Agents
    project: str
    logdir: Path

    def overrides(self, *extra: str) -> list[str]:
        return [*TINY, f"clearml.project={self.project}", "pipeline.retries.delay=1", *self.queues.overrides(),
                *extra]

    def wait(self, controller: str, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
        try:
            return self.api.wait_for_status(controller, timeout=timeout)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{self.describe(controller)}") from None

    def clone_edit_enqueue(self, source: str, name: str, section: str, edits: dict[str, str], queue: str) -> str:
        """What the UI does to re-run a task: clone it, edit parameters of one section, enqueue the clone."""
        clone = self.api.call("tasks.clone", task=source, new_task_name=name)["id"]
        self.api.call("tasks.edit_hyper_params", task=clone, replace_hyperparams="none",
                      hyperparams=[{"section": section, "name": k, "value": v} for k, v in edits.items()])
        self.api.call("tasks.enqueue", task=clone, queue=self.api.queue_id(queue))
        return clone

    def describe(self, controller: str) -> str:
        """Controller, steps and agent logs, and the server's refused calls (stand-in only)."""
        refused = self.endpoint.standin.state.failed_calls[-30:] if self.endpoint.standin else []
        return describe(self.api, controller, self.agents) + "\n--- refused calls ---\n" + "\n".join(refused)


# --- scanning what a server recorded for given values (e.g. secrets) -------------------------------------

# The stand-in's own credential store: the key pair it checks logins against and the session tokens it
# issued. Knowing the credentials is the server's job; everything else it holds was recorded by clients.
STANDIN_OWN_CREDENTIALS = ("access_key", "secret_key", "tokens", "lock")


def find_values(tree: Any, values: dict[str, str], where: str = "") -> list[str]:
    """Every place in ``tree`` (nested dicts, lists, strings, bytes; dictionary keys included) where one of
    ``values`` (name -> value) occurs: one line per hit, ``NAME at <where><path>: <context>``, with the value
    itself shown as ``<NAME>``."""
    hits: list[str] = []
    stack: list[tuple[Any, str]] = [(tree, where)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                stack.append((key, f"{path}[key {str(key)[:40]!r}]"))
                stack.append((value, f"{path}.{key}"))
        elif isinstance(node, (list, tuple, set, frozenset)):
            stack.extend((value, f"{path}[{i}]") for i, value in enumerate(node))
        elif isinstance(node, (str, bytes)):
            text = node.decode("utf-8", "replace") if isinstance(node, bytes) else node
            for name, value in values.items():
                at = text.find(value)
                if at >= 0:
                    hit = f"{name} at {path}: ...{text[max(0, at - 100):at + len(value) + 60]!r}..."
                    for other, hidden in values.items():
                        hit = hit.replace(hidden, f"<{other}>")
                    hits.append(hit)
    return sorted(hits)


def standin_records(server: Any) -> dict[str, Any]:
    """A copy of everything a stand-in server recorded (projects, tasks, models, queues, workers, events, its
    call logs), without its own credential store (``STANDIN_OWN_CREDENTIALS``)."""
    import copy
    import dataclasses

    state = server.state
    with state.lock:
        return {f.name: copy.deepcopy(getattr(state, f.name)) for f in dataclasses.fields(state)
                if f.name not in STANDIN_OWN_CREDENTIALS}


def stored_files(root: Path, depth: int = 3) -> list[tuple[str, bytes]]:
    """(name, content) of every file under ``root`` (a file server's storage) and of the members of the zip,
    tar and gzip archives among them (nested ones too, ``depth`` levels): ``archive.zip!member``."""
    found = [(str(p.relative_to(root)), p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()]
    return [item for name, data in found for item in _with_members(name, data, depth)]


def _with_members(name: str, data: bytes, depth: int) -> list[tuple[str, bytes]]:
    import gzip
    import io
    import tarfile
    import zipfile

    out = [(name, data)]
    if depth <= 0:
        return out
    members: list[tuple[str, bytes]] = []
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [(info.filename, archive.read(info)) for info in archive.infolist() if not info.is_dir()]
    elif data[:2] == b"\x1f\x8b":
        members = [("(gunzipped)", gzip.decompress(data))]
    elif len(data) > 512 and data[257:262] == b"ustar":
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            members = [(m.name, archive.extractfile(m).read()) for m in archive.getmembers()  # type: ignore[union-attr]
                       if m.isfile()]
    for member, content in members:
        out.extend(_with_members(f"{name}!{member}", content, depth - 1))
    return out


def find_in_files(root: Path, values: dict[str, str]) -> list[str]:
    """``find_values`` over the files under ``root`` and the members of archives among them."""
    return [hit for name, data in stored_files(root) for hit in find_values(data, values, f"file {name}")]
