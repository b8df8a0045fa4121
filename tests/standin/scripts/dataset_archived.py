"""clearml 2.1.12's ``Dataset.get`` by project and name skips an archived version; prints one JSON line.

Usage: python dataset_archived.py PROJECT FOLDER

Two finalized versions of ``PROJECT/volumes``; the newer one is archived with ``Task.set_archived`` (tasks.edit
with force, on a completed task). ``Dataset.get`` sends ``system_tags=["__$all", "dataset", "__$not", "archived"]``
unless ``include_archived``.
"""

import json
import sys

from clearml import Dataset, Task

project, folder = sys.argv[1:3]


def version(parent: str | None = None) -> str:
    ds = Dataset.create(dataset_project=project, dataset_name="volumes", parent_datasets=[parent] if parent else None)
    ds.add_files(path=folder)
    ds.upload()
    ds.finalize()
    return ds.id


v1 = version()
v2 = version(v1)
Task.get_task(task_id=v2).set_archived(True)
print(json.dumps({
    "v1": v1,
    "v2": v2,
    "archived": Task.get_task(task_id=v2).get_archived(),
    "latest": Dataset.get(dataset_project=project, dataset_name="volumes").id,
    "with_archived": Dataset.get(dataset_project=project, dataset_name="volumes", include_archived=True).id,
}), flush=True)
