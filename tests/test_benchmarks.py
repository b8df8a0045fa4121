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
