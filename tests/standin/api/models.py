"""models.*: registration, editing, update_for_task (output models), readiness and metadata.

Follows clearml-server's apiserver/services/models.py, bll/model/__init__.py (``ModelBLL``) and
bll/model/metadata.py (``Metadata``) of v1.17.0.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.standin import errors, query, request_models
from tests.standin.api import Call, endpoint
from tests.standin.api.projects import include_subprojects
from tests.standin.api.tasks import change_status, update_statistics
from tests.standin.state import COMPANY, USER, Doc, State, new_id, now_iso

# services/models.py ``create_fields``: what models.edit takes (None values are dropped, parse_from_call)
EDIT_FIELDS = ("name", "tags", "system_tags", "task", "comment", "uri", "project", "parent", "framework", "design",
               "labels", "ready", "metadata")
# database/model/model.py: the fields with ``user_set_allowed``; models.update (Model.safe_update) keeps only these
USER_SET_ALLOWED = ("name", "project", "created", "comment", "tags", "system_tags", "uri", "ui_cache", "metadata")
# services/models.py ``last_update_fields``: only these move ``last_update``; any change moves ``last_change``
LAST_UPDATE_FIELDS = ("uri", "framework", "design", "labels", "ready", "metadata", "system_tags", "tags")
# apimodels/metadata.py MetadataItem: three required string fields (jsonmodels iterates them sorted by name)
METADATA_ITEM_FIELDS = ("key", "type", "value")
METADATA_ITEM_CLASS = "apiserver.apimodels.metadata.MetadataItem"


def new_model(state: State, body: Doc) -> Doc:
    now = now_iso()
    doc: Doc = {
        "id": new_id(), "company": COMPANY, "user": USER["id"], "created": now, "last_update": now,
        "last_change": now, "ready": True, "tags": [], "system_tags": [], "labels": {}, "design": {},
        "metadata": {}, "comment": "", "framework": None, "uri": None, "project": None, "task": None,
        "parent": None, "last_iteration": 0,
    }
    doc.update({k: copy.deepcopy(body[k]) for k in EDIT_FIELDS if k in body})
    state.models[doc["id"]] = doc
    return doc


# --- request validation, as the real server's request models and helpers refuse -----------------------

METADATA_RULES: dict[str, request_models.Rule] = {  # apimodels/metadata.py AddOrUpdateMetadata
    "metadata": request_models.Items(METADATA_ITEM_CLASS, {k: request_models.Str(required=True) for k in METADATA_ITEM_FIELDS},
                                     min_items=1),
    "model": request_models.Str(required=True),
}


CREATE_RULES: dict[str, request_models.Rule] = {  # apimodels/models.py CreateModelRequest (its string fields)
    "name": request_models.Str(required=True), "uri": request_models.Str(required=True),
    "comment": request_models.Str(), "project": request_models.Str(), "parent": request_models.Str(),
    "framework": request_models.Str(), "task": request_models.Str(),
}


def _metadata_items(body: Doc) -> list[Doc]:
    """``AddOrUpdateMetadata.metadata``: at least one MetadataItem, each with string key, type and value."""
    request_models.validate(body, METADATA_RULES)
    return [{name: item[name] for name in METADATA_ITEM_FIELDS} for item in body["metadata"]]


def _escape_metadata(fields: Doc) -> None:
    """services/utils.py ``escape_metadata``: ``metadata.items()`` on whatever was sent; anything but an object fails
    there with an AttributeError, which the real server answers as a 500."""
    metadata = fields.get("metadata")
    if not metadata:
        if "metadata" in fields:
            fields["metadata"] = {}
        return
    if not isinstance(metadata, dict):
        raise errors.ApiError(500, 0, f"'{type(metadata).__name__}' object has no attribute 'items'")
    fields["metadata"] = copy.deepcopy(metadata)


def _prepare_update_fields(state: State, fields: Doc) -> Doc:
    """services/models.py ``prepare_update_fields``: a new uri clears the UI cache, the task must exist, labels map
    strings to integers, tags carry no operator prefix, metadata is an object."""
    fields = dict(fields)
    if "uri" in fields:
        fields["ui_cache"] = fields.pop("ui_cache", {})
    if "task" in fields:
        state.task(fields["task"])
    labels = fields.get("labels")
    if "labels" in fields and isinstance(labels, dict):
        bad = [v for v in labels.values() if not isinstance(v, int)]
        if bad:
            raise errors.validation_error("labels values must be integers", values=bad)
    if "tags" in fields:
        errors.validate_tags(fields["tags"], fields.get("system_tags"))
    _escape_metadata(fields)
    return fields


# --- endpoints ------------------------------------------------------------------------------------------

@endpoint("models.create")
def create(state: State, body: Doc, call: Call) -> Doc:
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):  # CreateModelRequest: DictField(value_types=[MetadataItem])
        raise request_models.jsonmodels_error(f"Error for field 'metadata': {request_models.wrong_type('dict', metadata)}.")
    request_models.validate(body, CREATE_RULES)
    if body.get("project") and body["project"] not in state.projects:  # validate_id(Project, ...)
        raise errors.validation_error("Invalid project ids", project=body["project"])
    if body.get("task"):
        state.task(body["task"])
    errors.validate_tags(body.get("tags"), body.get("system_tags"))  # the request model always has both lists
    fields = {k: body[k] for k in EDIT_FIELDS if body.get(k) is not None}
    _escape_metadata(fields)
    fields["name"] = errors.stripped_name(fields["name"])  # model.save(): name needs three characters (400/800)
    return {"id": new_model(state, fields)["id"], "created": True}


def _check_references(state: State, fields: Doc) -> None:
    """``parse_from_call`` with create_fields: task, project and parent ids must exist (400/16)."""
    for key, kind, pool in (("task", "Task", state.tasks), ("project", "Project", state.projects),
                            ("parent", "Model", state.models)):
        if key in fields and fields[key] not in pool:
            raise errors.fields_value_error(f"expecting {kind} id", id=fields[key], field=key)


@endpoint("models.edit")
def edit(state: State, body: Doc, call: Call) -> Doc:
    """Any of the create fields (``ready`` too); ``iteration`` goes to the model's task's statistics."""
    doc = state.model(body.get("model"))
    fields = {k: copy.deepcopy(body[k]) for k in EDIT_FIELDS if body.get(k) is not None}
    _check_references(state, fields)
    fields = _prepare_update_fields(state, fields)
    task_id = doc.get("task") or fields.get("task")
    if task_id and body.get("iteration") is not None:
        update_statistics(state, task_id, last_iteration_max=int(body["iteration"]))
    if not fields:
        return {"updated": 0}
    if "name" in fields:  # model.update validates the value: three characters at least (400/800)
        fields["name"] = errors.stripped_name(fields["name"])
    now = now_iso()
    fields.update(last_change=now, last_changed_by=USER["id"])
    if any(f in fields for f in LAST_UPDATE_FIELDS):
        fields["last_update"] = now
    doc.update(copy.deepcopy(fields))
    return {"updated": 1, "fields": fields}


@endpoint("models.update")
def update(state: State, body: Doc, call: Call) -> Doc:
    """``_update_model``: only user-settable fields are written (ready, framework, design, labels, parent and task
    are dropped silently); ``iteration`` with ``task`` goes to that task's statistics."""
    doc = state.model(body.get("model"))
    data = _prepare_update_fields(state, body)
    if data.get("task") and data.get("iteration") is not None:
        update_statistics(state, data["task"], last_iteration_max=int(data["iteration"]))
    fields = {k: copy.deepcopy(data[k]) for k in USER_SET_ALLOWED if k in data}
    if not fields:
        return {"updated": 0, "fields": {}}
    if fields.get("name") is not None:  # Model.safe_update validates the value (400/800 under three characters)
        fields["name"] = errors.stripped_name(fields["name"])
    now = now_iso()
    fields.update(last_change=now, last_changed_by=USER["id"])
    doc.update(copy.deepcopy(fields))
    if any(f in fields for f in LAST_UPDATE_FIELDS):
        doc["last_update"] = now
    return {"updated": 1, "fields": fields}


