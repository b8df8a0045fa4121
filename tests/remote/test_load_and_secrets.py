"""Load and secrets: three remote pipeline runs started at once on the two step agents, with secret-looking
values in the environment of the CLI and of every agent (so of every step and controller).

One scenario (module fixture) serves the tests:

* the secrets: ``MONAI_DEMO_API_TOKEN``, ``HOSPITAL_PACS_PASSWORD`` and ``S3_SECRET_ACCESS_KEY`` with unique
  random values, and the ClearML credentials the environment sets anyway (``CLEARML_API_ACCESS_KEY``,
  ``CLEARML_API_SECRET_KEY``). One of them also enters the config, the way a deployment would reference a
  secret: the checkout's data config reads ``pacs_password: ${oc.env:HOSPITAL_PACS_PASSWORD}``. (On the
  command line ``+data.pacs_password=${oc.env:...}`` cannot reach a remote run: ClearML's PipelineController
  takes every ``${...}`` in a step parameter for a step reference and refuses to start.)
* the load: three ``monai-pipeline remote`` runs with the tiny config started together; their controllers
  share the services agent, their steps the cpu and the gpu agent.

Then every run must have completed with all its steps' outputs, the best model and the metrics, nothing
may be left queued or running, and no secret value may appear anywhere the stand-in recorded (tasks,
models, events and console logs, queues, workers, projects, call logs, stored files and archives).

clearml-agent's own console output is not this project's code: the agents are deployed with
``AGENT_CONFIG`` (the agent then masks the access key in the configuration it prints), and its one line
that cannot be configured away (``AGENT_ACCESS_KEY_LINE``) is the scan's only exemption.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from pipelines.dag import STEPS
from tests.remote.harness import (Env, Queues, controller_id, find_in_files, find_values, outputs, run_cli,
                                  standin_records, start_agents)
from tests.standin.client import ApiClient
from tests.standin.environment import ClearMLEndpoint
from tests.standin.repo import PROJECT_ROOT, make_project_clone

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.agent]

RUNS = 3
# about 2 minutes on 2 cores: the 12 steps queue up on the two step agents (preprocess on cpu, the rest on gpu)
LOAD_TIMEOUT = 600.0
SECRET_VARS = ("MONAI_DEMO_API_TOKEN", "HOSPITAL_PACS_PASSWORD", "S3_SECRET_ACCESS_KEY")
CREDENTIAL_VARS = ("CLEARML_API_ACCESS_KEY", "CLEARML_API_SECRET_KEY")
CONFIG_SECRET = "pacs_password: ${oc.env:HOSPITAL_PACS_PASSWORD}"
# clearml-agent 3.0.3 prints its configuration into every task's log, masking the values of keys that match
# agent.sanitize_config_printout.hide_secrets; its default list lacks access_key, so the module's agents are
# deployed with it added (a setting of the agents' clearml.conf, as a site would deploy them).
AGENT_CONFIG = """# clearml-agent: also mask api.credentials.access_key in the configuration printed into task logs
agent.sanitize_config_printout.hide_secrets: ["^sanitize_config_printout$", "secret", "pass", "token", "account_key",
                                              "contents", "access_key"]
