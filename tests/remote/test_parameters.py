"""Pipeline parameters: typing, validation, mapping to the steps' Hydra overrides; the retry policy."""

from __future__ import annotations

from typing import Any

import pytest

from components.common.errors import ConfigError
from pipelines.dag import by_name
from pipelines.parameters import ParameterError, as_ui_values
from pipelines.remote import GrowingDelayRetry, plan_from_overrides, plan_from_parameters, step_parameters
from tests.remote.harness import TINY


@pytest.fixture(scope="module")
def ui_values() -> dict[str, str]:
    """The parameters of a tiny run as the controller task stores them (text, as edited in the UI)."""
    return as_ui_values(plan_from_overrides([*TINY, "pipeline.queues.gpu=q-train"]).values)


def test_command_line_overrides_become_typed_parameters(ui_values: dict[str, str]) -> None:
    unet_free = [o for o in TINY if not o.startswith("model.")]
    plan = plan_from_overrides([*unet_free, "model=segresnet", "model.net.init_filters=4", "train.max_epochs=7",
                                "train.optimizer.lr=0.01", "seed=3"])
    assert plan.values["model"] == "segresnet"
    assert plan.values["epochs"] == 7 and plan.values["learning_rate"] == 0.01 and plan.values["seed"] == 3
    assert plan.values["patch_size"] == [24, 24, 24]
    assert "model.net.init_filters=4" in plan.values["overrides"]
    assert not any(o.startswith(("train.max_epochs", "model=")) for o in plan.values["overrides"])
    assert plan.cfg.model.name == "segresnet" and plan.cfg.model.net.init_filters == 4
    assert plan.cfg.train.max_epochs == 7


def test_ui_text_round_trips(ui_values: dict[str, str]) -> None:
    plan = plan_from_parameters(ui_values)
    assert as_ui_values(plan.values) == ui_values
    assert plan.cfg.pipeline.queues.gpu == "q-train"


@pytest.mark.parametrize("name, value, message", [
    ("epochs", "five", "expected an integer"),
    ("epochs", "2.5", "expected an integer"),
    ("epochs", "0", "must be in [1"),
    ("learning_rate", "2", "must be in (0.0, 1.0]"),
    ("model", "resnet", "unknown model 'resnet' (choose from: segresnet, unet)"),
    ("data", "imagenet", "unknown data"),
    ("patch_size", "[24,24]", "three integers"),
    ("patch_size", "[4,4,4]", "each size must be in [8, 1024]"),
    ("dice_threshold", "1.5", "must be in [0.0, 1.0]"),
    ("force_rerun", "maybe", "expected true or false"),
    ("overrides", '["train.max_epochs=3"]', "the parameter 'epochs' controls"),
    ("overrides", '["inputs.dataset_id=abc"]', "the pipeline sets itself"),
    ("overrides", '["justaword"]', "not a Hydra override"),
])
def test_bad_values_are_refused_with_the_parameter_named(ui_values: dict[str, str], name: str, value: str,
                                                         message: str) -> None:
    with pytest.raises(ParameterError) as info:
        plan_from_parameters({**ui_values, name: value})
    assert info.value.name == name
    assert message in str(info.value)


def test_unknown_and_missing_parameters_are_refused(ui_values: dict[str, str]) -> None:
    with pytest.raises(ParameterError, match="'epoch': unknown parameter"):
        plan_from_parameters({**ui_values, "epoch": "3"})
    with pytest.raises(ParameterError, match="'seed': missing"):
        plan_from_parameters({k: v for k, v in ui_values.items() if k != "seed"})


def test_unknown_config_keys_in_overrides_are_refused(ui_values: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="nope.x"):
        plan_from_parameters({**ui_values, "overrides": '["nope.x=1"]'})


