"""pipelines.start_pipeline: what the UI's "Run" does for a pipeline (clone, set Args, enqueue)."""

from __future__ import annotations

from tests.standin.api import Call, endpoint
from tests.standin.api.tasks import clone, enqueue
from tests.standin.state import Doc, State


@endpoint("pipelines.start_pipeline")
def start_pipeline(state: State, body: Doc, call: Call) -> Doc:
    src = state.task(body.get("task"))
    hyperparams = {section: dict(items) for section, items in (src.get("hyperparams") or {}).items()}
    if body.get("args"):
        hyperparams["Args"] = {
            str(a["name"]): {"section": "Args", "name": str(a["name"]), "value": str(a.get("value"))}
            for a in body["args"]
        }
    new_id = clone(state, {"task": src["id"], "new_task_hyperparams": hyperparams}, call)["id"]
    queued = enqueue(state, {"task": new_id, "queue": body.get("queue"), "status_message": "Starting pipeline"}, call)
    return {"pipeline": new_id, "enqueued": bool(queued["queued"])}
