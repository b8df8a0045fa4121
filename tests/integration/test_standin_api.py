"""The wire protocol: auth, versions, errors, the status state machine and get_all filters.

These use plain REST calls, so they also run against a real server (CLEARML_TESTS_REAL_SERVER=1).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time

import pytest
import requests

from tests.standin.client import ApiCallError, ApiClient
from tests.standin.environment import ClearMLEndpoint
from tests.standin.repo import PROJECT_ROOT
from tests.standin.server import StandinServer

pytestmark = pytest.mark.integration


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_login_token_carries_what_the_sdk_reads(clearml_server: ClearMLEndpoint) -> None:
    res = requests.get(f"{clearml_server.api_host}/auth.login",
                       auth=(clearml_server.access_key, clearml_server.secret_key), timeout=10)
    assert res.status_code == 200
    body = res.json()
    assert body["meta"]["result_code"] == 200
    claims = _claims(body["data"]["token"])
    assert claims["exp"] > time.time() + 60
    assert {"api_version", "server_version"} <= set(claims)


def test_bad_credentials_and_missing_token_are_401(clearml_server: ClearMLEndpoint) -> None:
    bad = requests.get(f"{clearml_server.api_host}/auth.login", auth=(clearml_server.access_key, "wrong"), timeout=10)
    assert bad.status_code == 401
    assert bad.json()["meta"]["result_code"] == 401
    anonymous = requests.post(f"{clearml_server.api_host}/tasks.get_all", json={}, timeout=10)
    assert anonymous.status_code == 401


@pytest.mark.parametrize("prefix", ["", "/v2.5", "/v2.13", "/v2.23"])
def test_any_version_prefix_is_accepted(clearml_api: ApiClient, prefix: str) -> None:
    res = clearml_api.raw("projects.get_all", {"only_fields": ["id"]}, version=prefix[2:] or None)
    assert res.status_code == 200, res.text
    assert isinstance(res.json()["data"]["projects"], list)


def test_unknown_endpoint_answers_like_the_real_server(clearml_api: ApiClient, standin: StandinServer) -> None:
    res = clearml_api.raw("tasks.no_such_action", {})
    assert res.status_code == 400
    meta = res.json()["meta"]
    assert (meta["result_code"], meta["result_subcode"]) == (400, 1)
    assert "tasks.no_such_action" in meta["result_msg"]
    assert standin.state.unknown_calls[-1] == "tasks.no_such_action"
    standin.state.unknown_calls.pop()  # deliberate gap: keep the autouse gap check quiet


def test_status_machine_and_single_handout(clearml_api: ApiClient, unique_name: str) -> None:
    queue = clearml_api.call("queues.create", name=unique_name)["id"]
    task = clearml_api.call("tasks.create", name=unique_name, type="training")["id"]
    assert clearml_api.task(task)["status"] == "created"
    clearml_api.call("tasks.enqueue", task=task, queue=queue)
    assert clearml_api.task(task)["status"] == "queued"
    entry = clearml_api.call("queues.get_next_task", queue=queue)
    assert entry["entry"]["task"] == task
    assert clearml_api.call("queues.get_next_task", queue=queue).get("entry") is None
    assert clearml_api.task(task)["status"] == "queued"  # get_next_task leaves the status to the agent
    clearml_api.call("tasks.started", task=task)
    clearml_api.call("tasks.completed", task=task)
    assert clearml_api.task(task)["status"] == "completed"
    with pytest.raises(ApiCallError) as refused:
        clearml_api.call("tasks.enqueue", task=task, queue=queue)
    assert (refused.value.status, refused.value.meta["result_subcode"]) == (400, 110)
    clearml_api.call("queues.delete", queue=queue)


def test_clone_strips_development_tag_and_outputs(clearml_api: ApiClient, unique_name: str) -> None:
    src = clearml_api.call("tasks.create", name=unique_name, type="training", system_tags=["development"])["id"]
    clearml_api.call("tasks.add_or_update_artifacts", task=src, force=True, artifacts=[
        {"key": "out", "type": "custom", "mode": "output", "uri": "http://x/out"},
        {"key": "in", "type": "custom", "mode": "input", "uri": "http://x/in"},
    ])
    clearml_api.call("tasks.edit_hyper_params", task=src, hyperparams=[
        {"section": "General", "name": "train.lr", "value": "0.1"}])
    clone = clearml_api.call("tasks.clone", task=src, new_task_name=f"{unique_name}-clone")["id"]
    doc = clearml_api.task(clone)
    assert doc["status"] == "created"
    assert doc["parent"] == src
    assert "development" not in doc["system_tags"]
    assert [a["key"] for a in doc["execution"]["artifacts"]] == ["in"]
    assert doc["hyperparams"]["General"]["train.lr"]["value"] == "0.1"


def test_dotted_parameter_names_stay_flat(clearml_api: ApiClient, unique_name: str) -> None:
    task = clearml_api.call("tasks.create", name=unique_name, type="training")["id"]
    clearml_api.call("tasks.edit_hyper_params", task=task, hyperparams=[
        {"section": "Args", "name": "train.lr", "value": "0.5"}, {"section": "Args", "name": "epochs", "value": "3"}])
    clearml_api.call("tasks.delete_hyper_params", task=task, hyperparams=[{"section": "Args", "name": "epochs"}])
    params = clearml_api.call("tasks.get_hyper_params", tasks=[task])["params"][0]["hyperparams"]
    assert [(p["section"], p["name"], p["value"]) for p in params] == [("Args", "train.lr", "0.5")]


def test_get_all_filters(clearml_api: ApiClient, unique_name: str) -> None:
    project = clearml_api.call("projects.create", name=f"standin-tests/{unique_name}")["id"]
    a = clearml_api.call("tasks.create", name=f"Alpha-{unique_name}", type="training", project=project,
                         system_tags=["keep"])["id"]
    b = clearml_api.call("tasks.create", name=f"beta-{unique_name}", type="testing", project=project,
                         system_tags=["keep", "drop"])["id"]
    hidden = clearml_api.call("tasks.create", name=f"alpha-hidden-{unique_name}", type="training",
                              project=project, system_tags=["hidden"])["id"]

    def ids(**query: object) -> set[str]:
        return {t["id"] for t in clearml_api.call("tasks.get_all", project=[project], **query)["tasks"]}

    # a top-level pattern is case-sensitive (base.py RegexWrapper without flags); hidden tasks are left out
    assert ids(name="^Alpha") == {a}
    assert ids(name="^alpha") == set()
    assert ids(name="^alpha", search_hidden=True) == {hidden}
    assert ids(name="(?i)^alpha", search_hidden=True) == {a, hidden}  # inline flags reach the regex engine
    assert ids(_or_={"fields": ["name"], "pattern": "^ALPHA"}, search_hidden=True) == {a, hidden}  # _or_ ignores case
    assert ids(id=[hidden]) == {hidden}
    assert ids(system_tags=["keep", "-drop"]) == {a}
    assert ids(type=["testing"]) == {b}
    only = clearml_api.call("tasks.get_all", id=[a], only_fields=["name", "execution.queue", "status"])["tasks"][0]
    assert only["name"] == f"Alpha-{unique_name}" and only["status"] == "created"
    assert "script" not in only and "hyperparams" not in only
    ordered = clearml_api.call("tasks.get_all", project=[project], order_by=["-name"], only_fields=["name"])["tasks"]
    assert [t["name"] for t in ordered] == sorted((t["name"] for t in ordered), reverse=True)


def test_ndjson_event_batch_and_scalar_reads(clearml_api: ApiClient, unique_name: str) -> None:
    task = clearml_api.call("tasks.create", name=unique_name, type="training")["id"]
    clearml_api.call("tasks.started", task=task)
    lines = [json.dumps({"type": "training_stats_scalar", "task": task, "metric": "loss", "variant": "train",
                         "iter": i, "value": 1.0 / (i + 1), "timestamp": int(time.time() * 1000)}) for i in range(3)]
    lines.append(json.dumps({"type": "log", "task": task, "msg": "hello", "level": "info",
                             "timestamp": int(time.time() * 1000)}))
    headers = {"Authorization": f"Bearer {clearml_api._token or clearml_api._login()}"}
    url = f"{clearml_api.endpoint.api_host}/events.add_batch"
    res = clearml_api.http.post(url, data="\n".join(lines[:3]), headers=headers, timeout=10)
    assert res.status_code == 200, res.text
    assert res.json()["data"]["added"] == 3
    single = clearml_api.http.post(url, data=lines[3], headers=headers, timeout=10)  # a one-line batch
    assert single.status_code == 200, single.text
    assert single.json()["data"]["added"] == 1
    hist = clearml_api.call("events.scalar_metrics_iter_histogram", task=task)
    assert hist["loss"]["train"]["x"] == [0, 1, 2]
    assert hist["loss"]["train"]["y"] == pytest.approx([1.0, 0.5, 1 / 3])
    log = clearml_api.call("events.get_task_log", task=task, batch_size=10)
    assert [e["msg"] for e in log["events"]] == ["hello"]
    doc = clearml_api.task(task)
    assert doc["last_iteration"] == 2
    last = [v for m in doc["last_metrics"].values() for v in m.values()]
    assert last[0]["value"] == pytest.approx(1 / 3) and last[0]["min_value"] == pytest.approx(1 / 3)


def test_fileserver_upload_and_download(clearml_server: ClearMLEndpoint, unique_name: str) -> None:
    payload = bytes(range(256)) * 10
    path = f"standin-tests/{unique_name}/blob.bin"
    up = requests.post(f"{clearml_server.files_host}/", files={path: (path, payload)}, timeout=10)
    assert up.status_code == 200, up.text
    down = requests.get(f"{clearml_server.files_host}/{path}", timeout=10)
    assert down.status_code == 200 and down.content == payload
    assert requests.get(f"{clearml_server.files_host}/standin-tests/{unique_name}/missing", timeout=10).status_code == 404


def test_starts_in_process_in_under_two_seconds() -> None:
    started = time.monotonic()
    with StandinServer() as server:
        assert requests.get(f"{server.api_host}/debug.ping", timeout=5).status_code == 200
        assert time.monotonic() - started < 2.0


def test_starts_by_hand_from_the_command_line() -> None:
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "tests.standin", "--port", "0"], stdout=subprocess.PIPE,
                            text=True, start_new_session=True, cwd=PROJECT_ROOT)
    try:
        first = proc.stdout.readline()
        assert first.startswith("export CLEARML_API_HOST=http://127.0.0.1:")
        api_host = first.strip().split("=", 1)[1]
        assert requests.get(f"{api_host}/debug.ping", timeout=5).status_code == 200
        assert time.monotonic() - started < 5.0  # interpreter start-up included
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
