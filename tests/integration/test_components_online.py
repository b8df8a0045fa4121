"""The three components online against a ClearML server, handing data and model over by ClearML ids.

This is the component side of the remote pipeline: preprocess publishes a Dataset version, train fetches
it by id and registers its best model with lineage, evaluate fetches that model by id, reports test metrics
on it and hands on its metrics record (publishing is the promote step's decision: test_promotion_online.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TINY_OVERRIDES
from tests.standin.fixtures import ApiClient, SdkRunner
from tests.support import model_metadata, section

REPO = Path(__file__).resolve().parents[2]


def _outputs(api: ApiClient, task_id: str) -> dict[str, str]:
    return section(api.task(task_id), "Outputs")


def _task_id(result_json: Path) -> str:
    import json
    return json.loads(result_json.read_text())["clearml_task_id"]


@pytest.mark.integration
@pytest.mark.slow
def test_steps_hand_over_dataset_and_model_by_id(sdk: SdkRunner, clearml_api: ApiClient, tmp_path: Path,
                                                 unique_name: str) -> None:
    common = [*(o for o in TINY_OVERRIDES if not o.startswith("clearml.offline")), "clearml.offline=false",
              f"clearml.project={unique_name}", f"paths.output_root={tmp_path}", "train.max_epochs=2"]
    sdk.run(REPO / "components/preprocess.py", *common, "paths.run_id=first", "clearml.dataset.publish=true",
            cwd=REPO, timeout=300)
    first = _outputs(clearml_api, _task_id(tmp_path / "first/preprocess/result.json"))
    sdk.run(REPO / "components/preprocess.py", *common, "paths.run_id=a", "clearml.dataset.publish=true",
            cwd=REPO, timeout=300)
    prep = _outputs(clearml_api, _task_id(tmp_path / "a/preprocess/result.json"))
    dataset_id = prep["dataset_id"]
    assert dataset_id and dataset_id != first["dataset_id"]
    script = tmp_path / "lineage.py"
    script.write_text("import json, sys\nfrom clearml import Dataset\n"
                      "d = Dataset.get(dataset_id=sys.argv[1])\n"
                      "print(json.dumps({'graph': d.get_dependency_graph(), 'files': sorted(d.list_files())}))\n")
    lineage = sdk.run_json(script, dataset_id)
    assert lineage["graph"][dataset_id] == [first["dataset_id"]], "a new version is parented on the previous one"
    assert "manifest.json" in lineage["files"] and any(f.startswith("imagesTr/") for f in lineage["files"])
    assert not any(f.endswith(".log") or f.startswith(".hydra") for f in lineage["files"])

    # train and evaluate run in another folder: the data and model can only come through ClearML
    sdk.run(REPO / "components/train.py", *common, "paths.run_id=b", f"inputs.dataset_id={dataset_id}",
            "inputs.manifest=/nonexistent/manifest.json", cwd=REPO, timeout=300)
    train_task = _task_id(tmp_path / "b/train/result.json")
    trained = _outputs(clearml_api, train_task)
    model = clearml_api.call("models.get_by_id", model=trained["model_id"])["model"]
    assert "best" in model["tags"] and f"dataset_id={dataset_id}" in model["tags"]
    metadata = model_metadata(model)
    assert metadata["dataset_id"] == dataset_id and metadata["seed"] == "0"
    assert len(metadata["git_commit"]) == 40
    assert model["uri"] and model["task"] == train_task
    captured = clearml_api.call("models.get_all", task=[train_task])["models"]
    names = sorted(m["name"] for m in captured)
    assert sum("checkpoint_" in n for n in names) >= 2, f"ModelCheckpoint saves are captured as models: {names}"

    sdk.run(REPO / "components/evaluate.py", *common, "paths.run_id=c", f"inputs.dataset_id={dataset_id}",
            f"inputs.model_id={trained['model_id']}", cwd=REPO, timeout=300)
    evaluated = _outputs(clearml_api, _task_id(tmp_path / "c/evaluate/result.json"))
    assert evaluated["metrics_url"].endswith("metrics.json"), evaluated  # the record promote compares
    model = clearml_api.call("models.get_by_id", model=trained["model_id"])["model"]
    assert model["ready"] is False, "evaluate does not publish"
    metadata = model_metadata(model)
    assert abs(float(metadata["test_mean_dice"]) - float(evaluated["test_mean_dice"])) < 1e-4


@pytest.mark.integration
@pytest.mark.slow
def test_unknown_dataset_or_model_id_is_a_user_error_naming_its_key(sdk: SdkRunner, tmp_path: Path,
                                                                    unique_name: str) -> None:
    common = [*(o for o in TINY_OVERRIDES if not o.startswith("clearml.offline")), "clearml.offline=false",
              f"clearml.project={unique_name}", f"paths.output_root={tmp_path}"]
    unknown = "0123456789abcdef0123456789abcdef"
    trained = sdk.run(REPO / "components/train.py", *common, "paths.run_id=d", f"inputs.dataset_id={unknown}",
                      cwd=REPO, timeout=300, check=False)
    assert trained.returncode == 2, trained.output[-4000:]
    assert f"ERROR in train: config key 'inputs.dataset_id': no ClearML Dataset with id '{unknown}'" in trained.output
    sdk.run(REPO / "components/preprocess.py", *common, "paths.run_id=m", cwd=REPO, timeout=300)
    evaluated = sdk.run(REPO / "components/evaluate.py", *common, "paths.run_id=m", f"inputs.model_id={unknown}",
                        cwd=REPO, timeout=300, check=False)
    assert evaluated.returncode == 2, evaluated.output[-4000:]
    assert f"ERROR in evaluate: config key 'inputs.model_id': no ClearML model with id '{unknown}'" in evaluated.output
