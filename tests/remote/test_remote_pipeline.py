"""The remote pipeline end to end: PipelineController + real clearml-agents + the stand-in server.

One pipeline run (module fixture) serves several tests: it is started with ``monai-pipeline remote``,
so the controller itself runs on a services-mode agent and each step on the agent of its queue.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.remote.harness import (RUN_TIMEOUT, STEP_NAMES, Env, controller_id, hydra, outputs, recorded_config,
                                  run_cli, steps_by_name, task_log)
from tests.standin.repo import make_project_clone
from tests.support import model_metadata, with_report_step

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.agent]


@dataclass
class Run:
    controller: dict[str, Any]
    steps: dict[str, dict[str, Any]]


FIRST_RUN_POLL_SECONDS = 1.5  # not the config's default, to see the override reach the controller on its agent


@pytest.fixture(scope="module")
def first_run(env: Env) -> Run:
    """``monai-pipeline remote`` with the tiny config, run to completion by the agents."""
    launched = run_cli(env.endpoint, env.checkout.work, env.logdir, "remote",
                       *env.overrides(f"pipeline.poll_seconds={FIRST_RUN_POLL_SECONDS}"))
    assert launched.returncode == 0, launched.output[-6000:]
    controller = controller_id(launched.output)
    done = env.wait(controller)
    assert done["status"] == "completed", env.describe(controller)
    return Run(done, steps_by_name(env.api, controller))


def test_pipeline_run_completes_on_agents(env: Env, first_run: Run) -> None:
    steps = first_run.steps
    assert set(steps) == set(STEP_NAMES), list(steps)
    queue_ids = {name: env.api.queue_id(q) for name, q in (("cpu", env.queues.cpu), ("gpu", env.queues.gpu))}
    expected = {"preprocess": ("cpu", env.agents.cpu), "train": ("gpu", env.agents.gpu),
                "evaluate": ("gpu", env.agents.gpu), "promote": ("gpu", env.agents.gpu)}
    for name, task in steps.items():
        queue, agent = expected[name]
        assert task["status"] == "completed", env.describe(first_run.controller["id"])
        assert task["execution"]["queue"] == queue_ids[queue], (name, task["execution"])
        assert task["last_worker"] == agent.worker_id, (name, task["last_worker"])
        script = task["script"]
        assert script["repository"] == env.checkout.remote
        assert script["version_num"] == env.checkout.commit
        assert script["entry_point"] == f"components/{name}.py"
        assert "Task.init" not in (script.get("diff") or ""), "the component must call Task.init itself"
        # the Hydra binding recorded the overrides (Hydra section) and the config it ran with (OmegaConf)
        assert hydra(task)["seed"] == "0"
        assert recorded_config(task).seed == 0

    train, evaluate, preprocess = steps["train"], steps["evaluate"], steps["preprocess"]
    assert hydra(train)["train.max_epochs"] == "3"
    assert recorded_config(train).train.max_epochs == 3
    assert list(recorded_config(train).model.net.channels) == [8, 16, 32]
    assert recorded_config(preprocess).data.num_cases == 8

    # ids flow from step to step through ClearML, not paths
    dataset_id = outputs(preprocess)["dataset_id"]
    assert dataset_id
    assert env.api.task(dataset_id)["status"] in ("completed", "published")  # a finalized Dataset version
    assert hydra(train)["inputs.dataset_id"] == dataset_id
    assert recorded_config(train).inputs.dataset_id == dataset_id
    model_id = outputs(train)["model_id"]
    assert model_id
    assert hydra(evaluate)["inputs.model_id"] == model_id
    assert hydra(evaluate)["inputs.dataset_id"] == dataset_id
    assert recorded_config(evaluate).inputs.model_id == model_id

    # the model registry: the model is train's output, tagged, and carries the test Dice from evaluate
    model = env.api.call("models.get_by_id", model=model_id)["model"]
    assert model["task"] == train["id"]
    metadata = model_metadata(model)
    test_dice = float(outputs(evaluate)["test_mean_dice"])
    assert float(metadata["test_mean_dice"]) == pytest.approx(test_dice, abs=1e-4)
    assert metadata.get("dataset_id") == dataset_id
    # promote: the first model of the project (no production model yet) against the threshold
    promote = steps["promote"]
    assert hydra(promote)["inputs.model_id"] == model_id
    assert hydra(promote)["inputs.metrics_url"] == outputs(evaluate)["metrics_url"]
    promoted = outputs(promote)["promoted"] == "True"
    assert promoted == (test_dice >= float(hydra(promote)["promote.min_dice"]))
    assert model["ready"] == promoted
    assert ("production" in model["tags"]) == promoted
    assert metadata["promotion_promote"] == str(promoted)
    assert "no production model yet" in metadata["promotion_reason"]

    # the pipeline page shows the test Dice (monitor_metrics) and the model (monitor_models)
    controller = env.api.task(first_run.controller["id"])
    monitored = {(v["metric"], v["variant"]): v for m in (controller.get("last_metrics") or {}).values()
                 for v in m.values()}
    assert monitored[("test", "mean_dice")]["value"] == pytest.approx(test_dice, abs=1e-4), controller.get("last_metrics")
    assert model_id in {m["model"] for m in controller["models"]["output"]}, controller["models"]
    # ... and the promotion decision: its scalars and, in the run's console, the decision text
    assert monitored[("promotion", "challenger_mean_dice")]["value"] == pytest.approx(test_dice, abs=1e-4)
    verdict = "PROMOTED" if promoted else "not promoted"
    assert f"promote: {verdict} {model_id} (vs no production model)" in task_log(env.api, controller["id"])


def test_orchestration_breakdown_of_the_run(env: Env, first_run: Run) -> None:
    """The run's time split per step (``benchmarks/orchestration.py``, which measures the overhead): every step
    is there in DAG order, no part is negative, the parts tile the controller's run, and the controller
    polled as often as the run's config said (``pipeline.poll_seconds``, recorded on the controller task)."""
    from benchmarks.orchestration import PART_NAMES, breakdown

    result = breakdown(env.api, first_run.controller["id"])
    print(result.text())
    assert [s.name for s in result.steps] == list(STEP_NAMES), result.text()
    previous_done = _seconds(first_run.controller["started"])
    for step in result.steps:
        assert step.status == "completed" and list(step.parts) == list(PART_NAMES), result.text()
        assert all(seconds >= 0 for seconds in step.parts.values()), result.text()
        assert step.agent_setup is not None and 0 <= step.agent_setup <= step.parts["startup"], result.text()
        # the parts add up to the step's share: from the previous step's end (the controller's start) to its own
        done = _seconds(first_run.steps[step.name]["completed"])
        assert step.total == pytest.approx(done - previous_done, abs=0.01), result.text()
        previous_done = done
    assert result.tail >= 0 and result.work > 0, result.text()  # work > 0: the steps' timestamped lines were found
    assert sum(s.total for s in result.steps) + result.tail == pytest.approx(result.total, abs=0.01), result.text()
    assert result.total == pytest.approx(_seconds(first_run.controller["completed"]) - _seconds(
        first_run.controller["started"]), abs=0.01)
    assert 0 <= result.overhead_per_step <= result.total / len(result.steps)
    assert result.poll_seconds == FIRST_RUN_POLL_SECONDS, env.api.task(first_run.controller["id"])["hyperparams"]


