"""The nightly loop's data and model ends against a ClearML server (no agents): raw cases as a versioned
ClearML Dataset made with ``clearml-data`` (as the README says), and the promote step's champion/challenger
decisions in the model registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TINY_OVERRIDES
from tests.standin.fixtures import ApiClient, ClearMLEndpoint, SdkRunner
from tests.support import cli, clearml_data, latest_dataset_version, model_metadata, raw_case_folder, run_command, section

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _result(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_raw_dataset_versions_feed_preprocess_and_the_lineage(clearml_server: ClearMLEndpoint, sdk: SdkRunner,
                                                               clearml_api: ApiClient, tmp_path: Path,
                                                               unique_name: str) -> None:
    raw_project, name = f"{unique_name}/raw", "cases"
    folder = raw_case_folder(tmp_path / "Task01_Raw", 8, seed=1)
    clearml_data(clearml_server, tmp_path, "sync", "--project", raw_project, "--name", name, "--folder", str(folder))
    first = latest_dataset_version(clearml_api, raw_project, name)
    # new labelled cases arrive: the folder grows, and sync records only the change as the next version
    raw_case_folder(folder, 10, seed=1)
    clearml_data(clearml_server, tmp_path, "sync", "--project", raw_project, "--name", name, "--folder", str(folder),
                  "--parents", first)
    second = latest_dataset_version(clearml_api, raw_project, name)
    assert second != first

    common = [*(o for o in TINY_OVERRIDES if not o.startswith("clearml.offline")), "clearml.offline=false",
              f"clearml.project={unique_name}", f"paths.output_root={tmp_path}", "data=clearml_dataset",
              f"data.dataset.project={raw_project}", f"data.dataset.name={name}", "data.num_classes=3",
              "data.spacing=null", "data/intensity=zscore", "clearml.dataset.publish=true"]
    for run_id, pinned in (("latest", []), ("pinned", [f"data.dataset.id={first}"])):
        sdk.run(REPO / "components/preprocess.py", *common, f"paths.run_id={run_id}", *pinned, cwd=REPO, timeout=300)
    latest, pinned_run = (_result(tmp_path / r / "preprocess/result.json") for r in ("latest", "pinned"))
    assert latest["num_valid"] == 10 and pinned_run["num_valid"] == 8  # the newest version by default, else the pinned one
    manifest = json.loads(Path(latest["manifest"]).read_text())
    assert manifest["source"]["dataset_id"] == second and manifest["source"]["type"] == "clearml_dataset"

    # the prepared Dataset names the raw version as a parent, and the model names both
    prepared = latest["dataset"]["id"]
    script = tmp_path / "graph.py"
    script.write_text("import json, sys\nfrom clearml import Dataset\n"
                      "print(json.dumps(Dataset.get(dataset_id=sys.argv[1]).get_dependency_graph()))\n")
    assert second in sdk.run_json(script, prepared)[prepared]
    sdk.run(REPO / "components/train.py", *common, "paths.run_id=train", f"inputs.dataset_id={prepared}",
            "train.max_epochs=1", cwd=REPO, timeout=300)
    model_id = section(clearml_api.task(_result(tmp_path / "train/train/result.json")["clearml_task_id"]), "Outputs")["model_id"]
    metadata = model_metadata(clearml_api.call("models.get_by_id", model=model_id)["model"])
    assert metadata["dataset_id"] == prepared and metadata["raw_dataset_id"] == second
    assert metadata["raw_dataset_version"]


def test_promotion_champion_and_challenger_in_the_registry(sdk: SdkRunner, clearml_api: ApiClient, tmp_path: Path,
                                                           unique_name: str) -> None:
    common = [*(o for o in TINY_OVERRIDES if not o.startswith("clearml.offline")), "clearml.offline=false",
              f"clearml.project={unique_name}", f"paths.output_root={tmp_path}"]
    sdk.run(REPO / "components/preprocess.py", *common, "paths.run_id=data", "clearml.dataset.publish=true",
            cwd=REPO, timeout=300)
    dataset_id = _result(tmp_path / "data/preprocess/result.json")["outputs"]["dataset_id"]
    models: dict[str, str] = {}
    for label, epochs in (("weak", 1), ("strong", 8)):
        sdk.run(REPO / "components/train.py", *common, f"paths.run_id={label}", f"inputs.dataset_id={dataset_id}",
                f"train.max_epochs={epochs}", cwd=REPO, timeout=300)
        models[label] = _result(tmp_path / label / "train/result.json")["outputs"]["model_id"]
        sdk.run(REPO / "components/evaluate.py", *common, f"paths.run_id={label}", f"inputs.dataset_id={dataset_id}",
                f"inputs.model_id={models[label]}", cwd=REPO, timeout=300)
    dice = {k: _result(tmp_path / k / "evaluate/result.json")["metrics"]["mean_dice"] for k in models}
    assert dice["strong"] > dice["weak"] + 0.005, dice

    def promote(label: str, *extra: str) -> dict[str, Any]:
        sdk.run(REPO / "components/promote.py", *common, f"paths.run_id={label}", f"inputs.dataset_id={dataset_id}",
                f"inputs.model_id={models[label]}", f"inputs.metrics_json={tmp_path / label / 'evaluate/metrics.json'}",
                *extra, cwd=REPO, timeout=300)
        return _result(tmp_path / label / "promote/result.json")

    def model(label: str) -> dict[str, Any]:
        return clearml_api.call("models.get_by_id", model=models[label])["model"]

    # 1. the first model, below the absolute threshold: not promoted, the reason recorded on it
    below = promote("weak", f"promote.min_dice={min(1.0, dice['weak'] + 0.01):.4f}")
    assert below["outputs"] == {"promoted": False, "production_model_id": None}
    assert not model("weak")["ready"] and "production" not in model("weak")["tags"]
    assert "is below promote.min_dice" in model_metadata(model("weak"))["promotion_reason"]
    # 2. above it: promoted (published, tagged)
    first = promote("weak", "promote.min_dice=0.0")
    assert first["outputs"] == {"promoted": True, "production_model_id": models["weak"]}
    assert model("weak")["ready"] and "production" in model("weak")["tags"]
    # 3. a better challenger replaces it: the champion is re-scored on the challenger's test cases
    better = promote("strong")
    assert better["champion_id"] == models["weak"]
    assert better["champion_case_ids"] == better["case_ids"] and better["case_ids"]
    assert better["champion_metrics"]["mean_dice"] == pytest.approx(dice["weak"], abs=1e-6)  # same cases, same code
    assert better["outputs"] == {"promoted": True, "production_model_id": models["strong"]}
    strong = model("strong")
    assert strong["ready"] and "production" in strong["tags"] and "production" not in model("weak")["tags"]
    assert model_metadata(strong)["previous_champion"] == models["weak"]
    assert model_metadata(model("weak"))["replaced_by"] == models["strong"]
    assert float(model_metadata(strong)["promotion_delta"]) == pytest.approx(dice["strong"] - dice["weak"], abs=1e-4)
    # 4. a worse challenger leaves the champion in place, and says why
    worse = promote("weak")
    assert worse["outputs"] == {"promoted": False, "production_model_id": models["strong"]}
    assert "production" in model("strong")["tags"] and "production" not in model("weak")["tags"]
    assert "not better by the margin" in model_metadata(model("weak"))["promotion_reason"]
    assert worse["decision"]["promotion_reason"].startswith("kept the production model: not better by the margin")


def test_local_run_with_a_server_promotes_in_the_model_registry(clearml_server: ClearMLEndpoint, clearml_api: ApiClient,
                                                                tmp_path: Path, unique_name: str) -> None:
    """``monai-pipeline run`` with a server configured compares with the registry's production model, not a
    local folder, and says so in its summary."""
    run = run_command(cli("run", *(o for o in TINY_OVERRIDES if not o.startswith("clearml.offline")), "clearml.offline=auto",
                          f"clearml.project={unique_name}", f"paths.output_root={tmp_path}", "paths.run_id=online",
                          "promote.min_dice=0.0"),
                      tmp_path / "run.log", env=clearml_server.env())
    assert run.returncode == 0, run.output[-6000:]
    summary = json.loads((tmp_path / "online" / "summary.json").read_text())
    model_id = summary["outputs"]["train"]["model_id"]
    assert model_id and summary["outputs"]["promote"] == {"promoted": True, "production_model_id": model_id}
    assert f"promote: PROMOTED {model_id} (vs no production model)" in run.output
    model = clearml_api.call("models.get_by_id", model=model_id)["model"]
    assert model["ready"] and "production" in model["tags"]
    assert not (tmp_path / "production").exists(), "online, the local champion folder is not used"