"""
# clearml-agent 3.0.3 (clearml_agent/backend_api/session/session.py, Session.__init__) prints the access key it
# takes from the environment, unmasked, at the start of every task it runs (the secret key it masks): this
# line, in each task's console log. No code of this project runs there; agents given their credentials in
# clearml.conf (``clearml-agent init``) instead of CLEARML_API_* variables do not print it. That exact line
# is the one exemption of the scan; the access key anywhere else fails it.
AGENT_ACCESS_KEY_LINE = "Using environment access key CLEARML_API_ACCESS_KEY={}"


@dataclass
class LoadRun:
    env: Env
    secrets: dict[str, str]  # variable name -> value
    controllers: list[dict[str, Any]]
    seconds: float


def _secret_endpoint(server: ClearMLEndpoint, sandbox: Path) -> tuple[ClearMLEndpoint, dict[str, str]]:
    """The session's server with the secret variables added to every process environment it makes, and its
    own sandbox (HOME, caches, clearml.conf with ``AGENT_CONFIG``)."""
    secrets = {name: f"{name.lower().replace('_', '-')}-{uuid.uuid4().hex}" for name in SECRET_VARS}
    endpoint = dataclasses.replace(server, sandbox=sandbox, extra_env={**server.extra_env, **secrets})
    sandbox.mkdir(parents=True, exist_ok=True)
    endpoint.config_file.write_text(AGENT_CONFIG)
    endpoint.prepare()
    env = endpoint.env()
    return endpoint, {**secrets, **{name: env[name] for name in CREDENTIAL_VARS}}


@pytest.fixture(scope="module")
def load_run(clearml_server: ClearMLEndpoint, clearml_api: ApiClient,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadRun]:
    workdir = tmp_path_factory.mktemp("load")
    endpoint, secrets = _secret_endpoint(clearml_server, workdir / "sandbox")
    data_config = (PROJECT_ROOT / "conf" / "data" / "synthetic.yaml").read_text()
    checkout = make_project_clone(workdir / "repo", env=endpoint.env(),
                                  extra_files={"conf/data/synthetic.yaml": f"{data_config.rstrip()}\n{CONFIG_SECRET}\n"})
    tag = uuid.uuid4().hex[:8]
    queues = Queues(controller=f"services-{tag}", cpu=f"cpu-{tag}", gpu=f"gpu-{tag}")
    for queue in (queues.controller, queues.cpu, queues.gpu):
        clearml_api.call("queues.create", name=queue)
    agents = start_agents(endpoint, queues, workdir / "agents")
    env = Env(endpoint, clearml_api, checkout, queues, agents, f"standin-tests/load-{tag}", workdir / "logs")
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(RUNS) as pool:
            launched = list(pool.map(lambda i: run_cli(endpoint, checkout.work, env.logdir / f"run-{i}", "remote",
                                                       *env.overrides()), range(RUNS)))
        for finished in launched:
            assert finished.returncode == 0, finished.output[-6000:]
        ids = [controller_id(finished.output) for finished in launched]
        assert len(set(ids)) == RUNS, ids
        done = [env.wait(controller, timeout=LOAD_TIMEOUT - (time.monotonic() - started)) for controller in ids]
        yield LoadRun(env, secrets, done, time.monotonic() - started)
    finally:
        agents.stop()


def _dag(api: ApiClient, controller: str) -> dict[str, Any]:
    """The run's DAG as the controller recorded it (``executed``: the task that ran a step, or was reused)."""
    return dict(json.loads(api.task(controller)["configuration"]["Pipeline"]["value"]))


def test_three_concurrent_runs_complete_with_outputs_models_and_metrics(load_run: LoadRun) -> None:
    env, api = load_run.env, load_run.env.api
    print(f"{RUNS} concurrent runs took {load_run.seconds:.0f}s")
    for controller in load_run.controllers:
        run_id = controller["id"]
        assert controller["status"] == "completed", env.describe(run_id)
        dag = _dag(api, run_id)
        assert set(dag) == {s.name for s in STEPS}, list(dag)
        steps = {s.name: api.task(str(dag[s.name]["executed"])) for s in STEPS}
        for s in STEPS:
            task = steps[s.name]
            assert task["status"] in ("completed", "published"), (s.name, env.describe(run_id))
            recorded = outputs(task)
            assert set(s.outputs) <= set(recorded), (s.name, recorded)
        dataset_id = outputs(steps["preprocess"])["dataset_id"]
        assert api.task(dataset_id)["status"] in ("completed", "published")
        # the best model: train's output, uploaded, with its lineage; evaluate's test Dice on it
        train, evaluate, promote = steps["train"], steps["evaluate"], steps["promote"]
        model = api.call("models.get_by_id", model=outputs(train)["model_id"])["model"]
        assert model["task"] == train["id"] and model["uri"], model
        assert "best" in model["tags"], model["tags"]
        test_dice = float(outputs(evaluate)["test_mean_dice"])
        assert 0.0 <= test_dice <= 1.0
        assert float(outputs(train)["val_mean_dice"]) >= 0.0
        assert outputs(evaluate)["metrics_url"].startswith(env.endpoint.files_host)
        assert outputs(promote)["promoted"] in ("True", "False")
        assert train.get("last_metrics"), "train reported no scalars"
        monitored = {(v["metric"], v["variant"]): v["value"]
                     for m in (api.task(run_id).get("last_metrics") or {}).values() for v in m.values()}
        assert monitored[("test", "mean_dice")] == pytest.approx(test_dice, abs=1e-4), monitored
        assert outputs(train)["model_id"] in {m["model"] for m in api.task(run_id)["models"]["output"]}
    # nothing left behind: no task of the runs' projects queued or running, the queues empty
    projects = {api.task(c["id"])["project"] for c in load_run.controllers}
    projects |= {t["project"] for c in load_run.controllers
                 for t in api.call("tasks.get_all", parent=c["id"], search_hidden=True, only_fields=["project"])["tasks"]}
    busy = api.call("tasks.get_all", project=sorted(projects), include_subprojects=True, search_hidden=True,
                    status=["queued", "in_progress"], only_fields=["id", "name", "status"])["tasks"]
    assert busy == [], busy
    for queue in (env.queues.controller, env.queues.cpu, env.queues.gpu):
        assert api.call("queues.get_by_id", queue=api.queue_id(queue))["queue"]["entries"] == [], queue


