"""workers.*: agent registration, status reports (which set a task's last_worker), runtime properties."""

from __future__ import annotations

from tests.standin.api import Call, endpoint
from tests.standin.state import COMPANY, USER, Doc, State, now_iso


def _worker(state: State, name: str) -> Doc:
    return state.workers.setdefault(name, {
        "id": name, "user": dict(USER), "company": {"id": COMPANY, "name": "Stand-in"},
        "ip": "127.0.0.1", "register_time": now_iso(), "last_activity_time": now_iso(),
        "last_report_time": now_iso(), "queue_ids": [], "tags": [], "system_tags": [],
        "runtime_properties": [], "task": None,
    })


def _queue_ids(state: State, names_or_ids: list[str] | None) -> list[str]:
    out = []
    for item in names_or_ids or []:
        if item in state.queues:
            out.append(item)
        else:
            queue = state.queue_by_name(item)
            if queue:
                out.append(queue["id"])
    return out


@endpoint("workers.register")
def register(state: State, body: Doc, call: Call) -> Doc:
    worker = _worker(state, body["worker"])
    worker.update(queue_ids=_queue_ids(state, body.get("queues")), tags=body.get("tags") or [],
                  system_tags=body.get("system_tags") or [], register_time=now_iso())
    return {}


@endpoint("workers.unregister")
def unregister(state: State, body: Doc, call: Call) -> Doc:
    state.workers.pop(body.get("worker"), None)
    return {}


@endpoint("workers.status_report")
def status_report(state: State, body: Doc, call: Call) -> Doc:
    worker = _worker(state, body["worker"])
    now = now_iso()
    worker.update(last_activity_time=now, last_report_time=now, machine_stats=body.get("machine_stats") or {})
    if body.get("queues") is not None or body.get("queue"):
        worker["queue_ids"] = _queue_ids(state, body.get("queues") or [body.get("queue")])
    task_id = body.get("task")
    worker["task"] = task_id
    if task_id and task_id in state.tasks:
        task = state.tasks[task_id]
        task["last_worker"] = body["worker"]
        task["last_worker_report"] = now
    return {}


@endpoint("workers.get_all")
def get_all(state: State, body: Doc, call: Call) -> Doc:
    workers = []
    for w in state.workers.values():
        view = {k: v for k, v in w.items() if k not in ("queue_ids", "runtime_properties", "machine_stats", "task")}
        view["queues"] = [
            {"id": q, "name": state.queues[q]["name"], "num_tasks": len(state.queues[q]["entries"])}
            for q in w["queue_ids"] if q in state.queues
        ]
        task = state.tasks.get(w.get("task") or "")
        view["task"] = {"id": task["id"], "name": task["name"]} if task else None
        workers.append(view)
    return {"workers": workers}


@endpoint("workers.get_runtime_properties")
def get_runtime_properties(state: State, body: Doc, call: Call) -> Doc:
    return {"runtime_properties": list(_worker(state, body["worker"]).get("runtime_properties") or [])}


@endpoint("workers.set_runtime_properties")
def set_runtime_properties(state: State, body: Doc, call: Call) -> Doc:
    worker = _worker(state, body["worker"])
    props = {p["key"]: p for p in worker.get("runtime_properties") or []}
    props.update({p["key"]: p for p in body.get("runtime_properties") or [] if p.get("key")})
    worker["runtime_properties"] = list(props.values())
    return {}
