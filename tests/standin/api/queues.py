"""queues.*: FIFO queues whose head ``get_next_task`` hands out exactly once."""

from __future__ import annotations

from tests.standin import errors, query, request_models
from tests.standin.api import Call, endpoint
from tests.standin.state import COMPANY, USER, Doc, State, new_id, now_iso


def new_queue(state: State, name: str, tags: list[str] | None = None, system_tags: list[str] | None = None) -> Doc:
    """Create a queue (``QueueBLL.create``): the name is stripped and needs three characters (400/800, checked by
    ``Queue.save`` before the unique index); names are unique as on the real server."""
    name = errors.stripped_name(name)
    if state.queue_by_name(name):
        raise errors.ApiError(400, 801, "Value combination already exists (unique field already contains this value)", name=name)
    doc: Doc = {
        "id": new_id(), "name": name, "company": COMPANY, "user": USER["id"], "created": now_iso(),
        "tags": list(tags or []), "system_tags": list(system_tags or []), "entries": [], "metadata": {},
    }
    state.queues[doc["id"]] = doc
    return doc


def _view(doc: Doc, max_entries: int | None) -> Doc:
    out = query.project(doc, None)
    if max_entries is not None:
        out["entries"] = out["entries"][:max_entries]
    return out


@endpoint("queues.create")
def create(state: State, body: Doc, call: Call) -> Doc:
    request_models.required_string(body, "name")  # apimodels/queues.py CreateRequest; "" fails the length check
    errors.validate_tags(body.get("tags"), body.get("system_tags"))  # conform_tags(validate=True), always
    return {"id": new_queue(state, body["name"], body.get("tags"), body.get("system_tags"))["id"]}


@endpoint("queues.get_all", "queues.get_all_ex")
def get_all(state: State, body: Doc, call: Call) -> Doc:
    results, scroll_id = query.run(state.queues.values(), body, query.QUEUES)
    if body.get("max_task_entries") is not None:
        results = [_view(q, body["max_task_entries"]) if "entries" in q else q for q in results]
    return {"queues": results, "scroll_id": scroll_id}


@endpoint("queues.get_by_id")
def get_by_id(state: State, body: Doc, call: Call) -> Doc:
    return {"queue": _view(state.queue(body.get("queue")), body.get("max_task_entries"))}


@endpoint("queues.get_default")
def get_default(state: State, body: Doc, call: Call) -> Doc:
    default = [q for q in state.queues.values() if "default" in (q.get("system_tags") or [])]
    if not default:
        raise errors.no_default_queue()
    return {"id": default[0]["id"], "name": default[0]["name"]}


@endpoint("queues.add_task")
def add_task(state: State, body: Doc, call: Call) -> Doc:
    queue = state.queue(body.get("queue"))
    task = state.task(body.get("task"))
    if any(e["task"] == task["id"] for e in queue["entries"]):
        raise errors.task_already_queued(task["id"])
    queue["entries"].append({"task": task["id"], "added": now_iso()})
    return {"added": 1}


@endpoint("queues.remove_task")
def remove_task(state: State, body: Doc, call: Call) -> Doc:
    queue = state.queue(body.get("queue"))
    before = len(queue["entries"])
    queue["entries"] = [e for e in queue["entries"] if e["task"] != body.get("task")]
    removed = before - len(queue["entries"])
    if not removed:
        raise errors.ApiError(400, 703, "Invalid queue id or task not in queue")
    return {"removed": removed}


@endpoint("queues.get_next_task")
def get_next_task(state: State, body: Doc, call: Call) -> Doc:
    """Pop the head entry (once); the task's status is left for the agent's tasks.started."""
    queue = state.queue(body.get("queue"))
    if not queue["entries"]:
        return {}
    entry = queue["entries"].pop(0)
    result: Doc = {"entry": entry}
    if body.get("get_task_info"):
        task = state.tasks.get(entry["task"]) or {}
        result["task_info"] = {"company": task.get("company"), "user": task.get("user")}
    return result


@endpoint("queues.delete")
def delete(state: State, body: Doc, call: Call) -> Doc:
    queue = state.queue(body.get("queue"))
    if queue["entries"] and not body.get("force"):
        raise errors.ApiError(400, 702, "Queue is not empty")
    del state.queues[queue["id"]]
    return {"deleted": 1}


@endpoint("queues.update")
def update(state: State, body: Doc, call: Call) -> Doc:
    queue = state.queue(body.get("queue"))
    # data_model_for_partial_update: the sent fields that are not null
    fields = {k: body[k] for k in ("name", "tags", "system_tags") if body.get(k) is not None}
    if "tags" in fields:  # conform_tag_fields(validate=True) on the sent fields
        errors.validate_tags(fields["tags"], fields.get("system_tags"))
    if "name" in fields:  # Queue.safe_update validates the new value (StrippedStringField(min_length=3))
        fields["name"] = errors.stripped_name(fields["name"])
    queue.update(fields)
    return {"updated": 1, "fields": fields}


@endpoint("queues.get_queue_metrics")
def get_queue_metrics(state: State, body: Doc, call: Call) -> Doc:
    ids = body.get("queue_ids") or list(state.queues)
    return {"queues": [{"queue": q, "dates": [], "avg_waiting_times": [], "queue_lengths": []} for q in ids]}
