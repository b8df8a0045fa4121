"""clearml 2.1.12's TaskScheduler against a ClearML server; prints one JSON line.

Usage: python task_scheduler.py PROJECT QUEUE

A template task gets parameters and a configuration; a scheduler job (execute_immediately) clones it
into ``PROJECT/out`` with a parameter override and a task override and enqueues it on QUEUE. The
scheduler stores its configuration and state artifact and reads both back, as ``start()`` does.
The process ends with ``os._exit`` (the scheduler's own task need not be flushed).
"""

import json
import os
import sys

from clearml import Task
from clearml.automation.scheduler import TaskScheduler
from clearml.backend_api.session.client import APIClient

project, queue = sys.argv[1:3]
client = APIClient()
client.queues.create(name=queue)
template = Task.create(project_name=project, task_name="template", task_type="training")
template.set_parameters({"General/lr": "0.1", "General/epochs": "3"})
template.set_configuration_object("config", config_text="seed: 1\n")

scheduler = TaskScheduler(force_create_task_name="task-scheduler", force_create_task_project=f"{project}/services")
scheduler.add_task(schedule_task_id=template.id, queue=queue, name="nightly", hour=24, execute_immediately=True,
                   task_parameters={"General/lr": "0.5"}, task_overrides={"script.branch": "release"},
                   target_project=f"{project}/out")
scheduler._serialize_state()
scheduler._serialize()
scheduler._task.flush(wait_for_uploads=True)  # the state artifact is uploaded in the background
scheduler._deserialize()
scheduler._deserialize_state()  # downloads the state artifact from the files server
launched = scheduler._step()
scheduler._update_execution_plots()

jobs = []
for executed in scheduler._executed_jobs:
    task = Task.get_task(task_id=executed.task_id)
    jobs.append({"id": task.id, "parent": task.parent, "status": task.status, "project": task.get_project_name(),
                 "params": task.get_parameters(), "branch": task.data.script.branch, "queue": task.data.execution.queue,
                 "config": task.get_configuration_object("config")})
scheduler._task.reload()
print(json.dumps({
    "template": template.id, "queue_id": client.queues.get_all(name=f"^{queue}$")[0].id, "launched": launched,
    "jobs": jobs, "scheduled": [j.name for j in scheduler.get_scheduled_tasks()],
    "configuration": json.loads(scheduler._task._get_configuration_text("schedule") or "null"),
    "artifacts": sorted(scheduler._task.artifacts),
}), flush=True)
sys.stderr.flush()
os._exit(0)
