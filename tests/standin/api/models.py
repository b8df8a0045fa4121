"""models.*: registration, editing, update_for_task (output models), readiness and metadata."""

from __future__ import annotations

import copy
from typing import Any

from tests.standin import errors, query
from tests.standin.api import Call, endpoint
from tests.standin.state import COMPANY, USER, Doc, State, new_id, now_iso

FIELDS = ("name", "uri", "framework", "design", "labels", "ready", "project", "task", "parent",
          "comment", "tags", "system_tags")


def _metadata(items: Any) -> Doc:
    """The API takes metadata as a list of {key, type, value}; it is kept and returned keyed by key."""
    if isinstance(items, dict):
        return copy.deepcopy(items)
    return {i["key"]: {"key": i["key"], "type": i.get("type"), "value": i.get("value")} for i in items or [] if i.get("key")}


def new_model(state: State, body: Doc) -> Doc:
    now = now_iso()
    doc: Doc = {
        "id": new_id(), "company": COMPANY, "user": USER["id"], "created": now, "last_update": now,
        "ready": True, "tags": [], "system_tags": [], "labels": {}, "design": {}, "metadata": {},
        "comment": "", "framework": None, "uri": None, "project": None, "task": None, "parent": None,
    }
    _apply(state, doc, body)
    state.models[doc["id"]] = doc
    return doc


def _apply(state: State, doc: Doc, body: Doc) -> Doc:
    fields = {k: copy.deepcopy(body[k]) for k in FIELDS if k in body}
    if fields.get("project"):
        state.project(fields["project"])
    doc.update(fields)
    if "metadata" in body:
        doc["metadata"] = _metadata(body["metadata"])
        fields["metadata"] = doc["metadata"]
    if body.get("iteration") is not None:
        doc["last_iteration"] = int(body["iteration"])
    doc["last_update"] = now_iso()
    return fields


@endpoint("models.create")
def create(state: State, body: Doc, call: Call) -> Doc:
    missing = [k for k in ("name", "uri") if not body.get(k)]
    if missing:
        raise errors.missing_fields(*missing)
    return {"id": new_model(state, body)["id"], "created": True}


@endpoint("models.edit", "models.update")
def edit(state: State, body: Doc, call: Call) -> Doc:
    doc = state.model(body.get("model"))
    return {"updated": 1, "fields": _apply(state, doc, body)}


@endpoint("models.update_for_task")
def update_for_task(state: State, body: Doc, call: Call) -> Doc:
    """Create (or override) the output model of a task, as the SDK's OutputModel does."""
    task = state.task(body.get("task"))
    fields = {k: body[k] for k in ("uri", "name", "comment", "tags", "system_tags") if body.get(k) is not None}
    if body.get("override_model_id"):
        doc = state.model(body["override_model_id"])
        _apply(state, doc, fields)
        created = False
    else:
        if not body.get("uri"):
            raise errors.missing_fields("uri")
        execution = task.get("execution") or {}
        doc = new_model(state, {
            "name": task["name"], **fields, "task": task["id"], "project": task.get("project"),
            "ready": False, "design": execution.get("model_desc") or {},
            "labels": execution.get("model_labels") or {}, "framework": execution.get("framework"),
        })
        created = True
    refs = task.setdefault("models", {}).setdefault("output", [])
    refs[:] = [r for r in refs if r.get("model") != doc["id"]]
    refs.append({"name": doc["name"], "model": doc["id"], "updated": now_iso()})
    if body.get("iteration") is not None:
        doc["last_iteration"] = int(body["iteration"])
    return {"id": doc["id"], "created": created, "updated": 0 if created else 1, "fields": fields}


@endpoint("models.get_all", "models.get_all_ex")
def get_all(state: State, body: Doc, call: Call) -> Doc:
    results, scroll_id = query.run(state.models.values(), body, query.MODELS, hidden_aware=False)  # no hidden filter for models
    return {"models": results, "scroll_id": scroll_id}


@endpoint("models.get_by_id")
def get_by_id(state: State, body: Doc, call: Call) -> Doc:
    return {"model": query.project(state.model(body.get("model")), None)}


@endpoint("models.get_by_task_id")
def get_by_task_id(state: State, body: Doc, call: Call) -> Doc:
    task = state.task(body.get("task"))
    refs = (task.get("models") or {}).get("output") or []
    if not refs:
        raise errors.ApiError(400, 201, "Invalid model id: no output model for task")
    return {"model": query.project(state.model(refs[-1]["model"]), None)}


@endpoint("models.set_ready")
def set_ready(state: State, body: Doc, call: Call) -> Doc:
    doc = state.model(body.get("model"))
    doc["ready"] = True
    doc["last_update"] = now_iso()
    published_task = None
    task = state.tasks.get(doc.get("task") or "")
    if body.get("publish_task", True) and task is not None and task["status"] != "published":
        from tests.standin.api.tasks import change_status  # tasks imports models' neighbours only

        res = change_status(state, task, "published", {}, force=bool(body.get("force_publish_task")), published=now_iso())
        published_task = {"id": task["id"], "data": res}
    return {"updated": 1, "published_task": published_task}


@endpoint("models.add_or_update_metadata")
def add_or_update_metadata(state: State, body: Doc, call: Call) -> Doc:
    doc = state.model(body.get("model"))
    if body.get("replace_metadata"):
        doc["metadata"] = {}
    doc.setdefault("metadata", {}).update(_metadata(body.get("metadata")))
    return {"updated": 1}


@endpoint("models.delete_metadata")
def delete_metadata(state: State, body: Doc, call: Call) -> Doc:
    doc = state.model(body.get("model"))
    for key in body.get("keys") or []:
        doc.setdefault("metadata", {}).pop(key, None)
    return {"updated": 1}


@endpoint("models.delete")
def delete(state: State, body: Doc, call: Call) -> Doc:
    doc = state.model(body.get("model"))
    del state.models[doc["id"]]
    return {"deleted": True, "url": doc.get("uri")}


@endpoint("models.get_frameworks")
def frameworks(state: State, body: Doc, call: Call) -> Doc:
    return {"frameworks": sorted({m["framework"] for m in state.models.values() if m.get("framework")})}
