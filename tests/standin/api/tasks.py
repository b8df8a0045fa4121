"""tasks.*: creation, editing, the status state machine, clone/enqueue, params, artifacts, models."""

from __future__ import annotations

import copy
from typing import Any

from tests.standin import errors, query, request_models
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


def task_for_update(state: State, body: Doc, allow_all_statuses: bool = False, force: bool | None = None) -> Doc:
    """The task, if it may be edited: 'created', or also 'in_progress' with force (bll/task/utils.py
    ``get_task_for_update``; ``force`` overrides the request's, as endpoints that pass ``force=True`` do);
    any status when ``allow_all_statuses``."""
    task = state.task(body.get("task"))
    if allow_all_statuses:
        return task
    forced = bool(body.get("force")) if force is None else force
    allowed = ("created", "in_progress") if forced else ("created",)
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
    """services/tasks.py ``edit``: a task that is not 'created' needs ``force``, which allows any status (the SDK's
    ``Task._edit`` always sends it, e.g. to archive a completed dataset version)."""
    task = task_for_update(state, body, allow_all_statuses=bool(body.get("force")))
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


DELETED_PREFIX = "__DELETED__"  # bll/task/utils.py deleted_prefix: the parent of a deleted task's children


def clone_task(state: State, body: Doc, hyperparams_overrides: dict[str, Doc] | None = None) -> tuple[Doc, Doc | None]:
    """``TaskBLL.clone_task``: the ``new_task_*`` values replace the source's unless empty (``x or source.x``);
    ``hyperparams_overrides`` (``pipelines.start_pipeline``) are merged into the source's hyperparameters item by
    item. Without ``new_task_parent`` the clone's parent is the source's parent, or the source itself when it has
    none (or a deleted one); an explicit parent must exist (400/101). Returns the task and the new project, if any."""
    src = state.task(body.get("task"))
    errors.validate_tags(body.get("new_task_tags"), body.get("new_task_system_tags"))
    hyperparams = body.get("new_task_hyperparams")
    if not hyperparams and hyperparams_overrides:
        hyperparams = {section: dict(items) for section, items in (src.get("hyperparams") or {}).items()}
        for section, items in hyperparams_overrides.items():
            hyperparams.setdefault(section, {}).update(items)  # utilities/dicts.py nested_set per (section, name)
    for section, items in (hyperparams or {}).items():  # param_utils.py params_prepare_for_save
        if not section:
            raise errors.validation_error("Empty section name is not allowed")
        if any(not name for name in items):
            raise errors.validation_error("Empty parameter name is not allowed")
    new_project = None
    project = body.get("new_task_project")
    if not project and body.get("new_project_name"):
        proj = ensure_project(state, body["new_project_name"])
        project, new_project = proj["id"], {"id": proj["id"], "name": body["new_project_name"]}
    execution = copy.deepcopy(src.get("execution") or {})
    execution.update(copy.deepcopy(body.get("execution_overrides") or {}))
    execution["artifacts"] = [a for a in execution.get("artifacts") or [] if a.get("mode", "output") != "output"]
    execution.pop("queue", None)
    models = {"input": copy.deepcopy(body.get("new_task_input_models") or (src.get("models") or {}).get("input") or []),
              "output": []}

    def pick(key: str, src_key: str) -> Any:
        return copy.deepcopy(body.get(key) or src.get(src_key))

    src_parent = src.get("parent")
    parent = body.get("new_task_parent") or (
        src_parent if src_parent and not str(src_parent).startswith(DELETED_PREFIX) else src["id"])
    explicit_parent = body.get("new_task_parent")
    if explicit_parent and not explicit_parent.startswith(DELETED_PREFIX) and explicit_parent not in state.tasks:
        raise errors.ApiError(400, 101, f"Invalid task id (invalid parent): parent={explicit_parent}", parent=explicit_parent)
    system_tags = body.get("new_task_system_tags") or [
        t for t in src.get("system_tags") or [] if t not in (DEVELOPMENT, "archived")]
    task = new_task(state, {
        "name": body.get("new_task_name") or src["name"],
        "type": src["type"],
        "comment": pick("new_task_comment", "comment"),
        "parent": parent,
        "project": project or src.get("project"),
        "tags": pick("new_task_tags", "tags"),
        "system_tags": copy.deepcopy(system_tags),
        "script": copy.deepcopy(src.get("script")),
        "execution": execution,
        "models": models,
        "hyperparams": copy.deepcopy(hyperparams or src.get("hyperparams")),
        "configuration": pick("new_task_configuration", "configuration"),
        "container": pick("new_task_container", "container"),
    })
    task["output"] = {"destination": (src.get("output") or {}).get("destination")}
    return task, new_project


@endpoint("tasks.clone")
def clone(state: State, body: Doc, call: Call) -> Doc:
    task, new_project = clone_task(state, body)
    result: Doc = {"id": task["id"]}
    if new_project:
        result["new_project"] = new_project
    return result


# --- status changes -------------------------------------------------------------------------

def _resolve_queue_id(state: State, body: Doc) -> str:
    """bll/task/task_operations.py ``enqueue_task``: the queue id as sent (checked only when the task is added to
    it), or a queue name (a missing queue is created, with the name rules of ``queues.create``), or the default."""
    if body.get("queue_name"):
        from tests.standin.api.queues import new_queue  # local: queues imports nothing from here

        name = body["queue_name"]
        wanted = name.strip() if isinstance(name, str) else name  # StrippedStringField strips query values too
        existing = state.queue_by_name(wanted)
        return (existing or new_queue(state, name))["id"]
    if body.get("queue"):
        return str(body["queue"])
    default = [q for q in state.queues.values() if "default" in (q.get("system_tags") or [])]
    if not default:
        raise errors.no_default_queue()
    return str(default[0]["id"])


