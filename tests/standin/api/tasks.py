"""tasks.*: creation, editing, the status state machine, clone/enqueue, params, artifacts, models."""

from __future__ import annotations

import copy
from typing import Any

from tests.standin import errors, query
from tests.standin.api import Call, endpoint
from tests.standin.api.projects import ensure_project, include_subprojects, touch
from tests.standin.state import COMPANY, USER, Doc, State, new_id, now_iso

# clearml-server's task state machine (apiserver/bll/task/utils.py): allowed target statuses.
TRANSITIONS: dict[str, set[str]] = {
    "created": {"queued", "in_progress"},
    "queued": {"created", "in_progress", "stopped"},
    "in_progress": {"stopped", "failed", "created", "completed"},
    "stopped": {"closed", "created", "failed", "queued", "in_progress", "published", "publishing", "completed"},
    "closed": {"created", "failed", "published", "publishing", "stopped"},
    "failed": {"created", "stopped", "published", "queued"},
    "publishing": {"published"},
    "published": set(),
    "completed": {"published", "in_progress", "created"},
}
EDITABLE = (
    "name", "type", "comment", "parent", "project", "script", "execution", "models", "hyperparams",
    "configuration", "container", "tags", "system_tags", "input", "runtime",
)
DEVELOPMENT = "development"


def change_status(
    state: State, task: Doc, new_status: str, body: Doc, *, force: bool | None = None,
    allow_same: bool = True, **extra: Any,
) -> Doc:
    """Move ``task`` to ``new_status`` if the real server's state machine allows it."""
    current = task["status"]
    force = bool(body.get("force")) if force is None else force
    if not force:
        if new_status != current and new_status not in TRANSITIONS.get(current, set()):
            raise errors.invalid_task_status(
                "Invalid status change", current_status=current, new_status=new_status
            )
        if new_status == current and not allow_same:
            raise errors.invalid_task_status(
                "Task already in requested status", current_status=current, new_status=new_status
            )
    now = now_iso()
    fields: Doc = {
        "status": new_status,
        "status_reason": body.get("status_reason") or "",
        "status_message": body.get("status_message") or "",
        "status_changed": now,
        "last_update": now,
        "last_change": now,
    }
    fields.update(extra)
    task.update(fields)
    if new_status == "queued":
        task["system_tags"] = [t for t in task.get("system_tags") or [] if t != DEVELOPMENT]
    touch(state, task.get("project"))
    return {"updated": 1, "fields": fields}


def task_for_update(state: State, body: Doc, allow_all_statuses: bool = False) -> Doc:
    """The task, if it may be edited: 'created', or also 'in_progress' with force (bll/task/utils.py
    ``get_task_for_update``); any status when ``allow_all_statuses``."""
    task = state.task(body.get("task"))
    if allow_all_statuses:
        return task
    allowed = ("created", "in_progress") if body.get("force") else ("created",)
    if task["status"] not in allowed:
        raise errors.invalid_task_status(expected="created", status=task["status"])
    return task


def _touched(task: Doc, set_last_update: bool = True) -> None:
    """``update_task``: ``last_change`` always, ``last_update`` unless only user properties changed."""
    now = now_iso()
    task["last_change"] = now
    if set_last_update:
        task["last_update"] = now


def update_statistics(state: State, task_id: str, last_iteration_max: int | None = None) -> None:
    """``TaskBLL.update_statistics``: ``last_iteration`` only grows; ``last_update``/``last_change`` move (and
    ``active_duration`` of a running task). A task that does not exist is left alone."""
    task = state.tasks.get(task_id)
    if task is None:
        return
    if last_iteration_max is not None:
        task["last_iteration"] = max(task.get("last_iteration") or 0, last_iteration_max)
    if task["status"] == "in_progress" and task.get("started"):
        started = query.parse_time(task["started"])
        now = query.parse_time(now_iso())
        if started is not None and now is not None:
            task["active_duration"] = int((now - started).total_seconds())  # an integer in the schema (the SDK checks)
    _touched(task)


