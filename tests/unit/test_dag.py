"""The step list: consistency checks, hand-over lookup, and one source for each step's folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from pipelines import dag
from pipelines.config import CONFIG_DIR
from pipelines.local import input_overrides


def test_the_declared_steps_are_consistent() -> None:
    dag.check()
    assert [s.name for s in dag.STEPS][:3] == ["preprocess", "train", "evaluate"]
    assert dag.producer(dag.by_name()["evaluate"], "dataset_id").name == "preprocess"  # through train
    assert dag.producer(dag.by_name()["evaluate"], "model_id").name == "train"


@pytest.mark.parametrize("steps, message", [
    ((dag.Step("a", "training", "cpu"), dag.Step("a", "testing", "cpu")), "declared twice"),
    ((dag.Step("b", "training", "cpu", parents=("a",)),), "parent 'a', which is not declared before it"),
    ((dag.Step("a", "training", "cpu", outputs=("x",)), dag.Step("b", "testing", "cpu", parents=("a",), inputs=("y",))),
     "takes input 'y', which no earlier step hands on"),
])
def test_inconsistent_step_lists_are_refused(steps: tuple[dag.Step, ...], message: str) -> None:
    with pytest.raises(dag.DagError, match=message):
        dag.check(steps)


@pytest.mark.parametrize("step", dag.STEPS, ids=lambda s: s.name)
def test_hydra_run_dir_is_the_step_folder(step: dag.Step) -> None:
    """A step's script is components/<name>.py, so Hydra's job name is the step name and its run dir
    (conf/config.yaml) is the folder every runner reads: one source for the path."""
    assert Path(step.script).stem == step.name and step.path.is_file()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3", job_name=step.name):
        cfg = compose(config_name="config", overrides=["paths.run_id=r"], return_hydra_config=True)
    OmegaConf.resolve(cfg)
    assert Path(cfg.hydra.run.dir) == step.folder(cfg.paths.run_dir)


def test_local_runner_wires_only_declared_inputs_that_were_handed_on() -> None:
    results = {"preprocess": {"outputs": {"dataset_id": None, "manifest": "/runs/a b/preprocess/manifest.json"}},
               "train": {"outputs": {"model_id": None, "val_mean_dice": 0.5, "checkpoint": "/c/best.pt"}}}
    wired = input_overrides(dag.by_name()["evaluate"], results)
    assert wired == ["++inputs.manifest='/runs/a b/preprocess/manifest.json'", "++inputs.checkpoint='/c/best.pt'"]


def test_local_runner_hands_over_files_not_registry_ids() -> None:
    """Online, train also hands on a model id; a local run still evaluates the checkpoint file (evaluating
    the registered model would publish it), as before the DAG declared the hand-over."""
    results = {"preprocess": {"outputs": {"dataset_id": "d1", "manifest": "/m.json"}},
               "train": {"outputs": {"model_id": "m1", "val_mean_dice": 0.5, "checkpoint": "/best.pt"}}}
    assert input_overrides(dag.by_name()["evaluate"], results) == ["++inputs.manifest='/m.json'",
                                                                   "++inputs.checkpoint='/best.pt'"]


def test_a_step_on_its_own_reads_earlier_outputs_unless_told_otherwise(tmp_path: Path) -> None:
    import json

    from components.common.entry import RESULT_NAME, StepContext
    from pipelines.config import compose_config

    def context(*overrides: str) -> StepContext:
        cfg = compose_config([f"paths.output_root={tmp_path}", "paths.run_id=r", *overrides])
        return StepContext(dag.by_name()["evaluate"], cfg, tmp_path / "r" / "evaluate")

    train_dir = tmp_path / "r" / "train"
    train_dir.mkdir(parents=True)
    (train_dir / RESULT_NAME).write_text(json.dumps({"outputs": {"model_id": "m1", "checkpoint": "/best.pt"}}))
    assert context().input("checkpoint") == "/best.pt" and context().input("model_id") is None
    assert context().input("manifest") is None  # preprocess of run r left no result
    by_hand = context("inputs.model_id=m2")
    assert by_hand.input("model_id") == "m2" and by_hand.input("checkpoint") is None  # the hand-set one is meant
    with pytest.raises(KeyError, match="does not declare the input 'verdict'"):
        context().input("verdict")
