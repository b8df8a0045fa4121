"""Refusals and merges the stand-in shares with clearml-server v1.17.0, for calls the product, SDK and web UI make.

References (apiserver/): services/pipelines.py (``start_pipeline``, ``_update_task_name``), bll/task/task_bll.py
(``TaskBLL.clone_task``: ``hyperparams_overrides``, the parent, ``x or source.x``), bll/task/task_operations.py
(``enqueue_task``), bll/task/utils.py (``ChangeStatusRequest``, the state machine, ``get_task_for_update``),
services/tasks.py (``add_or_update_model``/``delete_models`` with ``force=True``, ``edit``), bll/queue/queue_bll.py
(``create``, ``add_task``), bll/event/event_bll.py (``add_events``), services/events.py (``add_batch``),
bll/model/__init__.py (``ModelBLL.publish_model``), database/model/{project,queue,model}.py (``min_length=3``),
database/errors.py (mongoengine validation as 400/800), database/model/base.py (list-field operators),
apimodels/{pipelines,tasks}.py and service_repo/validators.py (request validation as 400/12).
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.standin.client import ApiClient, refusal
from tests.standin.fixtures import *  # noqa: F401,F403 (pytest fixtures)
from tests.standin.fixtures import SdkRunner
from tests.standin.server import StandinServer
from tests.standin.state import COMPANY

SCRIPTS = Path(__file__).parent / "scripts"
TICK = 0.02  # the server keeps milliseconds: sleep so that a moved timestamp differs
TOO_SHORT = ("Data validation error: name=String value is too short", {"name": "String value is too short"})


def _task(api: ApiClient, status: str = "created", **fields: Any) -> str:
    """A task in ``status`` reached through the state machine."""
    task = api.call("tasks.create", name=f"task-{uuid.uuid4().hex[:8]}", type="training", **fields)["id"]
    path = {"created": [], "in_progress": ["started"], "completed": ["started", "completed"],
            "stopped": ["started", "stopped"], "failed": ["started", "failed"],
            "closed": ["started", "stopped", "close"], "published": ["started", "completed", "publish"]}[status]
    for action in path:
        api.call(f"tasks.{action}", task=task)
    assert api.task(task)["status"] == status
    return task


def _queue(api: ApiClient) -> str:
    return api.call("queues.create", name=f"q-strict-{uuid.uuid4().hex[:8]}")["id"]


def _run_copy(sdk: SdkRunner, script: str, *args: str) -> Any:
    """Run a script of ``scripts/`` copied next to the runner's logs, outside any git checkout (so ``Task.init``
    records no repository), and return its JSON line."""
    return sdk.run_json(shutil.copy(SCRIPTS / script, sdk.logdir / script), *args)


def _entries(api: ApiClient, queue: str) -> list[str]:
    return [e["task"] for e in api.call("queues.get_by_id", queue=queue)["queue"]["entries"]]


# --- 1. pipelines.start_pipeline: clone, merge Args, name the run, enqueue ------------------------------------

def _draft(api: ApiClient, root: str, name: str) -> tuple[str, str]:
    """A pipeline draft as the SDK leaves it: a controller task named like its ``.pipelines/<name>`` project."""
    project = api.call("projects.create", name=f"{root}/.pipelines/{name}", system_tags=["hidden"])["id"]
    draft = api.call("tasks.create", name=name, type="controller", project=project,
                     system_tags=["pipeline", "hidden"], tags=["nightly"])["id"]
    api.call("tasks.edit_hyper_params", task=draft, hyperparams=[
        {"section": "Args", "name": "epochs", "value": "5", "type": "int", "description": "training epochs"},
        {"section": "Args", "name": "lr", "value": "0.1", "type": "float"},
        {"section": "Args", "name": "train.batch", "value": "2"},
        {"section": "pipeline", "name": "version", "value": "1.0.0"},
    ])
    return project, draft


def test_start_pipeline_merges_args_names_the_run_and_enqueues(standin: StandinServer, clearml_api: ApiClient,
                                                               unique_name: str) -> None:
    project, draft = _draft(clearml_api, f"standin-tests/{unique_name}", "nightly-pipe")
    queue = _queue(clearml_api)
    before = clearml_api.task(draft)
    res = clearml_api.call("pipelines.start_pipeline", task=draft, queue=queue,
                           args=[{"name": "lr", "value": "0.5"}, {"name": "seed", "value": "7"}])
    assert res == {"pipeline": res["pipeline"], "enqueued": True}  # queue_watched only with verify_watched_queue
    run = clearml_api.task(res["pipeline"])
    args = run["hyperparams"]["Args"]
    assert args["epochs"] == before["hyperparams"]["Args"]["epochs"]  # not sent: the draft's item, type and all
    assert args["train.batch"]["value"] == "2"
    assert args["lr"] == {"section": "Args", "name": "lr", "value": "0.5"}  # a sent item replaces the whole item
    assert args["seed"] == {"section": "Args", "name": "seed", "value": "7"}
    assert run["hyperparams"]["pipeline"] == before["hyperparams"]["pipeline"]
    assert run["name"] == "nightly-pipe #2"  # the draft and this run match "<project basename>( #n)?$"
    assert (run["parent"], run["project"], run["type"]) == (draft, project, "controller")
    assert run["system_tags"] == ["pipeline", "hidden"] and run["tags"] == ["nightly"]
    assert (run["status"], run["status_message"], run["status_reason"]) == ("queued", "Starting pipeline", "")
    assert run["execution"]["queue"] == queue and run["enqueue_status"] == "created"
    assert _entries(clearml_api, queue) == [run["id"]]
    assert clearml_api.task(draft)["hyperparams"] == before["hyperparams"]  # the draft is left alone
    assert clearml_api.task(draft)["name"] == "nightly-pipe"

    second = clearml_api.call("pipelines.start_pipeline", task=draft, queue=queue, verify_watched_queue=True)
    assert second["queue_watched"] is False
    second_run = clearml_api.task(second["pipeline"])
    assert second_run["name"] == "nightly-pipe #3"
    assert second_run["hyperparams"] == before["hyperparams"]  # no args: the draft's parameters unchanged


def test_start_pipeline_counts_only_pipeline_tasks_of_the_project(standin: StandinServer, clearml_api: ApiClient,
                                                                  unique_name: str) -> None:
    project, draft = _draft(clearml_api, f"standin-tests/{unique_name}", "counted")
    clearml_api.call("tasks.create", name="counted #9", type="controller", project=project)  # no pipeline tag
    clearml_api.call("tasks.create", name="counted-v2", type="controller", project=project, system_tags=["pipeline"])
    clearml_api.call("tasks.create", name="pre-counted", type="controller", project=project, system_tags=["pipeline"])
    clearml_api.call("tasks.create", name="counted #4", type="controller", project=project,
                     system_tags=["pipeline", "archived"])
    res = clearml_api.call("pipelines.start_pipeline", task=draft, queue=_queue(clearml_api))
    # the draft, "pre-counted" (a MongoDB regex search: not anchored at the start), "counted #4" (archived ones
    # count too) and the run itself; a number in a name is not the next number
    assert clearml_api.task(res["pipeline"])["name"] == "counted #4"


def test_start_pipeline_validates_like_the_real_request_model(standin: StandinServer, clearml_api: ApiClient,
                                                              unique_name: str) -> None:
    _, draft = _draft(clearml_api, f"standin-tests/{unique_name}", "validated")
    queue = _queue(clearml_api)
    tasks_before = len(standin.state.tasks)
    cases = [
        ({"task": draft}, "Validation error (error for field 'queue'. field is required!)"),
        ({"queue": queue}, "Validation error (error for field 'task'. field is required!)"),
        ({"task": draft, "queue": queue, "args": [{"name": "lr"}]},
         "Validation error (error for field 'args': (\"error for field 'value'.\", validationerror('field is required!')).)"),
        ({"task": draft, "queue": queue, "args": [{"name": "lr", "value": 5}]},
         "Validation error (error for field 'args': error for field 'value': ('value is wrong, expected type \"str\"', 5)..)"),
        ({"task": draft, "queue": queue, "args": [{"name": "", "value": "5"}]},
         "Validation error (Empty parameter name is not allowed)"),
    ]
    for body, msg in cases:
        assert refusal(clearml_api, "pipelines.start_pipeline", **body)[:4] == (400, 400, 12, msg)
    assert len(standin.state.tasks) == tasks_before  # refused before anything was cloned
    # an unknown queue: the run exists (cloned, renamed) but stays a draft, as on the real server
    status, code, sub, msg, _ = refusal(clearml_api, "pipelines.start_pipeline", task=draft, queue="no-such-queue")
    assert (status, code, sub, msg) == (400, 400, 701, f"Invalid queue id: id=no-such-queue, company={COMPANY}")
    [run] = [t for t in standin.state.tasks.values() if t["parent"] == draft]
    assert (run["status"], run["status_reason"], run["name"]) == ("created", "failed enqueueing", "validated #2")


@pytest.mark.integration
def test_ui_run_of_an_sdk_draft_keeps_the_parameters_it_did_not_send(standin: StandinServer, clearml_api: ApiClient,
                                                                     sdk: SdkRunner, unique_name: str) -> None:
    """The web UI's "Run" dialog sends only the edited pipeline parameters; the others keep the draft's values."""
    name, steps = f"ui-run-{uuid.uuid4().hex[:6]}", f"q-steps-{uuid.uuid4().hex[:8]}"
    clearml_api.call("queues.create", name=steps)
    created = _run_copy(sdk, "pipeline_draft.py", f"standin-tests/{unique_name}", name, steps)
    draft = clearml_api.task(created["draft"])
    assert draft["status"] == "created" and "pipeline" in draft["system_tags"] and draft["name"] == name
    draft_args = {k: v["value"] for k, v in draft["hyperparams"]["Args"].items()}
    assert draft_args == {"epochs": "5", "lr": "0.1", "dataset": "brain-mri"}
    queue = _queue(clearml_api)
    res = clearml_api.call("pipelines.start_pipeline", task=draft["id"], queue=queue,
                           args=[{"name": "lr", "value": "0.25"}])
    run = clearml_api.task(res["pipeline"])
    assert {k: v["value"] for k, v in run["hyperparams"]["Args"].items()} == {**draft_args, "lr": "0.25"}
    assert run["hyperparams"]["Args"]["epochs"] == draft["hyperparams"]["Args"]["epochs"]  # description kept
    assert run["configuration"] == draft["configuration"]  # the pipeline's step graph is cloned as it is
    assert run["name"] == f"{name} #2" and run["parent"] == draft["id"] and run["project"] == draft["project"]
    assert run["status"] == "queued" and _entries(clearml_api, queue) == [run["id"]]


# --- 2. get_all list operators: __$all and __$not, as Dataset.get sends them ---------------------------------

def test_all_and_not_tag_operators(clearml_api: ApiClient, unique_name: str) -> None:
    project = clearml_api.call("projects.create", name=f"standin-tests/{unique_name}")["id"]
    made = {key: clearml_api.call("tasks.create", name=f"{key}-{unique_name}", type="data_processing",
                                  project=project, system_tags=system_tags, tags=tags)["id"]
            for key, system_tags, tags in (("plain", ["dataset"], ["a", "b"]), ("archived", ["dataset", "archived"], ["a"]),
                                           ("other", ["other"], ["b"]), ("both", ["dataset", "other"], []))}

    def found(**query: Any) -> set[str]:
        ids = {t["id"] for t in clearml_api.call("tasks.get_all", project=[project], **query)["tasks"]}
        return {key for key, task in made.items() if task in ids}

    assert found(system_tags=["__$all", "dataset", "__$not", "archived"]) == {"plain", "both"}
    assert found(system_tags=["__$all", "dataset", "other"]) == {"both"}
    assert found(system_tags=["dataset", "other"]) == set(made)  # no operator: any of them
    assert found(system_tags=["__$not", "dataset"]) == {"other"}
    assert found(system_tags=["__$all", "dataset", "__$not", "archived", "__$not", "other"]) == {"plain"}
    assert found(system_tags=["-archived"]) == {"plain", "other", "both"}  # the legacy exclude prefix
    assert found(tags=["__$all", "a", "b"]) == {"plain"}
    assert found(tags=["__$not", "b"]) == {"archived", "both"}


def test_refused_list_operators(standin: StandinServer, clearml_api: ApiClient) -> None:
    for values, msg in (
        (["__$not"], "Invalid value for fields (Value is expected after): operator=__$not"),
        (["__$not", "__$all", "x"], "Invalid value for fields (Value is expected after): field=system_tags, operator=__$not"),
        (["__$some", "x"], "Invalid value for fields (Unsupported operator): field=system_tags, operator=__$some"),
    ):
        assert refusal(clearml_api, "tasks.get_all", system_tags=values)[:4] == (400, 400, 16, msg)


def test_archived_dataset_version_is_not_found_with_the_dataset_get_filter(clearml_api: ApiClient,
                                                                          unique_name: str) -> None:
    """``Dataset.get(dataset_project, dataset_name)`` -> ``Dataset._get_dataset_id`` -> ``tasks.get_all``."""
    project = clearml_api.call("projects.create", name=f"standin-tests/{unique_name}/.datasets/volumes",
                               system_tags=["hidden"])["id"]
    versions = []
    for version in ("1.0.0", "1.0.1"):
        task = clearml_api.call("tasks.create", name="volumes", type="data_processing", project=project,
                                system_tags=["dataset", "hidden"], runtime={"version": version})["id"]
        clearml_api.call("tasks.started", task=task)
        clearml_api.call("tasks.completed", task=task)
        versions.append(task)
    clearml_api.call("tasks.archive", tasks=[versions[1]])
    assert "archived" in clearml_api.task(versions[1])["system_tags"]

    def dataset_get(system_tags: list[str]) -> list[str]:
        query = {"project": [project], "name": "^volumes$", "system_tags": system_tags, "type": ["data_processing"],
                 "order_by": ["-last_update"], "only_fields": ["id", "runtime.version"], "search_hidden": True}
        return [t["id"] for t in clearml_api.call("tasks.get_all", **query)["tasks"]]

    assert dataset_get(["__$all", "dataset", "__$not", "archived"]) == [versions[0]]
    assert dataset_get(["__$all", "dataset"]) == [versions[1], versions[0]]  # include_archived=True


@pytest.mark.integration
def test_sdk_dataset_get_skips_an_archived_version(standin: StandinServer, sdk: SdkRunner, tmp_path: Path,
                                                   unique_name: str) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "case_001.txt").write_text("voxels\n")
    failed_before = len(standin.state.failed_calls)
    run = _run_copy(sdk, "dataset_archived.py", f"standin-tests/{unique_name}", str(folder))
    assert run["archived"] is True
    assert run["latest"] == run["v1"] and run["with_archived"] == run["v2"]
    assert standin.state.failed_calls[failed_before:] == []


# --- 3. tasks.add_or_update_model / tasks.delete_models: created, or in_progress (force is implied) ------------

@pytest.mark.parametrize("status", ["created", "in_progress"])
def test_model_items_may_change_while_created_or_running(clearml_api: ApiClient, status: str) -> None:
    task = _task(clearml_api, status)
    for name, model in (("first", "model-a"), ("last", "model-b"), ("first", "model-c")):
        assert clearml_api.call("tasks.add_or_update_model", task=task, type="output", name=name, model=model) == \
            {"updated": 1}
    refs = clearml_api.task(task)["models"]["output"]
    assert [(r["name"], r["model"]) for r in refs] == [("first", "model-c"), ("last", "model-b")]  # replaced in place
    before = clearml_api.task(task)
    time.sleep(TICK)
    assert clearml_api.call("tasks.delete_models", task=task, models=[{"name": "first", "type": "output"}]) == \
        {"updated": 1}
    after = clearml_api.task(task)
    assert [r["name"] for r in after["models"]["output"]] == ["last"]
    assert after["last_change"] > before["last_change"] and after["last_update"] == before["last_update"]


@pytest.mark.parametrize("status", ["completed", "stopped", "failed", "closed", "published"])
@pytest.mark.parametrize("endpoint", ["tasks.add_or_update_model", "tasks.delete_models"])
def test_model_items_of_finished_tasks_are_refused_even_with_force(standin: StandinServer, clearml_api: ApiClient,
                                                                   status: str, endpoint: str) -> None:
    task = _task(clearml_api, status)
    before = clearml_api.task(task)
    body = ({"type": "output", "name": "late", "model": "model-x"} if endpoint == "tasks.add_or_update_model"
            else {"models": [{"name": "late", "type": "output"}]})
    for force in (False, True):
        assert refusal(clearml_api, endpoint, task=task, force=force, **body) == \
            (400, 400, 110, f"Invalid task status: expected=created, status={status}",
             {"expected": "created", "status": status})
    assert clearml_api.task(task) == before


def test_queued_task_model_items_are_refused(standin: StandinServer, clearml_api: ApiClient) -> None:
    task = _task(clearml_api)
    clearml_api.call("tasks.enqueue", task=task, queue=_queue(clearml_api))
    status, code, sub, msg, _ = refusal(clearml_api, "tasks.add_or_update_model", task=task, type="input",
                                         name="weights", model="model-x")
    assert (status, code, sub, msg) == (400, 400, 110, "Invalid task status: expected=created, status=queued")


@pytest.mark.parametrize(("endpoint", "body", "msg"), [
    ("tasks.add_or_update_model", {"type": "checkpoint", "name": "n", "model": "m"},
     "Validation error (error for field 'type': value 'checkpoint' is not a valid choice..)"),
    ("tasks.add_or_update_model", {"type": "output", "name": "n"},
     "Validation error (error for field 'model'. field is required!)"),
    ("tasks.delete_models", {"models": []},
     "Validation error (error for field 'models': value '[]' length is lower than allowed minimum '1'..)"),
    ("tasks.delete_models", {"models": [{"name": "n", "type": "both"}]},
     "Validation error (error for field 'models': error for field 'type': value 'both' is not a valid choice...)"),
    ("tasks.delete_models", {"models": [{"type": "output"}]},
     "Validation error (error for field 'models': (\"error for field 'name'.\", validationerror('field is required!')).)"),
])
def test_model_item_requests_are_validated(standin: StandinServer, clearml_api: ApiClient, endpoint: str,
                                           body: dict[str, Any], msg: str) -> None:
    assert refusal(clearml_api, endpoint, task=_task(clearml_api), **body)[:4] == (400, 400, 12, msg)


# --- 4. tasks.clone: the parent --------------------------------------------------------------------------------

def test_clone_takes_the_source_parent(standin: StandinServer, clearml_api: ApiClient) -> None:
    grandparent = _task(clearml_api)
    child = clearml_api.call("tasks.clone", task=grandparent)["id"]
    assert clearml_api.task(child)["parent"] == grandparent  # no parent: the source itself
    sibling = clearml_api.call("tasks.clone", task=child)["id"]
    assert clearml_api.task(sibling)["parent"] == grandparent  # the source's parent
    explicit = clearml_api.call("tasks.clone", task=child, new_task_parent=child)["id"]
    assert clearml_api.task(explicit)["parent"] == child
    orphan = _task(clearml_api, parent="__DELETED__gone")  # a deleted parent does not carry over
    assert clearml_api.task(clearml_api.call("tasks.clone", task=orphan)["id"])["parent"] == orphan
    count = len(standin.state.tasks)
    assert refusal(clearml_api, "tasks.clone", task=child, new_task_parent="no-such-task") == \
        (400, 400, 101, "Invalid task id (invalid parent): parent=no-such-task", {"parent": "no-such-task"})
    assert len(standin.state.tasks) == count


def test_clone_keeps_source_values_for_empty_overrides(clearml_api: ApiClient) -> None:
    src = _task(clearml_api, tags=["keep"], comment="source comment")
    clearml_api.call("tasks.edit_hyper_params", task=src, hyperparams=[{"section": "Args", "name": "x", "value": "1"}])
    clone = clearml_api.task(clearml_api.call("tasks.clone", task=src, new_task_tags=[], new_task_comment="",
                                              new_task_hyperparams={})["id"])
    assert clone["tags"] == ["keep"] and clone["comment"] == "source comment"  # ``tags or task.tags``
    assert clone["hyperparams"]["Args"]["x"]["value"] == "1"


# --- 5. models.set_ready on a ready model ------------------------------------------------------------------------

def test_set_ready_twice_is_refused(standin: StandinServer, clearml_api: ApiClient) -> None:
    model = clearml_api.call("models.create", name=f"model-{uuid.uuid4().hex[:8]}", uri="file:///m", ready=False)["id"]
    assert clearml_api.call("models.set_ready", model=model, publish_task=False) == {"updated": 1}
    assert refusal(clearml_api, "models.set_ready", model=model, publish_task=False) == \
        (400, 400, 203, f"Model is ready: company={COMPANY}, model={model}", {"company": COMPANY, "model": model})


# --- 6. events.add_batch --------------------------------------------------------------------------------------------

def _post_batch(api: ApiClient, lines: list[Any]) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {api._token or api._login()}"}
    res = api.http.post(f"{api.endpoint.api_host}/events.add_batch", headers=headers, timeout=10,
                        data="\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines))
    return res.status_code, res.json()


def test_add_batch_refuses_an_empty_batch(standin: StandinServer, clearml_api: ApiClient) -> None:
    for lines in ([], ["", "  "]):
        status, payload = _post_batch(clearml_api, lines)
        meta = payload["meta"]
        assert (status, meta["result_code"], meta["result_subcode"], meta["result_msg"]) == \
            (400, 400, 17, "Batch request contains no items")


def test_add_batch_counts_events_without_a_valid_type(standin: StandinServer, clearml_api: ApiClient) -> None:
    task = _task(clearml_api, "in_progress")
    good = {"task": task, "type": "training stats scalar", "metric": "loss", "variant": "train", "iter": 3, "value": 0.5}
    status, payload = _post_batch(clearml_api, [good, {"task": task, "metric": "m"},
                                                {"task": task, "type": "bogus kind", "metric": "m"},
                                                {"type": "log", "msg": "no task"}, {"task": "no-such-task", "type": "log"}])
    assert status == 200
    assert payload["data"] == {"added": 1, "errors": 4, "errors_info": {
        "Event must have a 'type' field": 1, "Invalid event type bogus_kind": 1, "Event must have a 'task' field": 1,
        "Invalid task id no-such-task": 1}}
    [stored] = standin.state.events[task]
    assert stored["type"] == "training_stats_scalar"  # spaces become underscores
    assert clearml_api.task(task)["last_iteration"] == 3


def test_add_batch_with_no_valid_event_fails(standin: StandinServer, clearml_api: ApiClient) -> None:
    task = _task(clearml_api, "in_progress")
    status, payload = _post_batch(clearml_api, [{"task": task, "msg": "x"}, {"task": task, "type": "metric", "msg": "y"}])
    meta = payload["meta"]
    assert (status, meta["result_code"], meta["result_subcode"]) == (400, 400, 131)
    assert meta["result_msg"] == "Events not added: Event must have a 'type' field=1, Invalid event type metric=1"
    assert meta["error_data"] == {"Event must have a 'type' field": 1, "Invalid event type metric": 1}
    assert task not in standin.state.events


# --- 7. tasks.enqueue: force, queue vs queue_name ----------------------------------------------------------------

@pytest.mark.parametrize(("status", "allowed"), [
    ("created", True), ("stopped", True), ("failed", True),
    ("in_progress", False), ("completed", False), ("closed", False), ("published", False),
])
def test_enqueue_follows_the_state_machine_unless_forced(standin: StandinServer, clearml_api: ApiClient,
                                                         status: str, allowed: bool) -> None:
    task, queue = _task(clearml_api, status), _queue(clearml_api)
    if not allowed:
        assert refusal(clearml_api, "tasks.enqueue", task=task, queue=queue) == \
            (400, 400, 110, f"Invalid task status (Invalid status change): current_status={status}, new_status=queued",
             {"current_status": status, "new_status": "queued"})
        assert clearml_api.task(task)["status"] == status and _entries(clearml_api, queue) == []
    res = clearml_api.call("tasks.enqueue", task=task, queue=queue, force=not allowed)
    assert res["queued"] == 1 and res["fields"]["enqueue_status"] == status and "queue_watched" not in res
    doc = clearml_api.task(task)
    assert (doc["status"], doc["enqueue_status"], doc["execution"]["queue"]) == ("queued", status, queue)
    assert _entries(clearml_api, queue) == [task]


def test_enqueue_of_a_queued_task_moves_it(standin: StandinServer, clearml_api: ApiClient) -> None:
    task, first, second = _task(clearml_api, "stopped"), _queue(clearml_api), _queue(clearml_api)
    clearml_api.call("tasks.enqueue", task=task, queue=first)
    clearml_api.call("tasks.enqueue", task=task, queue=second)  # queued -> queued is no status change
    doc = clearml_api.task(task)
    assert (doc["status"], doc["enqueue_status"], doc["execution"]["queue"]) == ("queued", "stopped", second)
    assert (_entries(clearml_api, first), _entries(clearml_api, second)) == ([], [task])
    assert refusal(clearml_api, "tasks.enqueue", task=task, queue=second) == \
        (400, 400, 706, f"Failed adding task to queue since task is already queued: task={task}", {"task": task})
    doc = clearml_api.task(task)  # set back to its status, with the real server's reason; enqueue_status is lost
    assert (doc["status"], doc["status_reason"], doc.get("enqueue_status")) == ("queued", "failed enqueueing", None)
    assert _entries(clearml_api, second) == [task]


def test_enqueue_to_an_unknown_queue_leaves_the_status(standin: StandinServer, clearml_api: ApiClient) -> None:
    task = _task(clearml_api)
    assert refusal(clearml_api, "tasks.enqueue", task=task, queue="no-such-queue")[:4] == \
        (400, 400, 701, f"Invalid queue id: id=no-such-queue, company={COMPANY}")
    doc = clearml_api.task(task)
    assert (doc["status"], doc["status_reason"]) == ("created", "failed enqueueing") and not doc["execution"].get("queue")


def test_enqueue_queue_and_queue_name_exclude_each_other(standin: StandinServer, clearml_api: ApiClient) -> None:
    task, queue = _task(clearml_api), _queue(clearml_api)
    name = f"q-strict-{uuid.uuid4().hex[:8]}"
    assert refusal(clearml_api, "tasks.enqueue", task=task, queue=queue, queue_name=name) == \
        (400, 400, 12, "Validation error (Either queue id or queue name should be provided)", {})
    assert refusal(clearml_api, "tasks.enqueue", task="no-such-task", queue=queue, queue_name=name)[2] == 12  # first
    assert clearml_api.task(task)["status"] == "created"
    assert clearml_api.call("queues.get_all", name=f"^{name}$")["queues"] == []


def test_enqueue_queue_name_creates_a_missing_queue(standin: StandinServer, clearml_api: ApiClient) -> None:
    task, name = _task(clearml_api), f"q-strict-{uuid.uuid4().hex[:8]}"
    res = clearml_api.call("tasks.enqueue", task=task, queue_name=name)
    [queue] = clearml_api.call("queues.get_all", name=f"^{name}$")["queues"]
    assert res["fields"]["execution.queue"] == queue["id"] and [e["task"] for e in queue["entries"]] == [task]
    again = _task(clearml_api)
    clearml_api.call("tasks.enqueue", task=again, queue_name=f"  {name} ")  # found by its stripped name
    assert _entries(clearml_api, queue["id"]) == [task, again]
    assert len(clearml_api.call("queues.get_all", name=f"^{name}$")["queues"]) == 1
    # the queue is created before the status change is refused; a short name is refused before anything
    done, late = _task(clearml_api, "completed"), f"q-strict-{uuid.uuid4().hex[:8]}"
    assert refusal(clearml_api, "tasks.enqueue", task=done, queue_name=late)[2] == 110
    assert len(clearml_api.call("queues.get_all", name=f"^{late}$")["queues"]) == 1
    assert refusal(clearml_api, "tasks.enqueue", task=again, queue_name="qq")[3:] == TOO_SHORT


# --- 8. queue, project and model names need three characters -------------------------------------------------------

def test_queue_names_need_three_characters(standin: StandinServer, clearml_api: ApiClient) -> None:
    count = len(standin.state.queues)
    for name in ("ab", " ab ", ""):
        assert refusal(clearml_api, "queues.create", name=name) == (400, 400, 800, *TOO_SHORT)
    assert len(standin.state.queues) == count
    assert refusal(clearml_api, "queues.create")[3] == "Validation error (error for field 'name'. field is required!)"
    name = f"q-strict-{uuid.uuid4().hex[:8]}"
    queue = clearml_api.call("queues.create", name=f" {name} ")["id"]
    assert clearml_api.call("queues.get_by_id", queue=queue)["queue"]["name"] == name  # stored stripped
    assert refusal(clearml_api, "queues.update", queue=queue, name="xy") == (400, 400, 800, *TOO_SHORT)
    assert clearml_api.call("queues.get_by_id", queue=queue)["queue"]["name"] == name
    assert clearml_api.call("queues.create", name="abc")["id"]  # three characters are enough
    clearml_api.call("queues.delete", queue=clearml_api.queue_id("abc"))


def test_project_names_need_three_characters(standin: StandinServer, clearml_api: ApiClient, unique_name: str) -> None:
    count = len(standin.state.projects)
    assert refusal(clearml_api, "projects.create", name="ab") == (400, 400, 800, *TOO_SHORT)
    # a path creates its parents first: a first part under three characters is a parent that cannot be saved
    assert refusal(clearml_api, "projects.create", name=f"ab/{unique_name}") == (400, 400, 800, *TOO_SHORT)
    assert refusal(clearml_api, "projects.create", name=f" a /{unique_name}") == (400, 400, 800, *TOO_SHORT)
    assert len(standin.state.projects) == count
    assert refusal(clearml_api, "projects.create", name=" / ")[:4] == (400, 400, 407, "Invalid project name: name= / ")
    assert refusal(clearml_api, "projects.create")[:4] == (400, 400, 11, "Missing required fields: missing=(name)")
    short_leaf = clearml_api.call("projects.create", name=f"standin-tests/{unique_name}/x")["id"]  # the full name counts
    assert clearml_api.call("projects.get_by_id", project=short_leaf)["project"]["basename"] == "x"
    # a rename keeps the location (else 400/408, checked first) and needs three characters too
    assert refusal(clearml_api, "projects.update", project=short_leaf, name="xy")[:4] == \
        (400, 400, 408, "Cannot update project location. use projects.move instead: name=xy")
    top_name = f"strict-{uuid.uuid4().hex[:8]}"
    top = clearml_api.call("projects.create", name=top_name)["id"]
    child = clearml_api.call("projects.create", name=f"{top_name}/child")["id"]
    assert refusal(clearml_api, "projects.update", project=top, name=" ab ") == (400, 400, 800, *TOO_SHORT)
    assert clearml_api.call("projects.get_by_id", project=top)["project"]["name"] == top_name
    clearml_api.call("projects.update", project=top, name=f"{top_name}-renamed")
    assert clearml_api.call("projects.get_by_id", project=child)["project"]["name"] == f"{top_name}-renamed/child"
    for project in (child, top):
        clearml_api.call("projects.delete", project=project)


def test_model_names_need_three_characters(standin: StandinServer, clearml_api: ApiClient) -> None:
    count = len(standin.state.models)
    for name in ("ab", "  ab  ", ""):
        assert refusal(clearml_api, "models.create", name=name, uri="file:///m") == (400, 400, 800, *TOO_SHORT)
    assert len(standin.state.models) == count
    assert refusal(clearml_api, "models.create", uri="file:///m")[3] == \
        "Validation error (error for field 'name'. field is required!)"
    model = clearml_api.call("models.create", name=" abc ", uri="file:///m")["id"]
    assert clearml_api.call("models.get_by_id", model=model)["model"]["name"] == "abc"
    for endpoint in ("models.edit", "models.update"):
        assert refusal(clearml_api, endpoint, model=model, name="xy") == (400, 400, 800, *TOO_SHORT)
    assert clearml_api.call("models.get_by_id", model=model)["model"]["name"] == "abc"