def _conform_tags(body: Doc) -> None:
    """``prepare_for_save`` -> ``conform_tag_fields(validate=True)``: only when ``tags`` is sent (not null)."""
    if body.get("tags") is not None:
        errors.validate_tags(body["tags"], body.get("system_tags"))


def _apply_fields(state: State, task: Doc, body: Doc) -> Doc:
    """Replace whole top-level fields from a create/edit body; ``output_dest`` sets output.destination."""
    _conform_tags(body)
    fields = {k: copy.deepcopy(body[k]) for k in EDITABLE if k in body}
    if "project" in fields and fields["project"]:
        state.project(fields["project"])
    task.update(fields)
    if body.get("output_dest") is not None:
        task.setdefault("output", {})["destination"] = body["output_dest"]
        fields["output.destination"] = body["output_dest"]
    for key, default in (("execution", {}), ("models", {}), ("script", {}), ("hyperparams", {}),
                         ("configuration", {}), ("container", {}), ("tags", []), ("system_tags", [])):
        if task.get(key) is None:
            task[key] = copy.deepcopy(default)
    task["models"].setdefault("input", [])
    task["models"].setdefault("output", [])
    task["execution"].setdefault("artifacts", [])
    _touched(task)
    return fields


def new_task(state: State, body: Doc) -> Doc:
    """A fresh task document in 'created' status."""
    now = now_iso()
    task: Doc = {
        "id": new_id(), "company": COMPANY, "user": USER["id"], "status": "created",
        "status_reason": "", "status_message": "", "status_changed": now, "created": now,
        "comment": "", "parent": None, "project": None, "output": {}, "runtime": {},
        "last_iteration": 0, "last_metrics": {}, "active_duration": 0,
    }
    _apply_fields(state, task, body)
    state.tasks[task["id"]] = task
    touch(state, task.get("project"))
    return task


@endpoint("tasks.create")
def create(state: State, body: Doc, call: Call) -> Doc:
    missing = [k for k in ("name", "type") if not body.get(k)]
    if missing:
        raise errors.missing_fields(*missing)
    return {"id": new_task(state, body)["id"]}


@endpoint("tasks.edit")
def edit(state: State, body: Doc, call: Call) -> Doc:
    task = task_for_update(state, body)
    return {"updated": 1, "fields": _apply_fields(state, task, body)}


@endpoint("tasks.update")
def update(state: State, body: Doc, call: Call) -> Doc:
    task = state.task(body.get("task"))
    _conform_tags(body)
    fields = {k: copy.deepcopy(body[k]) for k in ("name", "comment", "tags", "system_tags", "project", "created") if k in body}
    task.update(fields)
    if "output__error" in body:
        task.setdefault("output", {})["error"] = body["output__error"]
        fields["output.error"] = body["output__error"]
    _touched(task)
    return {"updated": 1, "fields": fields}


@endpoint("tasks.get_all", "tasks.get_all_ex", "tasks.get_by_id_ex")
def get_all(state: State, body: Doc, call: Call) -> Doc:
    if call.endpoint != "tasks.get_by_id_ex":  # services/tasks.py: get_all and get_all_ex only
        body = include_subprojects(state, body)
    results, scroll_id = query.run(state.tasks.values(), body, query.TASKS)
    return {"tasks": results, "scroll_id": scroll_id}


@endpoint("tasks.get_by_id")
def get_by_id(state: State, body: Doc, call: Call) -> Doc:
    return {"task": query.project(state.task(body.get("task")), None)}


@endpoint("tasks.get_types")
def get_types(state: State, body: Doc, call: Call) -> Doc:
    projects = body.get("projects")
    types = {t["type"] for t in state.tasks.values() if not projects or t.get("project") in projects}
    return {"types": sorted(types)}


