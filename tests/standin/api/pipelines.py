"""pipelines.start_pipeline: what the web UI's "Run" of a pipeline does (apiserver/services/pipelines.py)."""

from __future__ import annotations

import re

from tests.standin import request_models
from tests.standin.api import Call, endpoint
from tests.standin.api.tasks import clone_task, enqueue_task, queue_watched
from tests.standin.state import Doc, State

ARGS = "Args"  # the hyperparameter section of a pipeline's arguments
PIPELINE_TAG = "pipeline"
# apimodels/pipelines.py StartPipelineRequest (Arg items: name and value, both required strings)
START_RULES: dict[str, request_models.Rule] = {
    "task": request_models.Str(required=True),
    "queue": request_models.Str(required=True),
    "args": request_models.Items("apiserver.apimodels.pipelines.Arg", {
        "name": request_models.Str(required=True), "value": request_models.Str(required=True),
    }),
}


def run_name(state: State, task: Doc) -> str | None:
    """``_update_task_name``: the last part of the run's project name, numbered ``<name> #<n>`` where n counts the
    tasks of that project with the ``pipeline`` system tag whose name ends with ``<name>`` or ``<name> #<digits>``
    (the new run included; any status, archived too); None when the task has no project."""
    project = state.projects.get(task.get("project") or "")
    if project is None:
        return None
    prefix = project["name"].rpartition("/")[2]
    mask = re.compile(rf"{re.escape(prefix)}( #\d+)?$")  # a MongoDB $regex: searched, not anchored at the start
    count = sum(
        1 for t in state.tasks.values()
        if t.get("project") == project["id"] and PIPELINE_TAG in (t.get("system_tags") or [])
        and mask.search(t.get("name") or "")
    )
    return f"{prefix} #{count}" if count > 0 else prefix


@endpoint("pipelines.start_pipeline")
def start_pipeline(state: State, body: Doc, call: Call) -> Doc:
    """Clone the pipeline task with the sent ``args`` merged into its ``Args`` section (the web app sends only the
    parameters shown in the run dialog; the others keep the draft's values, and a merged item is just
    section/name/value), rename the clone (``run_name``), and enqueue it on ``queue`` with status message
    "Starting pipeline" (no ``force``)."""
    request_models.validate(body, START_RULES)
    overrides = None
    if body.get("args"):
        overrides = {ARGS: {a["name"]: {"section": ARGS, "name": a["name"], "value": a["value"]} for a in body["args"]}}
    task, _ = clone_task(state, {"task": body["task"]}, hyperparams_overrides=overrides)
    name = run_name(state, task)
    if name is not None:
        task["name"] = name
    res = enqueue_task(state, {"task": task["id"], "queue": body["queue"], "status_message": "Starting pipeline"})
    result: Doc = {"pipeline": task["id"], "enqueued": True}
    if body.get("verify_watched_queue"):
        result["queue_watched"] = queue_watched(state, res["fields"]["execution.queue"])
    return result