def remove_from_queues(state: State, task_id: str) -> int:
    """Drop every queue entry of ``task_id``; returns how many were removed."""
    removed = 0
    for q in state.queues.values():
        before = len(q["entries"])
        q["entries"] = [e for e in q["entries"] if e["task"] != task_id]
        removed += before - len(q["entries"])
    return removed


def _add_to_queue(state: State, queue_id: str, task_id: str) -> Doc:
    """``QueueBLL.add_task``: the queue must exist (400/701) and not hold the task already (400/706)."""
    queue = state.queues.get(queue_id)
    if queue is None:
        raise errors.ApiError(400, 701, f"Invalid queue id: id={queue_id}, company={COMPANY}", id=queue_id, company=COMPANY)
    if any(e["task"] == task_id for e in queue["entries"]):
        raise errors.task_already_queued(task_id)
    queue["entries"].append({"task": task_id, "added": now_iso()})
    return queue


def enqueue_task(state: State, body: Doc, force: bool = False) -> Doc:
    """``enqueue_task``: ``queue`` and ``queue_name`` exclude each other (400/12); the status change to 'queued'
    follows the state machine unless ``force`` (created, stopped, failed and queued may be enqueued; a queued task
    keeps its ``enqueue_status`` and moves to the new queue); if adding it to the queue then fails, the status is
    set back (status_reason "failed enqueueing") and the error is raised."""
    if body.get("queue") and body.get("queue_name"):
        raise errors.validation_error("Either queue id or queue name should be provided")
    task = state.task(body.get("task"))
    queue_id = _resolve_queue_id(state, body)
    previous = task["status"]
    before_enqueue = task.get("enqueue_status") if previous == "queued" and task.get("enqueue_status") else previous
    res = change_status(state, task, "queued", body, force=force, enqueue_status=before_enqueue)
    try:
        _add_to_queue(state, queue_id, task["id"])
    except errors.ApiError:
        change_status(state, task, previous, {"status_reason": "failed enqueueing"}, force=True, enqueue_status=None)
        raise
    task.setdefault("execution", {})["queue"] = queue_id
    res["fields"]["execution.queue"] = queue_id
    for other in state.queues.values():  # TaskBLL.remove_task_from_all_queues(exclude=queue_id)
        if other["id"] != queue_id:
            other["entries"] = [e for e in other["entries"] if e["task"] != task["id"]]
    return res


def queue_watched(state: State, queue_id: str) -> bool:
    """``QueueBLL.check_for_workers``: a worker listens to the queue."""
    return any(queue_id in (w.get("queue_ids") or []) for w in state.workers.values())


@endpoint("tasks.enqueue")
def enqueue(state: State, body: Doc, call: Call) -> Doc:
    """services/tasks.py ``enqueue`` (``queue_watched`` only with ``verify_watched_queue``)."""
    res = enqueue_task(state, body, force=bool(body.get("force")))
    result: Doc = {"queued": 1, **res}
    if body.get("verify_watched_queue"):
        result["queue_watched"] = queue_watched(state, res["fields"]["execution.queue"])
    return result


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


MODEL_TYPES = ("input", "output")  # database/model/task/task.py TaskModelTypes
# apimodels/tasks.py AddUpdateModelRequest and DeleteModelsRequest (ModelItemKey items)
ADD_MODEL_RULES: dict[str, request_models.Rule] = {
    "task": request_models.Str(required=True), "name": request_models.Str(required=True),
    "model": request_models.Str(required=True), "type": request_models.Str(required=True, choices=MODEL_TYPES),
}
DELETE_MODELS_RULES: dict[str, request_models.Rule] = {
    "task": request_models.Str(required=True),
    "models": request_models.Items("apiserver.apimodels.tasks.ModelItemKey", {
        "name": request_models.Str(required=True), "type": request_models.Str(required=True, choices=MODEL_TYPES),
    }, min_items=1),
}


@endpoint("tasks.add_or_update_model")
def add_or_update_model(state: State, body: Doc, call: Call) -> Doc:
    """services/tasks.py ``add_or_update_model``: ``get_task_for_update(force=True)``, so the task must be 'created'
    or 'in_progress' whatever the request says (else 400/110); an item of that name is replaced in place, otherwise
    one is appended; ``update_statistics`` moves ``last_update``/``last_change`` and grows ``last_iteration``."""
    request_models.validate(body, ADD_MODEL_RULES)
    task = task_for_update(state, body, force=True)
    refs = task.setdefault("models", {}).setdefault(body["type"], [])
    item = {"name": body["name"], "model": body["model"], "updated": now_iso()}
    index = next((i for i, r in enumerate(refs) if r.get("name") == body["name"]), None)
    if index is None:
        refs.append(item)
    else:
        refs[index] = item
    iteration = body.get("iteration")
    update_statistics(state, task["id"], last_iteration_max=None if iteration is None else int(iteration))
    return {"updated": 1}


@endpoint("tasks.delete_models")
def delete_models(state: State, body: Doc, call: Call) -> Doc:
    """services/tasks.py ``delete_models``: at least one {name, type}; the task must be 'created' or 'in_progress'
    (``get_task_for_update(force=True)``, else 400/110); moves ``last_change`` only."""
    request_models.validate(body, DELETE_MODELS_RULES)
    task = task_for_update(state, body, force=True)
    models = task.setdefault("models", {})
    for kind in MODEL_TYPES:
        names = {item["name"] for item in body["models"] if item["type"] == kind}
        if names:
            models[kind] = [r for r in models.get(kind) or [] if r.get("name") not in names]
    _touched(task, set_last_update=False)
    return {"updated": 1}