@endpoint("tasks.clone")
def clone(state: State, body: Doc, call: Call) -> Doc:
    src = state.task(body.get("task"))
    errors.validate_tags(body.get("new_task_tags"), body.get("new_task_system_tags"))  # TaskBLL.clone_task
    new_project = None
    project = body.get("new_task_project") or src.get("project")
    if body.get("new_project_name"):
        proj = ensure_project(state, body["new_project_name"])
        project, new_project = proj["id"], {"id": proj["id"], "name": proj["name"]}
    execution = copy.deepcopy(src.get("execution") or {})
    execution["artifacts"] = [a for a in execution.get("artifacts") or [] if a.get("mode") == "input"]
    execution.pop("queue", None)
    execution.update(copy.deepcopy(body.get("execution_overrides") or {}))
    models = copy.deepcopy(src.get("models") or {})
    models["output"] = []
    if body.get("new_task_input_models") is not None:
        models["input"] = copy.deepcopy(body["new_task_input_models"])

    def pick(key: str, src_key: str) -> Any:
        value = body.get(key)
        return copy.deepcopy(value if value is not None else src.get(src_key))

    system_tags = body.get("new_task_system_tags")
    if system_tags is None:
        system_tags = [t for t in src.get("system_tags") or [] if t not in (DEVELOPMENT, "archived")]
    task = new_task(state, {
        "name": body.get("new_task_name") or src["name"],
        "type": src["type"],
        "comment": pick("new_task_comment", "comment"),
        "parent": body.get("new_task_parent") or src["id"],
        "project": project,
        "tags": pick("new_task_tags", "tags"),
        "system_tags": system_tags,
        "script": copy.deepcopy(src.get("script")),
        "execution": execution,
        "models": models,
        "hyperparams": pick("new_task_hyperparams", "hyperparams"),
        "configuration": pick("new_task_configuration", "configuration"),
        "container": pick("new_task_container", "container"),
    })
    task["output"] = {"destination": (src.get("output") or {}).get("destination")}
    result: Doc = {"id": task["id"]}
    if new_project:
        result["new_project"] = new_project
    return result


# --- status changes -------------------------------------------------------------------------

def _resolve_queue(state: State, body: Doc) -> Doc:
    """bll/task/task_operations.py ``enqueue_task``: a queue id, or a name (created if missing), or the default."""
    if body.get("queue") and body.get("queue_name"):
        raise errors.validation_error("Either queue id or queue name should be provided")
    if body.get("queue"):
        return state.queue(body["queue"])
    if body.get("queue_name"):
        from tests.standin.api.queues import new_queue  # local: queues imports nothing from here

        return state.queue_by_name(body["queue_name"]) or new_queue(state, body["queue_name"])
    default = [q for q in state.queues.values() if "default" in (q.get("system_tags") or [])]
    if not default:
        raise errors.no_default_queue()
    return default[0]


def remove_from_queues(state: State, task_id: str) -> int:
    """Drop every queue entry of ``task_id``; returns how many were removed."""
    removed = 0
    for q in state.queues.values():
        before = len(q["entries"])
        q["entries"] = [e for e in q["entries"] if e["task"] != task_id]
        removed += before - len(q["entries"])
    return removed


@endpoint("tasks.enqueue")
def enqueue(state: State, body: Doc, call: Call) -> Doc:
    task = state.task(body.get("task"))
    queue = _resolve_queue(state, body)
    if any(e["task"] == task["id"] for e in queue["entries"]):
        raise errors.ApiError(400, 706, "Failed adding task to queue since task is already queued")
    execution = task.setdefault("execution", {})
    previous = task["status"]
    res = change_status(state, task, "queued", body, allow_same=False, force=False)
    execution["queue"] = queue["id"]
    task["enqueue_status"] = previous
    queue["entries"].append({"task": task["id"], "added": now_iso()})
    res["fields"]["execution.queue"] = queue["id"]
    watched = any(queue["id"] in (w.get("queue_ids") or []) for w in state.workers.values())
    return {"queued": 1, "queue_watched": watched, **res}


@endpoint("tasks.dequeue")
def dequeue(state: State, body: Doc, call: Call) -> Doc:
    task = state.task(body.get("task"))
    if task["status"] != "queued":
        raise errors.invalid_task_status("task is not queued", status=task["status"])
    removed = remove_from_queues(state, task["id"])
    back_to = task.pop("enqueue_status", None) or "created"
    res = change_status(state, task, back_to if back_to != "queued" else "created", body, force=True)
    task.get("execution", {}).pop("queue", None)
    return {"dequeued": removed, **res}


