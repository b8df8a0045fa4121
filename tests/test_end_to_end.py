"""The one command (`monai-pipeline run`) on small synthetic data, checked from what it wrote to disk and
what ClearML wrote into its offline sessions (read back from the session archives, nothing mocked)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from components.common import models
from tests.standin import procs
from tests.support import OfflineSession, cli, no_server_env, run_command

# Small enough for ~30 s on 2 cores, large enough that the network really learns the two classes.
E2E_OVERRIDES = ["data.num_cases=12", "data.synthetic.shape=[48,48,48]", "data.synthetic.radius_max=10",
                 "train.patch_size=[32,32,32]", "train.max_epochs=30", "train.val_interval=5", "device=cpu",
                 "evaluate.num_overlays=2"]
DICE_FLOOR = 0.75


def _run(args: list[str], tmp_path: Path, run_id: str, timeout: float = 600.0) -> procs.Finished:
    """``monai-pipeline run`` with no server configured (the run must go offline by itself)."""
    return run_command(cli("run", *args, f"paths.output_root={tmp_path}", f"paths.run_id={run_id}"),
                       tmp_path / f"cli-{run_id}.log", env=no_server_env(tmp_path), timeout=timeout)


def _session(zip_path: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    session = OfflineSession.read(zip_path)
    return session.task, session.events, session.names


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    tmp = tmp_path_factory.mktemp("e2e")
    proc = _run(E2E_OVERRIDES, tmp, "e2e")
    assert proc.returncode == 0, proc.output[-6000:]
    return tmp / "e2e", json.loads((tmp / "e2e" / "summary.json").read_text()), proc.output


@pytest.mark.slow
def test_run_reaches_dice_floor_and_prints_summary(pipeline_run: tuple[Path, dict[str, Any], str]) -> None:
    run_dir, summary, stdout = pipeline_run
    assert summary["status"] == "completed" and summary["offline"] is True
    assert summary["test_metrics"]["mean_dice"] >= DICE_FLOOR, summary["test_metrics"]
    assert set(summary["test_metrics"]["dice"]) == {"low", "high"}
    assert set(summary["seconds"]) == {"preprocess", "train", "evaluate", "promote"}
    # the first model of this output root, above promote.min_dice: promoted into the local production folder
    assert summary["promotion"]["promotion_promote"] == "True", summary["promotion"]
    assert "promote: PROMOTED local:e2e (vs no production model)" in stdout
    assert json.loads((run_dir.parent / "production" / "champion.json").read_text())["id"] == "local:e2e"
    assert "test mean Dice" in stdout and "clearml-task --import-offline-session" in stdout
    assert "epoch 30/30" in stdout, "training must show per-epoch progress"
    for step in ("preprocess", "train", "evaluate"):
        assert (run_dir / step / "config.resolved.yaml").is_file()
        assert (run_dir / step / "result.json").is_file()
    assert (run_dir / "evaluate" / "metrics.json").is_file()
    num_test = summary["test_metrics"]["num_cases"]
    assert num_test >= 2 and len(list((run_dir / "evaluate" / "predictions").glob("*.nii.gz"))) == num_test


@pytest.mark.slow
def test_checkpoints_exist_and_load(pipeline_run: tuple[Path, dict[str, Any], str]) -> None:
    run_dir, summary, _ = pipeline_run
    cfg = OmegaConf.load(run_dir / "train" / "config.resolved.yaml")
    checkpoints = sorted((run_dir / "train" / "checkpoints").glob("*.pt"))
    assert [p.name for p in checkpoints if p.name.startswith("checkpoint_")] == ["checkpoint_29.pt", "checkpoint_30.pt"]
    assert Path(summary["best_checkpoint"]) in checkpoints
    for path in checkpoints:
        net = models.build_network(cfg.model)
        state = torch.load(path, weights_only=True)
        net.load_state_dict(state["net"])
        assert {"optimizer", "lr_scheduler", "trainer"} <= set(state)


@pytest.mark.slow
def test_offline_sessions_hold_scalars_gifs_config_and_models(pipeline_run: tuple[Path, dict[str, Any], str]) -> None:
    _, summary, _ = pipeline_run
    sessions = summary["offline_sessions"]
    assert set(sessions) == {"preprocess", "train", "evaluate", "promote"} and all(Path(p).is_file() for p in sessions.values())

    task, events, names = _session(sessions["train"])
    scalars = {(e["metric"], e["variant"]) for e in events if e["type"] == "training_stats_scalar"}
    assert {("train_loss", "train_loss"), ("val_mean_dice", "val_mean_dice"), ("lr", "lr"),
            ("val_dice_low", "val_dice_low"), ("val_dice_high", "val_dice_high")} <= scalars
    val_iterations = sorted(e["iter"] for e in events if e.get("metric") == "val_mean_dice")
    assert val_iterations == [5, 10, 15, 20, 25, 30], "validation Dice is reported per training epoch"
    images = [e for e in events if e["type"] == "training_debug_image"]
    assert {e["metric"] for e in images} == {"input_0_HWD", "input_1_HWD", "output_HWD"}  # image, label, prediction
    gifs = [n for n in names if n.endswith(".gif")]
    assert gifs and all(zipfile.ZipFile(sessions["train"]).read(g)[:6] in (b"GIF89a", b"GIF87a") for g in gifs)
    omegaconf = task["configuration"]["OmegaConf"]["value"]
    assert "max_epochs: 30" in omegaconf
    hydra = task["hyperparams"]["Hydra"]
    assert hydra["train.max_epochs"]["value"] == "30" and hydra["data.num_cases"]["value"] == "12"
    offline_models = task["offline_output_models"]
    best = [m for m in offline_models if "best" in m["init"]["tags"]]
    assert len(best) == 1 and "val_mean_dice=" in best[0]["init"]["comment"]
    assert "seed=0" in best[0]["init"]["comment"] and "git_commit=" in best[0]["init"]["comment"]
    for m in offline_models:
        stored = m["weights"]["weights_filename"].split("/models/")[-1]
        assert f"models/{stored}" in names, f"model file {stored} missing from the session"

    task, events, names = _session(sessions["evaluate"])
    overlays = [e for e in events if e["type"] == "training_debug_image" and e["metric"] == "overlay"]
    assert len(overlays) == 2 and sum(n.endswith(".png") for n in names) == 2
    assert any(n.endswith("metrics.csv") for n in names)

    task, events, names = _session(sessions["preprocess"])
    assert any(n.endswith("manifest.json") for n in names)


@pytest.mark.slow
def test_bad_override_stops_before_any_step(tmp_path: Path) -> None:
    proc = _run(["train.max_epoch=3"], tmp_path, "bad")
    assert proc.returncode == 2
    assert "max_epoch" in proc.output and "error:" in proc.output
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_failing_step_is_reported_and_earlier_outputs_kept(tmp_path: Path) -> None:
    proc = _run(["data=folder", f"data.images_dir={tmp_path}/nope", f"data.labels_dir={tmp_path}/nope"], tmp_path, "fail")
    assert proc.returncode == 1
    assert "step 'preprocess' failed" in proc.output
    log = (tmp_path / "fail" / "preprocess.log").read_text()
    assert "ERROR in preprocess" in log and "data.images_dir" in log and "does not exist" in log
    summary = json.loads((tmp_path / "fail" / "summary.json").read_text())
    assert summary["status"] == "failed at preprocess"