def _seconds(server_time: str) -> float:
    return datetime.fromisoformat(server_time).timestamp()


def _epochs_run(log: str) -> set[str]:
    """The 'epoch i/n' markers train printed (what it really ran)."""
    return set(re.findall(r"epoch (\d+/\d+)", log))


def test_cloned_train_task_runs_with_the_edited_hydra_override(env: Env, first_run: Run) -> None:
    """The UI's clone + edit + enqueue on one step task: the agent run uses the edited override."""
    original = first_run.steps["train"]
    clone = env.clone_edit_enqueue(original["id"], "train (edited)", "Hydra", {"train.max_epochs": "2"},
                                   env.queues.gpu)
    done = env.wait(clone, timeout=180)
    assert done["status"] == "completed", env.describe(clone)
    assert hydra(done)["train.max_epochs"] == "2"
    assert recorded_config(done).train.max_epochs == 2  # what Hydra composed on the agent
    assert _epochs_run(task_log(env.api, clone)) == {"1/2", "2/2"}
    assert _epochs_run(task_log(env.api, original["id"])) == {"1/3", "2/3", "3/3"}
    # the other overrides survived the clone; the new model is the clone's own
    assert recorded_config(done).model.net.channels == recorded_config(original).model.net.channels
    assert outputs(done)["model_id"] and outputs(done)["model_id"] != outputs(original)["model_id"]