@endpoint("models.update_for_task")
def update_for_task(state: State, body: Doc, call: Call) -> Doc:
    """Create (or override) the output model of a task, as the SDK's OutputModel did before API 2.13."""
    task = state.task(body.get("task"))
    fields = {k: body[k] for k in ("uri", "name", "comment", "tags", "system_tags") if body.get(k) is not None}
    if "name" in fields:  # the model is saved or updated with it: three characters at least (400/800)
        fields["name"] = errors.stripped_name(fields["name"])
    if body.get("override_model_id"):
        doc = state.model(body["override_model_id"])
        doc.update(copy.deepcopy(fields))
        doc["last_update"] = doc["last_change"] = now_iso()
        created = False
    else:
        if not body.get("uri"):
            raise errors.missing_fields("uri")
        execution = task.get("execution") or {}
        name = fields["name"] if "name" in fields else errors.stripped_name(task["name"])
        doc = new_model(state, {
            "name": name, **fields, "task": task["id"], "project": task.get("project"),
            "ready": False, "design": execution.get("model_desc") or {},
            "labels": execution.get("model_labels") or {}, "framework": execution.get("framework"),
        })
        created = True
    refs = task.setdefault("models", {}).setdefault("output", [])
    refs[:] = [r for r in refs if r.get("model") != doc["id"]]
    refs.append({"name": doc["name"], "model": doc["id"], "updated": now_iso()})
    # TaskBLL.update_statistics: the iteration is the task's, not the model's
    update_statistics(state, task["id"], last_iteration_max=None if body.get("iteration") is None else int(body["iteration"]))
    return {"id": doc["id"], "created": created, "updated": 0 if created else 1, "fields": fields}


