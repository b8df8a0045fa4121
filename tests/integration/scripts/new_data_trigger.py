"""The schedule's new-data trigger against a server: which raw Dataset versions it reacts to; prints one JSON line.

Usage: python new_data_trigger.py PROJECT FOLDER
"""

import json
import os
import sys
import time
from datetime import datetime, timezone

from clearml import Dataset
from clearml.automation import TriggerScheduler
from clearml.backend_api.session.client import APIClient

from components.common.errors import PipelineError
from pipelines.schedule import add_new_data_trigger

project, folder = sys.argv[1:3]


def version(tags: list[str] | None) -> str:
    ds = Dataset.create(dataset_project=f"{project}/raw", dataset_name="cases", dataset_tags=tags)
    ds.add_files(path=folder)
    ds.upload()
    ds.finalize()
    return ds.id


def registration(raw_project: str, required: list[str], since: datetime) -> dict:
    return {"name": "p", "draft_id": "draft", "controller_queue": "services", "parameters": {},
            "dataset": {"project": raw_project, "name": "cases"}, "since": since.isoformat(),
            "trigger": {"required_tags": required, "poll_minutes": 1.0}}


before = version(None)  # the Dataset exists when the trigger is registered
time.sleep(0.05)
since = datetime.now(timezone.utc)
time.sleep(0.05)
versions = {"approved": version(["approved"]), "approved+ct": version(["approved", "ct"]), "untagged": version(None)}
found = {}
client = APIClient()
for label, required in (("any", []), ("approved+ct", ["approved", "ct"])):
    scheduler = TriggerScheduler(force_create_task_name="trigger test", force_create_task_project=project)
    add_new_data_trigger(scheduler, registration(f"{project}/raw", required, since))
    trigger = scheduler.get_triggers()[-1]
    query = trigger.build_query(trigger.last_update, client)
    found[label] = sorted(t.id for t in client.tasks.get_all(_allow_extra_fields_=True, only_fields=["id"], **query))
try:
    add_new_data_trigger(TriggerScheduler(), registration(f"{project}/no-such-raw", [], since))
    missing = ""
except PipelineError as e:
    missing = str(e)
print(json.dumps({"before": before, "versions": versions, "found": found, "missing": missing}), flush=True)
os._exit(0)