@pytest.fixture(scope="module")
def cloned_run(env: Env, first_run: Run) -> Run:
    """The first run cloned as the UI does (clone, edit the pipeline parameters, enqueue to the controller queue):
    fewer epochs, another model (a config group) with its own channel count."""
    source = first_run.controller["id"]
    args = {k: v["value"] for k, v in env.api.task(source)["hyperparams"]["Args"].items()}
    overrides = [o for o in json.loads(args["overrides"]) if not o.startswith("model.")]
    edits = {"epochs": "2", "model": "segresnet", "overrides": json.dumps([*overrides, "model.net.init_filters=16"])}
    clone = env.clone_edit_enqueue(source, "monai-segmentation (edited)", "Args", edits, env.queues.controller)
    done = env.wait(clone)
    assert done["status"] == "completed", env.describe(clone)
    return Run(done, steps_by_name(env.api, clone))


def test_cloned_pipeline_run_steps_use_the_edited_parameters(env: Env, cloned_run: Run) -> None:
    train, evaluate = cloned_run.steps["train"], cloned_run.steps["evaluate"]
    assert hydra(train)["model"] == "segresnet" and hydra(train)["train.max_epochs"] == "2"
    for task in (train, evaluate):
        config = recorded_config(task)
        assert config.model.name == "segresnet"  # the group choice was applied, not just recorded
        assert config.model.net._target_ == "monai.networks.nets.SegResNet"
        assert config.model.net.init_filters == 16
        assert "channels" not in config.model.net
        assert config.train.max_epochs == 2
    assert _epochs_run(task_log(env.api, train["id"])) == {"1/2", "2/2"}
    assert "training segresnet" in task_log(env.api, train["id"])
    assert hydra(evaluate)["inputs.model_id"] == outputs(train)["model_id"]


def test_unchanged_preprocess_is_reused_from_the_cache(env: Env, first_run: Run, cloned_run: Run) -> None:
    """The clone changed only training parameters: its preprocess step is the first run's task."""
    assert "preprocess" not in cloned_run.steps, "preprocess ran again instead of being reused"
    first_dataset = outputs(first_run.steps["preprocess"])["dataset_id"]
    assert hydra(cloned_run.steps["train"])["inputs.dataset_id"] == first_dataset
    dag = json.loads(env.api.task(cloned_run.controller["id"])["configuration"]["Pipeline"]["value"])
    assert dag["preprocess"]["cache_executed_step"] is True
    assert dag["preprocess"]["executed"] == first_run.steps["preprocess"]["id"]