@endpoint("models.get_all", "models.get_all_ex")
def get_all(state: State, body: Doc, call: Call) -> Doc:
    body = include_subprojects(state, body)
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


def publish_model(state: State, model_id: Any, force_publish_task: bool = False,
                  publish_task: bool = True) -> tuple[int, Doc | None]:
    """``ModelBLL.publish_model``: a ready model is refused (400/203); with ``publish_task`` the model's task is
    published first unless it already is (its status must allow it unless ``force_publish_task``, else 400/110 and the
    model stays as it was); then the model becomes ready. Returns (updated, published_task)."""
    doc = state.model(model_id)
    if doc.get("ready"):
        raise errors.model_is_ready(doc["company"], doc["id"])
    published_task = None
    task = state.tasks.get(doc.get("task") or "") if publish_task else None
    if task is not None and task["status"] != "published":
        res = change_status(state, task, "published", {}, force=force_publish_task, published=now_iso())
        published_task = {"id": task["id"], "data": res}
    now = now_iso()
    doc.update(ready=True, last_update=now, last_change=now)
    return 1, published_task


def _bool(body: Doc, name: str, default: bool) -> bool:
    value = body.get(name)
    return default if value is None else bool(value)


@endpoint("models.set_ready")
def set_ready(state: State, body: Doc, call: Call) -> Doc:
    request_models.required_string(body, "model")
    updated, published_task = publish_model(state, body["model"], _bool(body, "force_publish_task", False),
                                            _bool(body, "publish_task", True))
    result: Doc = {"updated": updated}
    if published_task is not None:  # PublishModelResponse leaves an unset field out
        result["published_task"] = published_task
    return result


@endpoint("models.publish_many")
def publish_many(state: State, body: Doc, call: Call) -> Doc:
    """``run_batch_operation`` over ``publish_model``: each id succeeds or is reported with its error."""
    ids = request_models.string_list(body, "ids")
    force, publish_task = _bool(body, "force_publish_task", False), _bool(body, "publish_task", True)
    succeeded, failed = [], []
    for model_id in ids:
        try:
            updated, published_task = publish_model(state, model_id, force, publish_task)
        except errors.ApiError as exc:
            failed.append({"id": model_id, "error": {"codes": [exc.code, exc.subcode], "msg": exc.msg, "data": exc.data}})
        else:
            succeeded.append({"id": model_id, "updated": bool(updated), "published_task": published_task})
    return {"succeeded": succeeded, "failed": failed}


@endpoint("models.add_or_update_metadata")
def add_or_update_metadata(state: State, body: Doc, call: Call) -> Doc:
    """``Metadata.edit_metadata``: items keyed by key, all replaced with ``replace_metadata``; moves last_update."""
    items = _metadata_items(body)
    doc = state.model(body["model"])
    metadata = {item["key"]: item for item in items}
    if body.get("replace_metadata"):
        doc["metadata"] = metadata
    else:
        doc.setdefault("metadata", {}).update(metadata)
    doc["last_update"] = doc["last_change"] = now_iso()
    return {"updated": 1}


@endpoint("models.delete_metadata")
def delete_metadata(state: State, body: Doc, call: Call) -> Doc:
    """``Metadata.delete_metadata``: at least one key; unknown keys are no error; moves last_update."""
    keys = request_models.string_list(body, "keys")
    request_models.required_string(body, "model")
    doc = state.model(body["model"])
    for key in set(keys):
        doc.setdefault("metadata", {}).pop(key, None)
    doc["last_update"] = doc["last_change"] = now_iso()
    return {"updated": 1}


@endpoint("models.delete")
def delete(state: State, body: Doc, call: Call) -> Doc:
    doc = state.model(body.get("model"))
    del state.models[doc["id"]]
    return {"deleted": True, "url": doc.get("uri")}


@endpoint("models.get_frameworks")
def frameworks(state: State, body: Doc, call: Call) -> Doc:
    return {"frameworks": sorted({m["framework"] for m in state.models.values() if m.get("framework")})}
