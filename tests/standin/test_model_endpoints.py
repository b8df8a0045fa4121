"""models.* (and the project/tag rules they share) as clearml-server v1.17.0 answers them.

References (apiserver/): services/models.py (``edit``, ``_update_model``, ``set_ready``, ``publish_many``,
metadata endpoints), bll/model/__init__.py (``ModelBLL.publish_model``), database/model/model.py
(``user_set_allowed`` fields), apimodels/metadata.py and apimodels/batch.py (request validation),
services/utils.py (``process_include_subprojects``, ``validate_tags``), services/projects.py (``get_all_ex``),
bll/project/sub_projects.py (``_ensure_project``), database/model/base.py (top-level patterns are case-sensitive).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.standin import query
from tests.standin.client import ApiClient, refusal
from tests.standin.fixtures import *  # noqa: F401,F403 (pytest fixtures)
from tests.standin.fixtures import SdkRunner
from tests.standin.server import StandinServer
from tests.standin.state import COMPANY

SCRIPTS = Path(__file__).parent / "scripts"
TICK = 0.02  # the server keeps milliseconds: sleep so that a moved timestamp differs


def _model(api: ApiClient, **fields: Any) -> str:
    body = {"name": f"model-{uuid.uuid4().hex[:8]}", "uri": "file:///tmp/model.pt", **fields}
    return api.call("models.create", **body)["id"]


def _get(api: ApiClient, model_id: str) -> dict[str, Any]:
    return api.call("models.get_by_id", model=model_id)["model"]


def _task(api: ApiClient, status: str = "created", **fields: Any) -> str:
    task = api.call("tasks.create", name=f"task-{uuid.uuid4().hex[:8]}", type="training", **fields)["id"]
    if status != "created":
        api.call("tasks.started", task=task)
        api.call(f"tasks.{status}", task=task)
    assert api.task(task)["status"] == status
    return task


# --- 1. models.update keeps only user-settable fields; models.edit takes the create fields -----------

def test_update_drops_fields_that_are_not_user_settable(standin: StandinServer, clearml_api: ApiClient) -> None:
    parent = _model(clearml_api)
    model = _model(clearml_api, ready=False, framework="PyTorch", design={"net": "unet"}, labels={"bg": 0})
    res = clearml_api.call("models.update", model=model, name="renamed", comment="new comment", ready=True,
                           framework="Keras", design={"net": "other"}, labels={"fg": 1}, parent=parent)
    assert res["updated"] == 1
    assert {"name", "comment", "last_change"} <= set(res["fields"])
    assert not {"ready", "framework", "design", "labels", "parent"} & set(res["fields"])
    doc = _get(clearml_api, model)
    assert (doc["name"], doc["comment"]) == ("renamed", "new comment")
    assert (doc["ready"], doc["framework"], doc["design"], doc["labels"], doc["parent"]) == \
        (False, "PyTorch", {"net": "unet"}, {"bg": 0}, None)
    # nothing user-settable: nothing written
    assert clearml_api.call("models.update", model=model, ready=True, framework="Keras") == {"updated": 0, "fields": {}}
    assert _get(clearml_api, model)["ready"] is False


def test_edit_takes_the_create_fields_including_ready(clearml_api: ApiClient) -> None:
    parent = _model(clearml_api)
    model = _model(clearml_api, ready=False)
    res = clearml_api.call("models.edit", model=model, ready=True, framework="Keras", design={"net": "x"},
                           labels={"fg": 1}, parent=parent)
    assert res["updated"] == 1
    doc = _get(clearml_api, model)
    assert (doc["ready"], doc["framework"], doc["design"], doc["labels"], doc["parent"]) == \
        (True, "Keras", {"net": "x"}, {"fg": 1}, parent)


def test_edit_refuses_unknown_references(standin: StandinServer, clearml_api: ApiClient) -> None:
    model = _model(clearml_api)
    for field, kind in (("task", "Task"), ("project", "Project"), ("parent", "Model")):
        status, code, sub, msg, data = refusal(clearml_api, "models.edit", model=model, **{field: "nope"})
        assert (status, code, sub) == (400, 400, 16)
        assert msg == f"Invalid value for fields (expecting {kind} id): id=nope, field={field}"


# --- 2. last_update moves only for uri/framework/design/labels/ready/metadata/system_tags/tags ---------

@pytest.mark.parametrize(("endpoint", "change", "moves"), [
    ("models.edit", {"comment": "c"}, False),
    ("models.edit", {"name": "other-name"}, False),
    ("models.edit", {"tags": ["t"]}, True),
    ("models.edit", {"system_tags": ["s"]}, True),
    ("models.edit", {"uri": "file:///tmp/other.pt"}, True),
    ("models.edit", {"framework": "Keras"}, True),
    ("models.edit", {"metadata": {"k": {"key": "k", "type": "str", "value": "v"}}}, True),
    ("models.update", {"comment": "c"}, False),
    ("models.update", {"name": "other-name"}, False),
    ("models.update", {"tags": ["t"]}, True),
    ("models.update", {"uri": "file:///tmp/other.pt"}, True),
])
def test_last_update_moves_only_for_some_fields(clearml_api: ApiClient, endpoint: str, change: dict[str, Any],
                                                moves: bool) -> None:
    model = _model(clearml_api)
    before = _get(clearml_api, model)
    time.sleep(TICK)
    clearml_api.call(endpoint, model=model, **change)
    after = _get(clearml_api, model)
    assert query.parse_time(after["last_change"]) > query.parse_time(before["last_change"])
    assert (after["last_update"] != before["last_update"]) is moves


# --- 3. iteration goes to the task's statistics ---------------------------------------------------------

def test_edit_iteration_updates_the_models_task(clearml_api: ApiClient) -> None:
    task = _task(clearml_api)
    model = _model(clearml_api, task=task)
    before = clearml_api.task(task)
    time.sleep(TICK)
    assert clearml_api.call("models.edit", model=model, iteration=7) == {"updated": 0}  # no model field sent
    after = clearml_api.task(task)
    assert after["last_iteration"] == 7 and after["last_update"] != before["last_update"]
    assert _get(clearml_api, model).get("last_iteration", 0) == 0
    clearml_api.call("models.edit", model=model, iteration=3, comment="x")
    assert clearml_api.task(task)["last_iteration"] == 7  # only grows
    # models.update: only with a task in the request
    other = _task(clearml_api)
    clearml_api.call("models.update", model=model, task=other, iteration=5)
    assert clearml_api.task(other)["last_iteration"] == 5
    assert _get(clearml_api, model)["task"] == task  # task is not user-settable


# --- 4. metadata on edit must be an object ----------------------------------------------------------------

def test_edit_metadata_must_be_an_object(standin: StandinServer, clearml_api: ApiClient) -> None:
    model = _model(clearml_api, metadata={"a": {"key": "a", "type": "str", "value": "1"}})
    items = [{"key": "b", "type": "str", "value": "2"}]
    for endpoint in ("models.edit", "models.update"):
        status, code, sub, msg, _ = refusal(clearml_api, endpoint, model=model, metadata=items)
        assert (status, code, sub, msg) == (500, 500, 0, "'list' object has no attribute 'items'")
    assert set(_get(clearml_api, model)["metadata"]) == {"a"}
    clearml_api.call("models.edit", model=model, metadata={"b": items[0]})
    assert _get(clearml_api, model)["metadata"] == {"b": items[0]}  # the object replaces all metadata
    status, code, sub, msg, _ = refusal(clearml_api, "models.create", name="with-list", uri="file:///x", metadata=items)
    assert (status, code, sub) == (400, 400, 12) and msg.startswith("Validation error (error for field 'metadata'")


# --- 5. metadata endpoints move last_update and validate their items ------------------------------------

def test_metadata_endpoints_move_last_update(clearml_api: ApiClient) -> None:
    model = _model(clearml_api)
    before = _get(clearml_api, model)
    time.sleep(TICK)
    clearml_api.call("models.add_or_update_metadata", model=model, metadata=[{"key": "k", "type": "str", "value": "v"}])
    added = _get(clearml_api, model)
    assert added["metadata"] == {"k": {"key": "k", "type": "str", "value": "v"}}
    assert added["last_update"] != before["last_update"] and added["last_change"] != before["last_change"]
    time.sleep(TICK)
    assert clearml_api.call("models.delete_metadata", model=model, keys=["k", "missing"]) == {"updated": 1}
    deleted = _get(clearml_api, model)
    assert deleted["metadata"] == {} and deleted["last_update"] != added["last_update"]


MISSING_TYPE = "Validation error (error for field 'metadata': (\"error for field 'type'.\", validationerror('field is required!')).)"


@pytest.mark.parametrize(("endpoint", "body", "msg"), [
    ("models.add_or_update_metadata", {"metadata": []},
     "Validation error (error for field 'metadata': value '[]' length is lower than allowed minimum '1'..)"),
    ("models.add_or_update_metadata", {},
     "Validation error (error for field 'metadata'. value '[]' length is lower than allowed minimum '1'.)"),
    ("models.add_or_update_metadata", {"metadata": [{"key": "k", "value": "v"}]}, MISSING_TYPE),
    ("models.add_or_update_metadata", {"metadata": [{"key": "k", "type": "int", "value": 1}]},
     "Validation error (error for field 'metadata': error for field 'value': ('value is wrong, expected type \"str\"', 1)..)"),
    ("models.add_or_update_metadata", {"metadata": ["k"]},
     "Validation error (apiserver.apimodels.metadata.MetadataItem() argument after ** must be a mapping, not str)"),
    ("models.add_or_update_metadata", {"metadata": {"k": {"key": "k", "type": "str", "value": "v"}}},
     "Validation error (error for field 'metadata': ('value is wrong, expected type \"list\"', "
     "{'k': {'key': 'k', 'type': 'str', 'value': 'v'}}).)"),
    ("models.delete_metadata", {"keys": []},
     "Validation error (error for field 'keys': value '[]' length is lower than allowed minimum '1'..)"),
])
def test_metadata_endpoints_validate_their_items(standin: StandinServer, clearml_api: ApiClient, endpoint: str,
                                                 body: dict[str, Any], msg: str) -> None:
    model = _model(clearml_api, metadata={"a": {"key": "a", "type": "str", "value": "1"}})
    before = _get(clearml_api, model)
    assert refusal(clearml_api, endpoint, model=model, **body)[:4] == (400, 400, 12, msg)
    assert _get(clearml_api, model) == before


# --- 6./7. set_ready ----------------------------------------------------------------------------------------

def test_set_ready_on_a_ready_model_is_refused(standin: StandinServer, clearml_api: ApiClient) -> None:
    model = _model(clearml_api)  # models.create makes ready models by default
    status, code, sub, msg, data = refusal(clearml_api, "models.set_ready", model=model)
    assert (status, code, sub) == (400, 400, 203)
    assert msg == f"Model is ready: company={COMPANY}, model={model}" and data == {"company": COMPANY, "model": model}


def test_set_ready_publishes_the_task_first_and_leaves_the_model_if_that_fails(standin: StandinServer,
                                                                              clearml_api: ApiClient) -> None:
    task = _task(clearml_api)  # created: cannot be published
    model = _model(clearml_api, task=task, ready=False)
    before = _get(clearml_api, model)
    status, code, sub, msg, _ = refusal(clearml_api, "models.set_ready", model=model)
    assert (status, code, sub) == (400, 400, 110)
    assert msg == "Invalid task status (Invalid status change): current_status=created, new_status=published"
    assert _get(clearml_api, model) == before and clearml_api.task(task)["status"] == "created"
    # forced: the task is published whatever its status, then the model
    res = clearml_api.call("models.set_ready", model=model, force_publish_task=True)
    assert res["updated"] == 1 and res["published_task"]["id"] == task
    assert res["published_task"]["data"]["fields"]["status"] == "published"
    assert clearml_api.task(task)["status"] == "published" and _get(clearml_api, model)["ready"] is True


def test_set_ready_publishes_a_completed_task(clearml_api: ApiClient) -> None:
    task = _task(clearml_api, "completed")
    model = _model(clearml_api, task=task, ready=False)
    res = clearml_api.call("models.set_ready", model=model)
    assert res["published_task"]["id"] == task
    assert clearml_api.task(task)["status"] == "published" and _get(clearml_api, model)["ready"] is True
    # a published task is left alone
    second = _model(clearml_api, task=task, ready=False)
    assert clearml_api.call("models.set_ready", model=second) == {"updated": 1}


def test_set_ready_without_publish_task_ignores_the_task(clearml_api: ApiClient) -> None:
    task = _task(clearml_api)
    model = _model(clearml_api, task=task, ready=False)
    before = _get(clearml_api, model)
    time.sleep(TICK)
    assert clearml_api.call("models.set_ready", model=model, publish_task=False) == {"updated": 1}
    after = _get(clearml_api, model)
    assert after["ready"] is True and after["last_update"] != before["last_update"]
    assert clearml_api.task(task)["status"] == "created"


def test_task_publish_publishes_its_last_output_model_only(clearml_api: ApiClient) -> None:
    task = _task(clearml_api)  # output models are added while the task is created or running, not once completed
    first, last = _model(clearml_api, ready=False), _model(clearml_api, ready=False)
    for name, model in (("first", first), ("last", last)):
        clearml_api.call("tasks.add_or_update_model", task=task, type="output", name=name, model=model)
    clearml_api.call("tasks.started", task=task)
    clearml_api.call("tasks.completed", task=task)
    clearml_api.call("tasks.publish", task=task)
    assert (_get(clearml_api, first)["ready"], _get(clearml_api, last)["ready"]) == (False, True)


# --- 8. publish_many ------------------------------------------------------------------------------------------

def test_publish_many_reports_each_id(standin: StandinServer, clearml_api: ApiClient) -> None:
    stopped = _task(clearml_api, "stopped")
    fresh = _model(clearml_api, task=stopped, ready=False)
    ready = _model(clearml_api)
    res = clearml_api.call("models.publish_many", ids=[fresh, ready, "no-such-model"])
    [ok] = res["succeeded"]
    assert ok["id"] == fresh and ok["updated"] is True and ok["published_task"]["id"] == stopped
    assert [(f["id"], f["error"]["codes"]) for f in res["failed"]] == [(ready, [400, 203]), ("no-such-model", [400, 201])]
    assert res["failed"][0]["error"]["msg"] == f"Model is ready: company={COMPANY}, model={ready}"
    assert res["failed"][0]["error"]["data"] == {"company": COMPANY, "model": ready}
    assert clearml_api.task(stopped)["status"] == "published" and _get(clearml_api, fresh)["ready"] is True
    unpublished = _model(clearml_api, ready=False)
    res = clearml_api.call("models.publish_many", ids=[unpublished], publish_task=False)
    assert res == {"succeeded": [{"id": unpublished, "updated": True, "published_task": None}], "failed": []}
    assert refusal(clearml_api, "models.publish_many", ids=[])[:4] == (
        400, 400, 12, "Validation error (error for field 'ids': value '[]' length is lower than allowed minimum '1'..)")


# --- 9./10. get_all: include_subprojects, no hidden filter for models ---------------------------------------

def test_include_subprojects_adds_every_descendant(clearml_api: ApiClient, unique_name: str) -> None:
    root = f"standin-tests/{unique_name}"
    ids = {name: clearml_api.call("projects.create", name=f"{root}/{name}")["id"] for name in ("a", "a/b/c", "other")}
    ids["a/b"] = clearml_api.call("projects.get_all", name=f"^{root}/a/b$")["projects"][0]["id"]
    models = {name: _model(clearml_api, project=pid) for name, pid in ids.items()}
    tasks = {name: clearml_api.call("tasks.create", name=name, type="training", project=pid)["id"] for name, pid in ids.items()}

    def found(endpoint: str, key: str, **body: Any) -> set[str]:
        return {d["id"] for d in clearml_api.call(endpoint, only_fields=["id"], **body)[key]}

    for endpoint, key, made in (("models.get_all", "models", models), ("models.get_all_ex", "models", models),
                                ("tasks.get_all", "tasks", tasks), ("tasks.get_all_ex", "tasks", tasks)):
        assert found(endpoint, key, project=[ids["a"]]) == {made["a"]}
        assert found(endpoint, key, project=[ids["a"]], include_subprojects=True) == {made["a"], made["a/b"], made["a/b/c"]}
        assert found(endpoint, key, project=ids["a/b"], include_subprojects=True) == {made["a/b"], made["a/b/c"]}
        assert found(endpoint, key, project=[ids["other"]], include_subprojects=True) == {made["other"]}


def test_models_have_no_hidden_filter(clearml_api: ApiClient, unique_name: str) -> None:
    project = clearml_api.call("projects.create", name=f"standin-tests/{unique_name}")["id"]
    hidden = _model(clearml_api, project=project, system_tags=["hidden"])
    assert [m["id"] for m in clearml_api.call("models.get_all", project=[project])["models"]] == [hidden]
    task = clearml_api.call("tasks.create", name="t", type="training", project=project, system_tags=["hidden"])["id"]
    assert clearml_api.call("tasks.get_all", project=[project])["tasks"] == []  # tasks have one
    assert [t["id"] for t in clearml_api.call("tasks.get_all", project=[project], search_hidden=True)["tasks"]] == [task]


# --- 11./12. projects --------------------------------------------------------------------------------------------

def test_auto_created_parents_get_no_system_tags(standin: StandinServer, clearml_api: ApiClient, unique_name: str) -> None:
    root = f"standin-tests/{unique_name}"
    clearml_api.call("projects.create", name=f"{root}/.datasets/cases", system_tags=["hidden"])
    projects = {p["name"]: p for p in clearml_api.call("projects.get_all", name=f"^{root}", search_hidden=True)["projects"]}
    assert {name: p["system_tags"] for name, p in projects.items()} == {
        root: [], f"{root}/.datasets": [], f"{root}/.datasets/cases": ["hidden"]}
    visible = {p["name"] for p in clearml_api.call("projects.get_all", name=f"^{root}")["projects"]}
    assert visible == {root, f"{root}/.datasets"}
    status, code, sub, msg, _ = refusal(clearml_api, "projects.create", name=f"{root}//.datasets/")
    assert (status, code, sub) == (400, 400, 801)
    assert msg == f"Project with the same name already exists: name={root}/.datasets, company={COMPANY}"


def test_get_all_ex_marks_hidden_projects(clearml_api: ApiClient, unique_name: str) -> None:
    root = f"standin-tests/{unique_name}"
    clearml_api.call("projects.create", name=f"{root}/.pipelines/run", system_tags=["hidden"])
    name = f"^{root}/"

    def projects(endpoint: str, **body: Any) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in clearml_api.call(endpoint, name=name, **body)["projects"]}

    marked = projects("projects.get_all_ex", search_hidden=True, only_fields=["id", "name"])
    assert marked[f"{root}/.pipelines/run"]["hidden"] is True and "hidden" not in marked[f"{root}/.pipelines"]
    assert all("system_tags" not in p for p in marked.values())  # read for the mark, then dropped
    full = projects("projects.get_all_ex", search_hidden=True)
    assert full[f"{root}/.pipelines/run"]["hidden"] is True and full[f"{root}/.pipelines/run"]["system_tags"] == ["hidden"]
    assert all("hidden" not in p for p in projects("projects.get_all", search_hidden=True).values())
    assert set(projects("projects.get_all_ex")) == {f"{root}/.pipelines"}
    top = clearml_api.call("projects.get_all", name=f"^{root}$")["projects"][0]["id"]
    for endpoint in ("projects.get_all", "projects.get_all_ex"):
        shallow = clearml_api.call(endpoint, parent=[top], shallow_search=True, search_hidden=True)["projects"]
        assert [p["name"] for p in shallow] == [f"{root}/.pipelines"]


# --- 13. tags that look like query operators ------------------------------------------------------------------------

@pytest.mark.parametrize(("endpoint", "body"), [
    ("models.create", {"name": "m", "uri": "file:///m", "system_tags": ["__$all"]}),
    ("models.edit", {"tags": ["ok", "__$not"]}),
    ("models.update", {"tags": ["__$not"]}),
    ("tasks.create", {"name": "t", "type": "training", "tags": ["__$or"]}),
    ("tasks.edit", {"tags": ["__$or"]}),
    ("tasks.clone", {"new_task_tags": ["__$or"]}),
    ("projects.create", {"name": "standin-tests/tag-prefix", "tags": ["__$and"]}),
    ("queues.create", {"name": "q-tag-prefix", "system_tags": ["__$and"]}),
])
def test_operator_tag_prefix_is_refused(standin: StandinServer, clearml_api: ApiClient, endpoint: str,
                                        body: dict[str, Any]) -> None:
    target: dict[str, Any] = {}
    if endpoint.startswith("models.") and endpoint != "models.create":
        target = {"model": _model(clearml_api)}
    elif endpoint in ("tasks.edit", "tasks.clone"):
        target = {"task": _task(clearml_api)}
    status, code, sub, msg, data = refusal(clearml_api, endpoint, **target, **body)
    bad = [t for values in body.values() if isinstance(values, list) for t in values if t.startswith("__$")]
    assert (status, code, sub) == (400, 400, 16)
    assert msg == f"Invalid value for fields (unsupported tag prefix): values=({', '.join(bad)})" and data == {"values": bad}


def test_system_tags_alone_are_not_checked_on_edit(clearml_api: ApiClient) -> None:
    """``conform_tag_fields`` validates only when ``tags`` is in the request (models.create always has it)."""
    model = _model(clearml_api)
    clearml_api.call("models.edit", model=model, system_tags=["__$odd"])
    assert _get(clearml_api, model)["system_tags"] == ["__$odd"]


# --- 14. top-level name patterns are case-sensitive ---------------------------------------------------------------

def test_name_pattern_is_case_sensitive(clearml_api: ApiClient, unique_name: str) -> None:
    model = _model(clearml_api, name=f"Mixed-{unique_name}")

    def found(**body: Any) -> list[str]:
        return [m["id"] for m in clearml_api.call("models.get_all", only_fields=["id"], **body)["models"]]

    assert found(name=f"^Mixed-{unique_name}$") == [model]
    assert found(name=f"^mixed-{unique_name}$") == []
    assert found(_or_={"fields": ["name"], "pattern": f"^mixed-{unique_name}$"}) == [model]
    assert query.run([{"id": "x", "name": "Alpha"}], {"name": "alpha"}, query.MODELS)[0] == []


# --- the real SDK: Model.publish, the tags setter, set_metadata, query_models -------------------------------------

@pytest.mark.integration
def test_sdk_model_calls(standin: StandinServer, clearml_api: ApiClient, sdk: SdkRunner, unique_name: str) -> None:
    project = clearml_api.call("projects.create", name=f"standin-tests/{unique_name}")["id"]
    task = _task(clearml_api, project=project)  # created: the SDK's publish must not try to publish it
    name = f"Mixed-Case-{unique_name}"
    model = _model(clearml_api, name=name, project=project, task=task, ready=False)
    before = _get(clearml_api, model)
    failed_before = len(standin.state.failed_calls)
    run = sdk.run_json(SCRIPTS / "model_sdk.py", model, name)
    failed = standin.state.failed_calls[failed_before:]
    assert run["published_before"] is False and run["published"] is True
    assert clearml_api.task(task)["status"] == "created"
    assert run["tags"] == ["production"]
    assert run["metadata"] == {"score": {"key": "score", "type": "float", "value": "0.9"}}
    assert run["refused"] and "unsupported tag prefix" in run["refused"]
    assert run["exact"] == [model] and run["other_case"] == [] and run["published_only"] == [model]
    after = _get(clearml_api, model)
    assert after["tags"] == ["production"] and after["ready"] is True
    assert query.parse_time(after["last_update"]) > query.parse_time(before["last_update"])
    assert [f.split(":")[0] for f in failed] == ["models.edit"] and "400/16" in failed[0]  # the only refusal