@endpoint("tasks.started")
def started(state: State, body: Doc, call: Call) -> Doc:
    task = state.task(body.get("task"))
    remove_from_queues(state, task["id"])
    res = change_status(state, task, "in_progress", body, started=task.get("started") or now_iso())
    return {"started": res["updated"], **res}


@endpoint("tasks.stopped")
def stopped(state: State, body: Doc, call: Call) -> Doc:
    return change_status(state, state.task(body.get("task")), "stopped", body)


@endpoint("tasks.completed")
def completed(state: State, body: Doc, call: Call) -> Doc:
    task = state.task(body.get("task"))
    res = change_status(state, task, "completed", body, completed=now_iso())
    published = 0
    if body.get("publish"):
        change_status(state, task, "published", {}, force=True, published=now_iso())
        published = 1
    return {"published": published, **res}


@endpoint("tasks.failed")
def failed(state: State, body: Doc, call: Call) -> Doc:
    return change_status(state, state.task(body.get("task")), "failed", body)


@endpoint("tasks.close")
def close(state: State, body: Doc, call: Call) -> Doc:
    return change_status(state, state.task(body.get("task")), "closed", body)


@endpoint("tasks.publish")
def publish(state: State, body: Doc, call: Call) -> Doc:
    """``publish_task``: the status change is validated first; then the task's last output model, if it is not
    ready yet, is published (``ModelBLL.publish_model`` without publishing the task again)."""
    from tests.standin.api.models import publish_model  # models imports this module

    task = state.task(body.get("task"))
    res = change_status(state, task, "published", body, published=now_iso())
    outputs = (task.get("models") or {}).get("output") or []
    if body.get("publish_model", True) and outputs:
        model = state.models.get(outputs[-1].get("model"))
        if model is not None and not model.get("ready"):
            publish_model(state, model["id"], publish_task=False)
    return {"committed_versions_results": [], **res}


@endpoint("tasks.stop")
def stop(state: State, body: Doc, call: Call) -> Doc:
    """A task an agent runs gets status_message 'stopping' (the agent stops it); others stop at once."""
    task = state.task(body.get("task"))
    run_by_worker = task["status"] == "in_progress" and bool(task.get("last_worker"))
    if run_by_worker and not body.get("force"):
        return change_status(state, task, "in_progress", {**body, "status_message": "stopping"}, force=True)
    if task["status"] == "queued":
        remove_from_queues(state, task["id"])
    return change_status(state, task, "stopped", body)


@endpoint("tasks.reset")
def reset(state: State, body: Doc, call: Call) -> Doc:
    task = state.task(body.get("task"))
    if task["status"] == "published" and not body.get("force"):
        raise errors.ApiError(400, 113, "Task published (invalid task status)")
    dequeued = remove_from_queues(state, task["id"])
    execution = task.setdefault("execution", {})
    execution["artifacts"] = [a for a in execution.get("artifacts") or [] if a.get("mode") == "input"]
    execution.pop("queue", None)
    task.setdefault("models", {})["output"] = []
    task["output"] = {"destination": (task.get("output") or {}).get("destination")}
    for key in ("started", "completed", "published", "last_worker", "last_worker_report"):
        task.pop(key, None)
    task.update(last_iteration=0, last_metrics={}, runtime={}, active_duration=0)
    state.events.pop(task["id"], None)
    res = change_status(state, task, "created", body, force=True)
    return {"dequeued": {"removed": dequeued} if dequeued else {}, "events": {}, "deleted_models": 0, **res}


@endpoint("tasks.ping")
def ping(state: State, body: Doc, call: Call) -> Doc:
    task = state.task(body.get("task"))
    task["last_update"] = task["last_change"] = now_iso()  # TaskBLL.set_last_update sets both
    return {}


