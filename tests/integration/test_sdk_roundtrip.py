"""The real SDK against the server: log everything a training task logs, read it all back."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.standin.client import ApiClient
from tests.standin.fixtures import SdkRunner

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SCRIPTS = Path(__file__).parent / "scripts"


def test_task_round_trip_through_the_sdk(sdk: SdkRunner, clearml_api: ApiClient, unique_name: str,
                                         tmp_path: Path) -> None:
    project = f"standin-tests/{unique_name}"
    created = sdk.run_json(SCRIPTS / "sdk_roundtrip.py", project, "round trip", str(tmp_path))
    back = sdk.run_json(SCRIPTS / "readback.py", created["task_id"], str(tmp_path / "download"))

    assert back["status"] == "completed"
    assert back["parameters"]["General/train.lr"] == "0.01"
    assert back["parameters"]["General/epochs"] == "2"
    assert back["parameters"]["General/model/channels"] == "8"
    assert back["configuration"] == {"data": {"spacing": [1.5, 1.5, 2.0]}, "trainer": {"max_epochs": 2}}
    assert back["scalars"]["loss"]["train"]["x"] == [0, 1, 2]
    assert back["scalars"]["loss"]["train"]["y"] == pytest.approx([1.0, 0.5, 1 / 3])
    assert back["scalars"]["dice"]["val"]["y"] == pytest.approx([0.5, 0.6, 0.7])
    assert back["single_values"]["best_dice"] == pytest.approx(0.8)
    assert any("round trip text line" in line for line in back["console"])
    assert len(back["debug_images"]) == 1 and back["debug_images"][0].startswith("http")
    assert "metrics" in back["plots"]
    assert back["artifacts"]["summary"] == {"best_dice": 0.8, "cases": ["a", "b"]}
    assert back["notes_text"] == "artifact file\n"
    assert "registered-model" in back["models"]["output"]
    assert "round trip - auto" in back["models"]["output"]  # torch.save captured (torch imported first)
    assert all(size and size > 0 for size in back["model_files"].values())

    task = clearml_api.task(created["task_id"])
    assert task["status"] == "completed"
    assert task["last_iteration"] >= 2
    model_ids = [m["model"] for m in task["models"]["output"]]
    models = clearml_api.call("models.get_all", id=model_ids)["models"]
    registered = next(m for m in models if m["name"] == "registered-model")
    assert registered["uri"].startswith(clearml_api.endpoint.files_host)
    assert registered["framework"] == "PyTorch"