def test_no_secret_value_is_recorded_anywhere(load_run: LoadRun) -> None:
    """Everything the stand-in recorded, its stored files and their archives' members: no secret value."""
    standin = load_run.env.endpoint.standin
    assert standin is not None, "the scan reads the stand-in's state and files: run it against the stand-in"
    records = standin_records(standin)
    exempted = _drop_agent_access_key_lines(records, load_run.secrets["CLEARML_API_ACCESS_KEY"])
    print(f"exempted {exempted} clearml-agent line(s) '{AGENT_ACCESS_KEY_LINE.format('...')}'")
    hits = find_values(records, load_run.secrets, "state") + find_in_files(standin.files_root, load_run.secrets)
    assert not hits, f"{len(hits)} secret value(s) recorded:\n" + "\n".join(hits[:60])
    # the scan reached what would hold them: the config reference in the steps' recorded configs, the key
    # in the registered models' configurations, the runs' console logs
    reference = find_values(records, {"reference": "${oc.env:HOSPITAL_PACS_PASSWORD}"}, "state")
    assert any(".configuration.OmegaConf." in hit for hit in reference), reference[:5]
    assert any(hit.startswith("key at state.models.") for hit in find_values(records["models"], {"key": "pacs_password"},
                                                                              "state.models")), "no model config scanned"
    assert find_values(records["events"], {"marker": "epoch 1/3"}), "no console log scanned"


def _drop_agent_access_key_lines(records: dict[str, Any], access_key: str) -> int:
    """Take clearml-agent's own access-key line (``AGENT_ACCESS_KEY_LINE``) out of the console-log events of
    ``records`` (a copy); returns how many were taken out."""
    line = AGENT_ACCESS_KEY_LINE.format(access_key)
    count = 0
    for events in records["events"].values():
        for event in events:
            msg = event.get("msg")
            if event.get("type") == "log" and isinstance(msg, str) and line in msg:
                count += msg.count(line)
                event["msg"] = msg.replace(line, AGENT_ACCESS_KEY_LINE.format("<exempt: clearml-agent's line>"))
    return count


def test_the_scan_finds_a_planted_value(tmp_path: Path) -> None:
    """The scanner itself: a value anywhere in nested records, in a key, in a file and in an archive member."""
    values = {"TOKEN": "planted-" + uuid.uuid4().hex}
    token = values["TOKEN"]
    records = {"tasks": {"t1": {"hyperparams": {"Args": {"x": {"value": f"a {token} b"}}}},
                         "t2": {"models": [{"design": b"bytes " + token.encode()}]}},
               "events": {"t1": [{"msg": "clean"}]}, token: "as a key"}
    hits = find_values(records, values, "state")
    assert len(hits) == 3, hits
    assert any(h.startswith("TOKEN at state.tasks.t1.hyperparams.Args.x.value: ") for h in hits), hits
    assert all(token not in h for h in hits), "a hit must not print the secret itself"
    assert not find_values(records["events"], values)
    # the agent's access-key line is the only exemption: the same key elsewhere, even in that log, is found
    agent_line = AGENT_ACCESS_KEY_LINE.format(token)
    logs = {"events": {"t1": [{"type": "log", "msg": f"{agent_line}\nkey again: {token}"},
                              {"type": "log", "msg": agent_line}, {"type": "training_debug_image", "url": agent_line}]}}
    assert _drop_agent_access_key_lines(logs, token) == 2
    hits = find_values(logs, values, "state")
    assert [h.split(":")[0] for h in hits] == ["TOKEN at state.events.t1[0].msg", "TOKEN at state.events.t1[2].url"]
    (tmp_path / "plain.txt").write_text(f"line\n{token}\n")
    with zipfile.ZipFile(tmp_path / "data.zip", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("inner/config.yaml", f"pacs_password: {token}\n" * 50)
    hits = find_in_files(tmp_path, values)
    assert [h.split(":")[0] for h in hits] == ["TOKEN at file data.zip!inner/config.yaml", "TOKEN at file plain.txt"]