def test_every_parameter_reaches_the_steps_hydra_section(ui_values: dict[str, str]) -> None:
    edited = {**ui_values, "model": "segresnet", "epochs": "5", "learning_rate": "0.005", "batch_size": "3",
              "patch_size": "32", "seed": "11", "dice_threshold": "0.25", "data_size": "10",
              "overrides": '["data.synthetic.shape=[32,32,32]", "model.net.init_filters=4"]'}
    plan = plan_from_parameters(edited)
    train = step_parameters(by_name()["train"], plan, "RUN")
    assert train["Hydra/model"] == "segresnet"  # a config-group choice, applied by the binding as `model=...`
    assert train["Hydra/train.max_epochs"] == "5"
    assert train["Hydra/train.optimizer.lr"] == "0.005"
    assert train["Hydra/train.batch_size"] == "3"
    assert train["Hydra/train.patch_size"] == "[32,32,32]"
    assert train["Hydra/seed"] == "11"
    assert train["Hydra/data.num_cases"] == "10"
    assert train["Hydra/model.net.init_filters"] == "4"
    assert train["Hydra/paths.run_id"] == "RUN"
    assert train["Hydra/inputs.dataset_id"] == "${preprocess.parameters.Outputs/dataset_id}"
    evaluate = step_parameters(by_name()["evaluate"], plan, "RUN")
    promote = step_parameters(by_name()["promote"], plan, "RUN")
    assert promote["Hydra/promote.min_dice"] == "0.25"
    assert promote["Hydra/inputs.metrics_url"] == "${evaluate.parameters.Outputs/metrics_url}"
    assert evaluate["Hydra/inputs.model_id"] == "${train.parameters.Outputs/model_id}"
    # preprocess only gets what it depends on, so a change of epochs or model keeps its cache valid
    preprocess = step_parameters(by_name()["preprocess"], plan, "RUN")
    assert preprocess["Hydra/data.num_cases"] == "10" and preprocess["Hydra/seed"] == "11"
    assert preprocess["Hydra/clearml.dataset.publish"] == "true"
    assert not [k for k in preprocess if k.startswith(("Hydra/train.", "Hydra/model", "Hydra/evaluate.",
                                                       "Hydra/paths.", "Hydra/pipeline."))]
    assert preprocess == step_parameters(by_name()["preprocess"], plan_from_parameters({**edited, "epochs": "9"}), "OTHER")


def test_a_literal_secret_on_the_command_line_is_refused_before_anything_records_it() -> None:
    with pytest.raises(ConfigError, match=r"config key 'data.pacs_password': .*oc.env:DATA_PACS_PASSWORD"):
        plan_from_overrides(["+data.pacs_password=hunter22", "train.max_epochs=3"])


def test_retry_waits_longer_each_time_and_stops_after_count() -> None:
    waits: list[float] = []

    class Node:
        name, job = "train", None

    retry = GrowingDelayRetry(count=3, delay=10, backoff=2.0, max_delay=25, sleep=waits.append)
    decisions: list[Any] = [retry(None, Node(), n) for n in range(4)]
    assert decisions == [True, True, True, False]
    assert waits == [10, 20, 25]


def test_group_parameters_come_from_the_chosen_config_file_not_the_name_key() -> None:
    plan = plan_from_overrides(["data=decathlon", "data.root=/data/Task09_Spleen", "data.name=spleen"])
    assert plan.values["data"] == "decathlon" and plan.cfg.data.name == "spleen"


def test_per_step_settings_override_the_dag_defaults() -> None:
    from pipelines.remote import step_docker, step_queue, step_time_limit

    plan = plan_from_overrides([*TINY, "pipeline.queues.gpu=gpus", "++pipeline.steps.train.queue=a100",
                                "++pipeline.steps.evaluate.docker={image: img:1}", "++pipeline.steps.train.time_limit=5"])
    steps = by_name()
    assert step_queue(plan.cfg, steps["train"]) == "a100" and step_queue(plan.cfg, steps["evaluate"]) == "gpus"
    assert step_docker(plan.cfg, steps["evaluate"]) == ("img:1", None)
    assert step_docker(plan.cfg, steps["train"]) == (None, "--ipc=host")  # the DAG's default args
    assert step_time_limit(plan.cfg, steps["train"]) == 300.0 and step_time_limit(plan.cfg, steps["evaluate"]) is None


@pytest.mark.parametrize("override, message", [
    ("++pipeline.steps.trian.queue=x", "pipeline.steps.trian': no such step"),
    ("++pipeline.steps.train.queues=x", "pipeline.steps.train.queues': unknown setting"),
    ("~pipeline.queues.cpu", "pipeline.queues.cpu': step 'preprocess' runs on queue kind 'cpu', which has no queue name"),
])
def test_per_step_settings_are_checked(override: str, message: str) -> None:
    from components.common.errors import PipelineError

    with pytest.raises(PipelineError, match=message):
        plan_from_overrides([*TINY, override])


def test_a_cacheable_step_gets_overlays_but_not_unrelated_overrides() -> None:
    plan = plan_from_overrides([*TINY, "experiment=spleen", "data.root=/d", "train.amp=false"])
    params = step_parameters(by_name()["preprocess"], plan, "RUN")
    assert params["Hydra/experiment"] == "spleen" and params["Hydra/debug"] == "tiny"
    assert "Hydra/train.amp" not in params and "Hydra/paths.run_id" not in params