@endpoint("tasks.archive")
def archive(state: State, body: Doc, call: Call) -> Doc:
    tasks = [state.task(t) for t in body.get("tasks") or []]
    for task in tasks:
        if "archived" not in task.setdefault("system_tags", []):
            task["system_tags"].append("archived")
    return {"archived": len(tasks)}


@endpoint("tasks.delete")
def delete(state: State, body: Doc, call: Call) -> Doc:
    task = state.task(body.get("task"))
    if task["status"] == "in_progress" and not body.get("force"):
        raise errors.ApiError(400, 112, "Task in progress (invalid task status)")
    remove_from_queues(state, task["id"])
    del state.tasks[task["id"]]
    state.events.pop(task["id"], None)
    return {"deleted": True, "updated_children": 0, "updated_models": 0, "events": {}}


@endpoint("tasks.set_requirements")
def set_requirements(state: State, body: Doc, call: Call) -> Doc:
    task = state.task(body.get("task"))  # no status check: the SDK sets them while the task runs
    task.setdefault("script", {})["requirements"] = copy.deepcopy(body.get("requirements"))
    _touched(task)
    return {"updated": 1, "fields": {"script.requirements": body.get("requirements")}}


# --- hyperparameters and configuration ----------------------------------------------------------
# Stored like the real server: hyperparams[section][name] = item, configuration[name] = item.
# Names may contain dots ("train.lr"); they are keys, never paths.

@endpoint("tasks.get_hyper_params")
def get_hyper_params(state: State, body: Doc, call: Call) -> Doc:
    params = []
    for task_id in body.get("tasks") or []:
        task = state.task(task_id)
        items = [copy.deepcopy(item) for section in (task.get("hyperparams") or {}).values() for item in section.values()]
        params.append({"task": task_id, "hyperparams": items})
    return {"params": params}


PROPERTIES = "properties"


def _properties_only(items: list[Doc]) -> bool:
    """bll/task/hyperparams.py ``_normalize_params``: lower-case the 'properties' section; True if it is the
    only one (then any task status may be edited, and ``last_update`` is kept)."""
    for item in items:
        if str(item.get("section") or "").lower() == PROPERTIES:
            item["section"] = PROPERTIES
    return all(item.get("section") == PROPERTIES for item in items)


@endpoint("tasks.edit_hyper_params")
def edit_hyper_params(state: State, body: Doc, call: Call) -> Doc:
    items = copy.deepcopy(body.get("hyperparams") or [])
    properties_only = _properties_only(items)
    task = task_for_update(state, body, allow_all_statuses=properties_only)
    hyperparams = task.setdefault("hyperparams", {})
    replace = body.get("replace_hyperparams") or "none"
    if replace == "all":
        hyperparams.clear()
    if replace == "section":
        for section in {i.get("section") or "" for i in items}:
            hyperparams.pop(section, None)
    for item in items:
        section = item.get("section") or ""
        name = item.get("name")
        if name is None:
            raise errors.ApiError(400, 12, "Validation error (hyperparameter name is required)")
        entry = {"section": section, "name": name, "value": "", "type": None, "description": None}
        entry.update({k: v for k, v in item.items() if k in entry and v is not None})
        entry["value"] = "" if entry["value"] is None else str(entry["value"])
        hyperparams.setdefault(section, {})[name] = entry
    _touched(task, set_last_update=not properties_only)
    return {"updated": 1}


@endpoint("tasks.delete_hyper_params")
def delete_hyper_params(state: State, body: Doc, call: Call) -> Doc:
    items = copy.deepcopy(body.get("hyperparams") or [])
    properties_only = _properties_only(items)
    task = task_for_update(state, body, allow_all_statuses=properties_only)
    hyperparams = task.setdefault("hyperparams", {})
    deleted = 0
    for item in items:
        section = item.get("section") or ""
        if item.get("name") is None:
            deleted += 1 if hyperparams.pop(section, None) is not None else 0
        elif item["name"] in hyperparams.get(section, {}):
            del hyperparams[section][item["name"]]
            deleted += 1
            if not hyperparams[section]:
                del hyperparams[section]
    _touched(task, set_last_update=not properties_only)
    return {"deleted": deleted}


