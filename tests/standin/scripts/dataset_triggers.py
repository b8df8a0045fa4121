"""Dataset triggers of clearml 2.1.12 against a ClearML server; prints one JSON line.

Usage: python dataset_triggers.py PROJECT FOLDER QUEUE

Datasets ``PROJECT/images`` (v1) and ``PROJECT-other/images`` (v1) are finalized before a reference
time; then a ``TriggerScheduler`` gets two dataset triggers on ``PROJECT`` (a function, and a task
launched on QUEUE with ``Args/dataset_id=${dataset.id}``) and takes a first step; then v2 of both are
finalized and a v3 of ``PROJECT/images`` is left in progress, and the scheduler steps twice more.
The process ends with ``os._exit`` (the scheduler's own task need not be flushed).
"""

import json
import os
import sys
import threading
import time
from datetime import datetime, timezone

from clearml import Dataset, Task
from clearml.automation.trigger import DatasetTrigger, TriggerScheduler
from clearml.backend_api.session.client import APIClient

project, folder, queue = sys.argv[1:4]
other = f"{project}-other"


def dataset(dataset_project: str, parent: str | None = None, finalize: bool = True) -> str:
    ds = Dataset.create(dataset_project=dataset_project, dataset_name="images", parent_datasets=[parent] if parent else None)
    ds.add_files(path=folder)
    ds.upload()
    if finalize:
        ds.finalize()
    return ds.id


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


client = APIClient()
client.queues.create(name=queue)
old = dataset(project)
other_old = dataset(other)
time.sleep(0.05)  # the server keeps milliseconds
ref_time = datetime.now(timezone.utc)
time.sleep(0.05)

calls: list[str] = []
lock = threading.Lock()


def on_dataset(dataset_id: str) -> None:
    with lock:
        calls.append(dataset_id)


template = Task.create(project_name=f"{project}-jobs", task_name="consumer", task_type="data_processing")
template.set_parameters({"Args/dataset_id": ""})
scheduler = TriggerScheduler(force_create_task_name="dataset-triggers", force_create_task_project=f"{project}-scheduler")
scheduler.add_dataset_trigger(schedule_function=on_dataset, trigger_project=project, name="on-dataset")
scheduler.add_dataset_trigger(schedule_task_id=template.id, schedule_queue=queue, trigger_project=project, name="launch",
                              task_parameters={"Args/dataset_id": "${dataset.id}"})
scheduler._serialize()
first_step = scheduler._step()  # nothing new since the triggers were added

new = dataset(project, parent=old)
other_new = dataset(other, parent=other_old)
pending = dataset(project, parent=new, finalize=False)

trigger = DatasetTrigger(base_function=on_dataset, name="query")
query = trigger.build_query(ref_time, client)
legacy_query = trigger.build_query(ref_time, None)  # what a server older than 1.16.3 gets
only_fields = sorted(trigger._only_fields)
answers = {
    name: [{"id": t.id, "last_update": str(t.last_update), "last_change": str(t.last_change), "status": str(t.status)}
           for t in client.tasks.get_all(_allow_extra_fields_=True, only_fields=only_fields, **q)]
    for name, q in (("found", query), ("found_legacy", legacy_query))
}

second_step = scheduler._step()
wait_for(lambda: bool(calls))
third_step = scheduler._step()
time.sleep(0.3)  # a repeated call would start a thread now
scheduler._update_execution_plots()

launched = []
for executed in scheduler._executed_triggers:
    if executed.task_id:
        task = Task.get_task(task_id=executed.task_id)
        launched.append({"id": task.id, "parent": task.parent, "status": task.status, "tags": task.get_tags(),
                         "params": task.get_parameters(), "queue": task.data.execution.queue})
hidden_projects = Task.get_projects(name=f"^{project}/\\.datasets/.*", search_hidden=True, _allow_extra_fields_=True)
visible_projects = Task.get_projects(name=f"^{project}/\\.datasets/.*")
print(json.dumps({
    "ids": {"old": old, "other_old": other_old, "new": new, "other_new": other_new, "pending": pending},
    "query": query, "legacy_query": legacy_query, **answers,
    "steps": [first_step, second_step, third_step], "calls": calls, "launched": launched,
    "template": template.id, "queue_id": client.queues.get_all(name=f"^{queue}$")[0].id,
    "trigger_projects": sorted({t.project for t in scheduler.get_triggers()}),
    "hidden_projects": sorted((p.id, p.name) for p in hidden_projects),
    "visible_projects": [p.name for p in visible_projects],
    "configuration": scheduler._task._get_configuration_text("datasets"),
}), flush=True)
sys.stderr.flush()
os._exit(0)
