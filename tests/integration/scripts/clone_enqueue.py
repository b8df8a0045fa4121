"""Clone a task, edit its parameters and enqueue the clone; print the clone's id as JSON.

Usage: python clone_enqueue.py TEMPLATE_ID QUEUE LR NOTE [--no-enqueue]
"""

import json
import sys

from clearml import Task

template = Task.get_task(task_id=sys.argv[1])
clone = Task.clone(source_task=template, name=f"{template.name} (clone)")
clone.set_parameters({"General/lr": sys.argv[3], "General/note": sys.argv[4]})
if "--no-enqueue" not in sys.argv:
    Task.enqueue(clone, queue_name=sys.argv[2])
print(json.dumps({"task_id": clone.id}))
