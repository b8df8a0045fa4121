"""``python -m benchmarks`` runs every suite end to end at tiny sizes and reports what each figure is made of.
Nothing here is timed: the figures' values are the benchmark's business (benchmarks/README.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.support import run_command

pytestmark = pytest.mark.slow

TINY = ["--repeats", "1", "--cases", "12", "--target-dice", "0.05", "--overhead-epochs", "1",
        "--memory-factors", "1", "2", "--nprocs", "1", "2"]


def test_the_training_suites_report_every_figure_with_both_sides(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = run_command([sys.executable, "-m", "benchmarks", "--suites", "time_to_target", "data_path",
                        "clearml_overhead", "memory", "scaling", *TINY, "--workdir", str(tmp_path / "work"),
                        "--json", str(out)], tmp_path / "benchmarks.log", timeout=900)
    results = json.loads(out.read_text())
    rows = {(r["suite"], r["metric"].split(" (")[0]): r for r in results["rows"]}
    missed = [r["metric"] for r in results["rows"] if r["met"] is False]
    assert proc.returncode == (1 if missed else 0), proc.output[-4000:]
    assert results["machine"]["cores"] >= 1 and "| suite | metric |" in proc.output

    target = rows[("time to target", "seconds to val Dice 0.05")]
    assert len(target["ours"]) == len(target["baseline"]) == 1 and target["target"] == ">= 2x"
    assert target["ratio"] == pytest.approx(target["baseline_median"] / target["ours_median"])
    epochs = rows[("time to target", "epochs to the target")]
    assert epochs["ours"][0] >= 1 and epochs["baseline"] == [2.0]  # the tutorial validates every 2 epochs
    assert 0 <= rows[("data path", "data wait share of training iterations")]["ours"][0] <= 100
    patches = rows[("data path", "training patches per second")]
    assert patches["better"] == "higher" and patches["ours"][0] > 0 and patches["baseline"][0] > 0
    for side in ("offline tracking", "online tracking, stand-in server"):
        overhead = rows[("ClearML overhead", f"train step, {side}")]
        assert overhead["baseline_label"] == "off" and overhead["target"] == ">= 0.97x"
    peaks = [rows[("memory", f"peak RSS of a train step, {f}x cases")]["ours"][0] for f in (1, 2)]
    assert all(p > 100 for p in peaks), "a train step holds at least torch and MONAI (MiB)"
    assert rows[("memory", "cached per case")]["ours"][0] == pytest.approx(2 * 64**3 * 4 / 2**20)
    assert rows[("memory", "largest data set with cache=cache")]["ours"][0] > 0
    assert rows[("scaling", "seconds per epoch, nproc=2")]["baseline_label"] == "nproc=1"
    assert (tmp_path / "work" / "memory-2x.log").is_file(), "the 2x run trained on the replicated data"


@pytest.mark.agent
def test_the_orchestration_suite_runs_a_pipeline_on_agents_and_splits_its_time(tmp_path: Path) -> None:
    """One pipeline run (both sides poll every second, so the two sides are one run): every part is there."""
    out = tmp_path / "results.json"
    proc = run_command([sys.executable, "-m", "benchmarks", "--suites", "orchestration", "--orchestration-repeats",
                        "1", "--poll-seconds", "1", "1", "--workdir", str(tmp_path / "work"), "--json", str(out)],
                       tmp_path / "benchmarks.log", timeout=900)
    rows = {r["metric"].split(":")[0] if r["metric"].startswith("per step") else r["metric"].split(" (")[0]: r
            for r in json.loads(out.read_text())["rows"]}
    overhead = rows["orchestration overhead per step"]
    assert proc.returncode == (1 if overhead["met"] is False else 0), proc.output[-4000:]
    assert len(overhead["ours"]) == 1 and overhead["ours"] == overhead["baseline"] and overhead["target"] == "<= 10 s"
    step_parts = [r for r in json.loads(out.read_text())["rows"] if r["metric"].startswith("per step: ")]
    assert len(step_parts) == 8 and all(r["ours"][0] >= 0 for r in step_parts)  # 6 parts, agent share, startup - import
    assert rows["steps' own work, all steps"]["ours"][0] > 0
    assert rows["per run: API requests to the server"]["ours"][0] > 100
    assert rows["fresh interpreter importing components.train"]["ours"][0] > 0
    assert "controller poll 1.0 s" in proc.output, "the run's controller recorded the poll it was given"
