"""Data-parallel training: 2 gloo processes on CPU give one set of ClearML scalars and one checkpoint series."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from components import preprocess
from tests.conftest import TINY_OVERRIDES
from tests.support import OfflineSession, run_command

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_gloo_ranks_report_once_and_share_the_work(tmp_path: Path) -> None:
    overrides = [*TINY_OVERRIDES, f"paths.output_root={tmp_path}", "paths.run_id=ddp", "train.max_epochs=3"]
    from pipelines.config import compose_config
    preprocess.run(compose_config(overrides))
    cache = tmp_path / "clearml-cache"
    env = {**os.environ, "CLEARML_CACHE_DIR": str(cache), "HOME": str(tmp_path)}
    proc = run_command([sys.executable, "components/train.py", *overrides, "train.distributed.nproc=2"],
                       tmp_path / "train.log", env=env, timeout=300)
    assert proc.returncode == 0, proc.output[-6000:]
    # the ranks share the cores instead of each starting a thread per core
    assert f"(gloo), {max(1, torch.get_num_threads() // 2)} CPU thread(s) each" in proc.output
    result = json.loads((tmp_path / "ddp" / "train" / "result.json").read_text())
    assert result["world_size"] == 2
    # 4 training volumes, batch 2: one iteration per epoch on each of the two ranks (two on a single process)
    assert result["iterations_per_epoch"] == 1

    sessions = sorted((cache / "offline").glob("*.zip"))
    assert len(sessions) == 1, "only rank 0 creates a ClearML task"
    session = OfflineSession.read(sessions[0])
    task = session.task
    losses = session.of_metric("train_loss")
    assert sorted(e["iter"] for e in losses) == [1, 2, 3], "one loss per iteration, from rank 0 only"
    dice = session.of_metric("val_mean_dice")
    assert sorted(e["iter"] for e in dice) == [1, 2, 3]
    assert task["hyperparams"]["Hydra"]["train.distributed.nproc"]["value"] == "2"

    checkpoints = sorted(p.name for p in (tmp_path / "ddp" / "train" / "checkpoints").iterdir())
    assert checkpoints == [f"best_checkpoint_{result['best_epoch']}_val_mean_dice={result['best_val_mean_dice']:.4f}.pt",
                           "checkpoint_2.pt", "checkpoint_3.pt"]