def test_failing_step_fails_the_pipeline_and_keeps_earlier_outputs(env: Env, first_run: Run) -> None:
    """``monai-pipeline controller`` (controller here, steps on agents) with a train step that cannot start;
    preprocess is forced to run again (the cache switch), so its new dataset must survive the failure."""
    finished = run_cli(env.endpoint, env.checkout.work, env.logdir, "controller",
                       *env.overrides("train.resume=/nope/last.pt", "pipeline.force_rerun=true",
                                      "pipeline.retries.count=0"), timeout=RUN_TIMEOUT)
    controller = controller_id(finished.output)
    assert finished.returncode == 1, finished.output[-6000:]
    assert env.api.task(controller)["status"] == "failed", env.describe(controller)
    steps = steps_by_name(env.api, controller)
    assert set(steps) == {"preprocess", "train"}, list(steps)  # evaluate never started
    assert steps["train"]["status"] == "failed"
    assert "ERROR in train: config key 'train.resume': checkpoint '/nope/last.pt' does not exist" in \
        task_log(env.api, steps["train"]["id"])
    preprocess = steps["preprocess"]
    assert preprocess["status"] == "completed"
    dataset_id = outputs(preprocess)["dataset_id"]
    assert dataset_id and dataset_id != outputs(first_run.steps["preprocess"])["dataset_id"]
    assert env.api.task(dataset_id)["status"] in ("completed", "published")
    assert hydra(steps["train"])["inputs.dataset_id"] == dataset_id


def test_registered_draft_validates_ui_edited_parameters_before_any_step(env: Env) -> None:
    """``monai-pipeline register`` leaves a draft with typed parameters; run from the UI with a bad value,
    the controller stops with a message naming the parameter and enqueues no step."""
    registered = run_cli(env.endpoint, env.checkout.work, env.logdir, "register", *env.overrides())
    assert registered.returncode == 0, registered.output[-6000:]
    draft = env.api.task(controller_id(registered.output))
    assert draft["status"] == "created"
    args = {k: v["value"] for k, v in draft["hyperparams"]["Args"].items()}
    assert args["epochs"] == "3" and args["model"] == "unet" and "Pipeline" in draft["configuration"]

    run = env.clone_edit_enqueue(draft["id"], "monai-segmentation (bad epochs)", "Args", {"epochs": "three"},
                                 env.queues.controller)
    done = env.wait(run, timeout=180)
    assert done["status"] == "failed", env.describe(run)
    deadline = time.monotonic() + 30  # the console log reaches the server asynchronously
    while "pipeline parameter 'epochs'" not in task_log(env.api, run) and time.monotonic() < deadline:
        time.sleep(1)
    assert "pipeline parameter 'epochs'" in task_log(env.api, run), env.describe(run)
    assert steps_by_name(env.api, run) == {}, "no step may start with invalid parameters"


def test_step_added_by_one_entry_and_one_file_runs_on_agents(env: Env, tmp_path: Path) -> None:
    """The remote pipeline from a checkout with the report step (tests/support.with_report_step): the step
    is created, enqueued to the cpu queue and gets evaluate's test Dice as ``Hydra/inputs.test_mean_dice``."""
    checkout = make_project_clone(tmp_path / "repo", extra_files=with_report_step(), env=env.endpoint.env())
    finished = run_cli(env.endpoint, checkout.work, env.logdir, "controller", *env.overrides(), timeout=RUN_TIMEOUT)
    controller = controller_id(finished.output)
    assert finished.returncode == 0, finished.output[-6000:] + env.describe(controller)
    steps = steps_by_name(env.api, controller)
    assert set(steps) >= {"train", "evaluate", "promote", "report"}, list(steps)
    report, evaluate, promote = steps["report"], steps["evaluate"], steps["promote"]
    assert report["status"] == "completed", env.describe(controller)
    assert report["script"]["entry_point"] == "components/report.py"
    assert report["script"]["version_num"] == checkout.commit
    assert report["execution"]["queue"] == env.api.queue_id(env.queues.cpu)
    assert report["type"] == "qc"
    dice = outputs(evaluate)["test_mean_dice"]
    assert hydra(report)["inputs.test_mean_dice"] == dice  # ${evaluate.parameters.Outputs/test_mean_dice}, resolved
    assert hydra(report)["inputs.promoted"] == outputs(promote)["promoted"]
    assert outputs(report)["verdict"].endswith(f"({float(dice):.5f}, promoted={outputs(promote)['promoted']})")
    assert "report verdict:" in task_log(env.api, report["id"])
