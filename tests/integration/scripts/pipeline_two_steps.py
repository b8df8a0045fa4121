"""A two-step PipelineController: the controller goes to the services queue, the steps to another.

Run from a git checkout; prints the controller task id as JSON, then enqueues the controller and exits.
Usage: python pipeline_two_steps.py --project P --services-queue S --steps-queue Q
"""

import argparse
import json


def add_one(x: int) -> int:
    return int(x) + 1


def times_ten(y: int) -> int:
    return int(y) * 10


if __name__ == "__main__":
    from clearml import PipelineController

    parser = argparse.ArgumentParser()
    parser.add_argument("--project", default="standin-tests")
    parser.add_argument("--services-queue", default="services")
    parser.add_argument("--steps-queue", default="default")
    args = parser.parse_args()

    pipe = PipelineController(name="two steps", project=args.project, version="1.0.0", add_pipeline_tags=False)
    pipe.add_parameter("x", 1)
    pipe.set_default_execution_queue(args.steps_queue)
    pipe.add_function_step(name="add_one", function=add_one, function_kwargs={"x": "${pipeline.x}"},
                           function_return=["y"], cache_executed_step=False)
    pipe.add_function_step(name="times_ten", function=times_ten, function_kwargs={"y": "${add_one.y}"},
                           function_return=["z"], parents=["add_one"], cache_executed_step=False)
    print(json.dumps({"task_id": pipe.id}), flush=True)
    pipe.start(queue=args.services_queue)
