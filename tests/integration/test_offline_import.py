"""The offline sessions of a local run import into a ClearML server with the command the run prints,
and the server then holds the step's scalars, debug images, configuration and models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_OVERRIDES
from tests.standin.fixtures import ApiClient, ClearMLEndpoint

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.integration
@pytest.mark.slow
def test_printed_import_command_recreates_the_train_task(clearml_server: ClearMLEndpoint, clearml_api: ApiClient,
                                                         tmp_path: Path, unique_name: str) -> None:
    offline_env = {**os.environ, "CLEARML_API_ACCESS_KEY": "", "CLEARML_CONFIG_FILE": str(tmp_path / "none.conf"),
                   "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", *TINY_OVERRIDES, "clearml.offline=auto",
                          f"clearml.project={unique_name}", f"paths.output_root={tmp_path}", "paths.run_id=off"], cwd=REPO, env=offline_env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((tmp_path / "off" / "summary.json").read_text())
    command = next(c for c in summary["import_commands"] if summary["offline_sessions"]["train"] in c)
    assert command in run.stdout

    imported = subprocess.run([str(Path(sys.executable).parent / command.split()[0]), *command.split()[1:]],
                              env=clearml_server.env(), capture_output=True, text=True, timeout=300)
    assert imported.returncode == 0, imported.stdout[-3000:] + imported.stderr[-3000:]
    project = clearml_api.call("projects.get_all", name=f"^{unique_name}$")["projects"][0]["id"]
    tasks = clearml_api.call("tasks.get_all", name="^train$", project=[project],
                             only_fields=["id", "hyperparams", "configuration", "models"])["tasks"]
    assert len(tasks) == 1
    task = tasks[0]
    assert task["hyperparams"]["Hydra"]["train.max_epochs"]["value"] == "3"
    assert "OmegaConf" in task["configuration"]
    metrics = clearml_api.call("events.scalar_metrics_iter_histogram", task=task["id"])
    assert {"train_loss", "val_mean_dice", "lr"} <= set(metrics)
    images = clearml_api.call("events.get_task_events", task=task["id"], event_type="training_debug_image")["events"]
    assert {e["metric"] for e in images} == {"input_0_HWD", "input_1_HWD", "output_HWD"}
    models = clearml_api.call("models.get_all", task=[task["id"]])["models"]
    assert any("best" in m.get("tags", []) for m in models)
