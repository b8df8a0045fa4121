"""Each component's run(cfg) on tiny data, the hand-over between them, resume and determinism."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pytest
import torch
from omegaconf import DictConfig

from components import evaluate, preprocess, train
from components.common import models
from components.common.errors import ConfigError, DataError, ResourceError
from components.common.manifest import Manifest
from pipelines.config import compose_config
from tests.conftest import make_case
from tests.support import step_folder

Cfg = Callable[..., DictConfig]


def test_preprocess_writes_manifest_split_and_statistics(tiny_cfg: Cfg) -> None:
    cfg = tiny_cfg()
    result = preprocess.run(cfg)
    manifest = Manifest.load(result["manifest"])
    assert result["num_valid"] == 8 and result["num_rejected"] == 0
    assert result["splits"] == {"train": 4, "val": 2, "test": 2}
    assert manifest.labels == {"0": "background", "1": "low", "2": "high"}
    for case in manifest.cases:  # paths are stored relative to the manifest, so the folder can move
        assert not Path(case.image).is_absolute()
        label = np.asarray(nib.load(str(manifest.resolve(str(case.label)))).dataobj)
        assert set(np.unique(label)) == {0, 1, 2}, "every synthetic case holds both foreground classes"
    image = np.asarray(nib.load(str(manifest.resolve(manifest.cases[0].image))).dataobj)
    assert len(np.unique(image)) > 100, "synthetic images must be noisy, not piecewise constant"
    stats = result["stats"]
    assert stats["shape_median"] == [32, 32, 32] and stats["spacing_median"] == [1.0, 1.0, 1.0]
    assert 0 < stats["class_fraction"]["1"] < 0.5
    out = step_folder(cfg, "preprocess")
    assert (out / "config.resolved.yaml").is_file() and (out / "dataset.json").is_file()
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 8


def test_preprocess_skips_or_fails_on_bad_cases_of_a_decathlon_folder(tiny_cfg: Cfg, tmp_path: Path) -> None:
    root = tmp_path / "Task99_Test"
    for i in range(5):
        make_case(root, f"case_{i}", seed=i)
    (root / "labelsTr" / "case_4.nii.gz").write_bytes(b"garbage")
    entries = [{"image": f"./imagesTr/case_{i}.nii.gz", "label": f"./labelsTr/case_{i}.nii.gz"} for i in range(5)]
    (root / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "organ"}, "training": entries}))
    common = ("data=decathlon", f"data.root={root}", "data.spacing=null", "data/intensity=zscore")
    result = preprocess.run(tiny_cfg(*common, "data.on_invalid=skip", "data.split.val=0.25", "data.split.test=0.25"))
    assert result["num_valid"] == 4 and result["num_rejected"] == 1
    report = json.loads(Path(result["validation_report"]).read_text())
    assert report["rejected"][0]["id"] == "case_4" and "unreadable" in report["rejected"][0]["problems"][0]
    with pytest.raises(DataError, match="case_4.nii.gz"):
        preprocess.run(tiny_cfg(*common, "data.on_invalid=fail"))
    with pytest.raises(DataError, match="data.num_classes"):
        preprocess.run(tiny_cfg(*common, "data.num_classes=3"))


def test_train_then_evaluate_hand_over_and_outputs(tiny_cfg: Cfg) -> None:
    cfg = tiny_cfg()
    preprocess.run(cfg)
    trained = train.run(cfg)
    ckpt_dir = step_folder(cfg, "train") / "checkpoints"
    assert sorted(p.name for p in ckpt_dir.glob("checkpoint_*.pt")) == ["checkpoint_2.pt", "checkpoint_3.pt"]
    best = Path(trained["best_checkpoint"])
    assert best.is_file() and best.name.startswith("best_checkpoint_")
    state = torch.load(best, weights_only=True)
    assert set(state) >= {"net", "optimizer", "trainer", "lr_scheduler"}
    assert state["trainer"]["iteration"] == trained["best_epoch"] * state["trainer"]["epoch_length"]
    assert 0.0 <= trained["best_val_mean_dice"] <= 1.0 and trained["epochs"] == 3

    evaluated = evaluate.run(cfg)
    assert Path(evaluated["checkpoint"]) == best
    metrics = evaluated["metrics"]
    assert set(metrics["dice"]) == {"low", "high"} and metrics["num_cases"] == 2
    rows = Path(evaluated["metrics_csv"]).read_text().splitlines()
    assert rows[0] == "case,dice_low,dice_high,hd95_low,hd95_high" and len(rows) == 3
    predictions = sorted(Path(evaluated["predictions"]).glob("*_pred.nii.gz"))
    assert len(predictions) == 2
    manifest = Manifest.load(step_folder(cfg, "preprocess"))
    source = nib.load(str(manifest.resolve(manifest.split("test")[0].image)))
    saved = nib.load(str(predictions[0]))
    assert saved.shape == source.shape and np.allclose(saved.affine, source.affine)
    assert set(np.unique(np.asarray(saved.dataobj))) <= {0, 1, 2}
    assert len(evaluated["overlays"]) == 1 and Path(evaluated["overlays"][0]).stat().st_size > 0


def test_resume_continues_from_the_last_checkpoint(tiny_cfg: Cfg) -> None:
    cfg = tiny_cfg("train.max_epochs=2", "train.scheduler=null")
    preprocess.run(cfg)
    train.run(cfg)
    resumed = train.run(tiny_cfg("train.max_epochs=3", "train.scheduler=null", "train.resume=auto"))
    assert resumed["epochs"] == 3 and resumed["resumed_from_epoch"] == 2
    ckpts = sorted(p.name for p in (step_folder(cfg, "train") / "checkpoints").glob("checkpoint_*.pt"))
    assert ckpts == ["checkpoint_2.pt", "checkpoint_3.pt"]
    with pytest.raises(ConfigError, match="train.resume"):
        train.run(tiny_cfg("train.resume=/no/such/file.pt"))


def test_bad_values_are_named_before_training(tiny_cfg: Cfg) -> None:
    with pytest.raises(ConfigError, match="train.max_epochs"):
        train.run(tiny_cfg("train.max_epochs=abc"))
    with pytest.raises(DataError, match="manifest not found"):
        train.run(tiny_cfg("inputs.manifest=/nowhere/manifest.json"))


def test_out_of_memory_names_the_sizes_to_lower(tiny_cfg: Cfg) -> None:
    cfg = tiny_cfg()
    preprocess.run(cfg)
    trained = train.run(cfg)
    oom = "model.net._target_=tests.support.OutOfMemoryUNet"
    with pytest.raises(ResourceError, match=r"out of memory during training on cpu: lower one of train.batch_size=2, "
                                            r"train.samples_per_volume=\d+, train.patch_size=\[.*\], "
                                            r"inference.inferer.roi_size=\[.*\], inference.inferer.sw_batch_size=\d+ "
                                            r"\(CUDA out of memory"):
        train.run(tiny_cfg(oom, "train.max_epochs=1"))
    with pytest.raises(ResourceError, match=r"sw_batch_size=\d+; or enable mixed precision \(train.amp=true\)"):
        train.run(tiny_cfg(oom, "train.max_epochs=1", "train.amp=false"))
    with pytest.raises(ResourceError, match=r"during evaluation on cpu: lower one of inference.inferer.roi_size=\[.*\], "
                                            r"inference.inferer.sw_batch_size=\d+ \("):
        evaluate.run(tiny_cfg(oom, f"inputs.checkpoint='{trained['best_checkpoint']}'"))


def test_evaluate_rejects_a_checkpoint_of_another_network(tiny_cfg: Cfg, tmp_path: Path) -> None:
    cfg = tiny_cfg()
    preprocess.run(cfg)
    other = models.build_network(compose_config(["model=segresnet"]).model)
    path = tmp_path / "other.pt"
    torch.save({"net": other.state_dict()}, path)
    with pytest.raises(ConfigError, match="does not fit the configured network"):
        evaluate.run(tiny_cfg(f"inputs.checkpoint={path}"))


def test_same_seed_gives_identical_metrics_on_cpu(tiny_cfg: Cfg) -> None:
    results = []
    for run_id in ("a", "b"):
        cfg = tiny_cfg("train.max_epochs=2", run_id=run_id)
        preprocess.run(cfg)
        trained = train.run(cfg)
        results.append((trained["best_val_mean_dice"], trained["final_loss"], evaluate.run(cfg)["metrics"]))
    assert results[0] == results[1]
    other = tiny_cfg("train.max_epochs=2", "seed=1", run_id="c")
    preprocess.run(other)
    assert train.run(other)["final_loss"] != results[0][1]


def test_resume_skips_a_checkpoint_truncated_by_a_crash(tiny_cfg: Cfg) -> None:
    cfg = tiny_cfg("train.max_epochs=2")
    preprocess.run(cfg)
    train.run(cfg)
    newest = step_folder(cfg, "train") / "checkpoints" / "checkpoint_2.pt"
    newest.write_bytes(newest.read_bytes()[:100])
    resumed = train.run(tiny_cfg("train.max_epochs=2", "train.resume=auto"))
    assert resumed["resumed_from_epoch"] == 1 and resumed["epochs"] == 2
    torch.load(newest, weights_only=True)  # epoch 2 was trained again and saved whole


def test_resume_refuses_a_checkpoint_past_max_epochs_and_stops_when_none_is_readable(tiny_cfg: Cfg) -> None:
    cfg = tiny_cfg("train.max_epochs=2")
    preprocess.run(cfg)
    train.run(cfg)
    with pytest.raises(ConfigError, match=r"train.max_epochs': is 1, but checkpoint .*checkpoint_2.pt has already "
                                          r"trained 2 epochs"):
        train.run(tiny_cfg("train.max_epochs=1", "train.resume=auto"))
    folder = step_folder(cfg, "train") / "checkpoints"
    for path in folder.glob("checkpoint_*.pt"):
        path.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="every checkpoint in .* is unreadable"):
        train.run(tiny_cfg("train.max_epochs=2", "train.resume=auto"))
    assert sorted(p.name for p in folder.glob("checkpoint_*.pt")) == ["checkpoint_1.pt", "checkpoint_2.pt"]
    fresh = train.run(tiny_cfg("train.max_epochs=2", "train.resume=null"))  # a fresh start is asked for
    assert fresh["resumed_from_epoch"] is None and fresh["epochs"] == 2


def test_a_result_that_hands_on_other_names_than_the_dag_declares_is_refused(tiny_cfg: Cfg) -> None:
    from components.common.entry import StepResult, step

    @step("preprocess")
    def wrong(cfg: DictConfig, ctx: object) -> StepResult:
        return StepResult(outputs={"dataset_id": None})  # the manifest is missing

    with pytest.raises(RuntimeError, match=r"handed on \['dataset_id'\], but pipelines/dag.py declares"):
        wrong(tiny_cfg())


def test_resuming_a_finished_run_reports_its_best_not_a_blank(tiny_cfg: Cfg) -> None:
    """A retry that lands after the last epoch trains nothing; the best validation Dice and its epoch come
    back from the checkpoint (MONAI keeps them on the engine state, which ignite does not save)."""
    cfg = tiny_cfg("train.max_epochs=2")
    preprocess.run(cfg)
    first = train.run(cfg)
    again = train.run(tiny_cfg("train.max_epochs=2", "train.resume=auto"))
    assert again["resumed_from_epoch"] == 2 and again["epochs"] == 2
    assert (again["best_val_mean_dice"], again["best_epoch"]) == (first["best_val_mean_dice"], first["best_epoch"])
    assert again["best_checkpoint"] == first["best_checkpoint"]


@pytest.mark.parametrize(("cache", "dataset", "metadata"), [
    ("train.cache.max_memory=1e-12", "PersistentDataset", "MONAI metadata on"),  # too big for memory: on disk
    ("train.cache.type=none", "Dataset", "MONAI metadata on"),
    ("train.cache.type=cache", "CacheDataset", "plain tensors after the cache (MONAI metadata off)"),
])
def test_train_runs_with_each_cache_and_says_which_data_path_it_took(
        tiny_cfg: Cfg, cache: str, dataset: str, metadata: str, caplog: pytest.LogCaptureFixture) -> None:
    cfg = tiny_cfg("train.max_epochs=1", cache)
    preprocess.run(cfg)
    with caplog.at_level("INFO"):
        result = train.run(cfg)
    assert result["epochs"] == 1 and result["best_checkpoint"]
    assert f"data: {dataset} (train), {dataset} (val); {metadata}" in caplog.text
    assert any((step_folder(cfg, "train") / "cache").glob("*.pt")) is (dataset == "PersistentDataset")
