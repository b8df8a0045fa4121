"""The promote step without a server: the champion kept in promote.local_registry, or a clear skip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
from omegaconf import DictConfig

from components import evaluate, preprocess, promote, train
from components.common.errors import ConfigError, DataError
from components.common.registry import CHAMPION_FILE

Cfg = Callable[..., DictConfig]


def _evaluated(tiny_cfg: Cfg, run_id: str, epochs: int) -> DictConfig:
    """A run folder with preprocess, train (``epochs``) and evaluate done; returns its config."""
    cfg = tiny_cfg(f"train.max_epochs={epochs}", run_id=run_id)
    preprocess.run(cfg)
    train.run(cfg)
    evaluate.run(cfg)
    return cfg


def test_local_champion_is_promoted_replaced_and_kept(tiny_cfg: Cfg, tmp_path: Path) -> None:
    weak, strong = _evaluated(tiny_cfg, "weak", 1), _evaluated(tiny_cfg, "strong", 6)
    dice = {name: json.loads((tmp_path / name / "evaluate/metrics.json").read_text())["summary"]["mean_dice"]
            for name in ("weak", "strong")}
    assert dice["strong"] > dice["weak"] + 0.005, dice
    registry = tmp_path / "production"

    below = promote.run(tiny_cfg("train.max_epochs=1", f"promote.min_dice={dice['weak'] + 0.01:.4f}", run_id="weak"))
    assert below["outputs"] == {"promoted": False, "production_model_id": None}
    assert "is below promote.min_dice" in below["decision"]["promotion_reason"]
    assert not (registry / CHAMPION_FILE).exists()

    first = promote.run(tiny_cfg("train.max_epochs=1", "promote.min_dice=0.0", run_id="weak"))
    assert first["outputs"] == {"promoted": True, "production_model_id": "local:weak"}
    record = json.loads((registry / CHAMPION_FILE).read_text())
    assert record["id"] == "local:weak" and record["previous_champion"] is None
    assert (registry / record["weights"]).read_bytes() == Path(record["source"]).read_bytes()

    better = promote.run(strong)
    assert better["champion_id"] == "local:weak" and better["champion_case_ids"] == better["case_ids"]
    assert better["champion_metrics"]["mean_dice"] == pytest.approx(dice["weak"], abs=1e-6)  # re-scored, same cases
    assert better["outputs"] == {"promoted": True, "production_model_id": "local:strong"}
    assert json.loads((registry / CHAMPION_FILE).read_text())["previous_champion"] == "local:weak"
    assert any(line.startswith("promote: PROMOTED local:strong") for line in better["summary"])

    worse = promote.run(weak)
    assert worse["outputs"] == {"promoted": False, "production_model_id": "local:strong"}
    assert worse["decision"]["promotion_reason"].startswith("kept the production model: not better by the margin")
    assert json.loads((registry / CHAMPION_FILE).read_text())["id"] == "local:strong"

    again = promote.run(strong)  # promoting the production model again changes nothing
    assert again["outputs"] == {"promoted": False, "production_model_id": "local:strong"}
    assert "is already the production model" in again["decision"]["promotion_reason"]

    skipped = promote.run(tiny_cfg("train.max_epochs=6", "promote.local_registry=null", run_id="strong"))
    assert skipped["outputs"] == {"promoted": None, "production_model_id": None}
    assert "skipped" in skipped["summary"][0] and "promote.local_registry is null" in skipped["summary"][0]


def test_promote_names_a_missing_or_foreign_evaluation_and_a_broken_champion_record(tiny_cfg: Cfg, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"inputs.metrics_json.*no evaluation to promote"):
        promote.run(tiny_cfg(run_id="empty"))
    with pytest.raises(ConfigError, match=r"inputs.metrics_json.*does not exist"):
        promote.run(tiny_cfg(f"++inputs.metrics_json={tmp_path / 'nope.json'}", run_id="empty"))
    foreign = tmp_path / "other.json"
    foreign.write_text(json.dumps({"summary": {}}))
    with pytest.raises(DataError, match=r"not an evaluation record \(no cases, weights\)"):
        promote.run(tiny_cfg(f"++inputs.metrics_json={foreign}", run_id="empty"))
    registry = tmp_path / "production"
    registry.mkdir()
    (registry / CHAMPION_FILE).write_text("{not json")
    record = tmp_path / "record.json"
    record.write_text(json.dumps({"summary": {"mean_dice": 0.5}, "cases": [], "weights": {}}))
    with pytest.raises(DataError, match=r"champion.json: unreadable champion record"):
        promote.run(tiny_cfg(f"++inputs.metrics_json={record}", run_id="empty"))
