"""The offline sessions of a local run import into a ClearML server with the command the run prints,
and the server then holds the step's scalars, debug images, configuration and models."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_OVERRIDES
from tests.standin.fixtures import ApiClient, ClearMLEndpoint
from tests.support import cli, no_server_env, run_command

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.integration
@pytest.mark.slow
def test_printed_import_command_recreates_the_train_task(clearml_server: ClearMLEndpoint, clearml_api: ApiClient,
                                                         tmp_path: Path, unique_name: str) -> None:
    # train.max_epochs on the command line (besides debug=tiny's 3) so the Hydra section records it
    run = run_command(cli("run", *TINY_OVERRIDES, "train.max_epochs=3", "clearml.offline=auto", f"clearml.project={unique_name}",
                          f"paths.output_root={tmp_path}", "paths.run_id=off"),
                      tmp_path / "run.log", env=no_server_env(tmp_path))
    assert run.returncode == 0, run.output[-6000:]
    summary = json.loads((tmp_path / "off" / "summary.json").read_text())
    command = next(c for c in summary["import_commands"] if summary["offline_sessions"]["train"] in c)
    assert command in run.output

    imported = run_command([str(Path(sys.executable).parent / command.split()[0]), *command.split()[1:]],
                           tmp_path / "import.log", env=clearml_server.env(), timeout=300)
    assert imported.returncode == 0, imported.output[-6000:]
    project = clearml_api.call("projects.get_all", name=f"^{unique_name}$")["projects"][0]["id"]
    tasks = clearml_api.call("tasks.get_all", name="^train$", project=[project],
                             only_fields=["id", "hyperparams", "configuration", "models"])["tasks"]
    assert len(tasks) == 1
    task = tasks[0]
    assert task["hyperparams"]["Hydra"]["train.max_epochs"]["value"] == "3"
    assert "OmegaConf" in task["configuration"]
    metrics = clearml_api.call("events.scalar_metrics_iter_histogram", task=task["id"])
    assert {"train_loss", "val_mean_dice", "lr", "data_wait"} <= set(metrics)
    images = clearml_api.call("events.get_task_events", task=task["id"], event_type="training_debug_image")["events"]
    assert {e["metric"] for e in images} == {"input_0_HWD", "input_1_HWD", "output_HWD"}
    models = clearml_api.call("models.get_all", task=[task["id"]])["models"]
    assert any("best" in m.get("tags", []) for m in models)