@endpoint("tasks.get_configurations")
def get_configurations(state: State, body: Doc, call: Call) -> Doc:
    names = body.get("names")
    result = []
    for task_id in body.get("tasks") or []:
        conf = state.task(task_id).get("configuration") or {}
        items = [copy.deepcopy(v) for k, v in conf.items() if not names or k in names]
        result.append({"task": task_id, "configuration": items})
    return {"configurations": result}


@endpoint("tasks.get_configuration_names")
def get_configuration_names(state: State, body: Doc, call: Call) -> Doc:
    return {"configurations": [
        {"task": t, "names": sorted((state.task(t).get("configuration") or {}).keys())}
        for t in body.get("tasks") or []
    ]}


@endpoint("tasks.edit_configuration")
def edit_configuration(state: State, body: Doc, call: Call) -> Doc:
    task = task_for_update(state, body)
    conf = task.setdefault("configuration", {})
    if body.get("replace_configuration"):
        conf.clear()
    for item in body.get("configuration") or []:
        if not item.get("name"):
            raise errors.ApiError(400, 12, "Validation error (configuration name is required)")
        entry = {"name": item["name"], "value": None, "type": None, "description": None}
        entry.update({k: v for k, v in item.items() if k in entry and v is not None})
        conf[item["name"]] = entry
    _touched(task)
    return {"updated": 1}


@endpoint("tasks.delete_configuration")
def delete_configuration(state: State, body: Doc, call: Call) -> Doc:
    task = task_for_update(state, body)
    conf = task.setdefault("configuration", {})
    deleted = sum(1 for name in body.get("configuration") or [] if conf.pop(name, None) is not None)
    return {"deleted": deleted}


# --- artifacts and models -----------------------------------------------------------------------

@endpoint("tasks.add_or_update_artifacts")
def add_or_update_artifacts(state: State, body: Doc, call: Call) -> Doc:
    task = task_for_update(state, body)
    artifacts = task.setdefault("execution", {}).setdefault("artifacts", [])
    for given in body.get("artifacts") or []:
        if not given.get("key") or not given.get("type"):
            raise errors.missing_fields("key", "type")
        art = {"mode": "output", **copy.deepcopy(given)}
        artifacts[:] = [a for a in artifacts if (a["key"], a.get("mode", "output")) != (art["key"], art["mode"])]
        artifacts.append(art)
    _touched(task)
    return {"updated": 1}


@endpoint("tasks.delete_artifacts")
def delete_artifacts(state: State, body: Doc, call: Call) -> Doc:
    task = task_for_update(state, body)
    artifacts = task.setdefault("execution", {}).setdefault("artifacts", [])
    drop = {(a["key"], a.get("mode") or "output") for a in body.get("artifacts") or []}
    before = len(artifacts)
    artifacts[:] = [a for a in artifacts if (a["key"], a.get("mode", "output")) not in drop]
    return {"deleted": before - len(artifacts)}


@endpoint("tasks.add_or_update_model")
def add_or_update_model(state: State, body: Doc, call: Call) -> Doc:
    task = state.task(body.get("task"))
    kind = body.get("type")
    if kind not in ("input", "output"):
        raise errors.ApiError(400, 12, "Validation error (type must be input or output)")
    refs = task.setdefault("models", {}).setdefault(kind, [])
    refs[:] = [r for r in refs if r.get("name") != body.get("name")]
    refs.append({"name": body.get("name"), "model": body.get("model"), "updated": now_iso()})
    if body.get("iteration") is not None:
        task["last_iteration"] = max(task.get("last_iteration") or 0, int(body["iteration"]))
    _touched(task)
    return {"updated": 1}


@endpoint("tasks.delete_models")
def delete_models(state: State, body: Doc, call: Call) -> Doc:
    task = state.task(body.get("task"))
    models = task.setdefault("models", {})
    for item in body.get("models") or []:
        refs = models.setdefault(item.get("type"), [])
        refs[:] = [r for r in refs if r.get("name") != item.get("name")]
    return {"updated": 1}
