"""A trainable-looking task: connect parameters, report them back as a scalar and a log line.

Run by hand once (from a git checkout) to make the template an agent can re-run with new values.
"""

import argparse
import json

from clearml import Task

parser = argparse.ArgumentParser()
parser.add_argument("--project", default="standin-tests")
parser.add_argument("--name", default="params echo")
args = parser.parse_args()

task = Task.init(project_name=args.project, task_name=args.name, reuse_last_task_id=False)
params = task.connect({"lr": 0.1, "note": "template"}, name="General")
task.get_logger().report_scalar("echo", "lr", value=float(params["lr"]), iteration=0)
task.get_logger().report_text(f"echo note={params['note']}")
print(json.dumps({"task_id": task.id}))
# close() waits up to 300 s for the repository detection that makes the task re-runnable; without it the
# SDK's exit hook waits only 10 s (clearml 2.1.12, Task._at_exit) and, under CPU load, left a template with
# no script for the agent to run ("can't find '__main__' module")
task.close()
