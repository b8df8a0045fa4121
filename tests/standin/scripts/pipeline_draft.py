"""A PipelineController draft as clearml 2.1.12 stores it, for the web UI's "Run"; prints one JSON line.

Usage: python pipeline_draft.py PROJECT NAME STEPS_QUEUE

Three pipeline parameters (``Args`` section) and one step from an existing task; ``create_draft`` serializes the
controller task and leaves it in draft ('created') status, which is what the UI clones with
``pipelines.start_pipeline``.
"""

import json
import sys

from clearml import PipelineController, Task

project, name, steps_queue = sys.argv[1:4]
base = Task.create(project_name=project, task_name="noop-step", task_type="data_processing")
pipe = PipelineController(name=name, project=project, version="1.0.0", add_pipeline_tags=False)
pipe.set_default_execution_queue(steps_queue)
pipe.add_parameter("epochs", 5, "training epochs")
pipe.add_parameter("lr", 0.1)
pipe.add_parameter("dataset", "brain-mri")
pipe.add_step(name="noop", base_task_id=base.id, parameter_override={"General/epochs": "${pipeline.epochs}"})
pipe.create_draft()
print(json.dumps({"draft": pipe.id, "base": base.id}), flush=True)
