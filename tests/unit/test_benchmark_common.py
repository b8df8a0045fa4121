"""The benchmark's arithmetic and bookkeeping: ratios point the right way, sides alternate, data replicates."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import pytest

from benchmarks import workload
from benchmarks.__main__ import SUITES, parse
from benchmarks.common import Row, check, interleave, run_watched, table


def test_ratio_says_how_many_times_better_ours_is_for_times_and_throughputs() -> None:
    faster = Row("s", "time", "s", ours=[10.0, 12.0, 11.0], baseline=[30.0, 33.0, 36.0])
    assert faster.ours_median == 11.0 and faster.ratio == 3.0
    assert check(faster, minimum_ratio=2.0).met is True and faster.target == ">= 2x"
    throughput = Row("s", "rate", "patches/s", ours=[100.0], baseline=[400.0], better="higher")
    assert throughput.ratio == 0.25 and check(throughput, minimum_ratio=3.5).met is False
    share = check(Row("s", "wait", "%", ours=[4.0, 6.0, 7.0]), maximum=5.0)
    assert share.ratio is None and share.met is False and share.target == "<= 5 %"
    assert "| s | time | 11 s (10-12) | : 33 s (30-36) | 3.00x | >= 2x | yes |" in table([faster])
    assert json.loads(json.dumps(faster.to_json()))["ratio"] == 3.0


def test_sides_alternate_their_order_every_repeat() -> None:
    calls: list[tuple[str, int]] = []
    samples = interleave({"a": lambda r: calls.append(("a", r)) or 1.0,  # type: ignore[func-returns-value]
                          "b": lambda r: calls.append(("b", r)) or 2.0}, repeats=3)  # type: ignore[func-returns-value]
    assert calls == [("a", 0), ("b", 0), ("b", 1), ("a", 1), ("a", 2), ("b", 2)]
    assert samples == {"a": [1.0, 1.0, 1.0], "b": [2.0, 2.0, 2.0]}


def test_a_watched_command_is_stopped_at_the_line_and_its_memory_sampled(tmp_path: Path) -> None:
    script = "import time\nx = bytearray(50 * 2**20)\nfor i in range(100):\n    print(i, flush=True); time.sleep(0.05)"
    watched = run_watched([sys.executable, "-c", script], tmp_path / "w.log", until=re.compile(r"^7$").search)
    assert watched.match is not None and watched.returncode is None and watched.seconds is not None
    assert 0.3 < watched.seconds < watched.wall < 5 and watched.peak_rss > 50 * 2**20
    assert (tmp_path / "w.log").read_text().split() == [str(i) for i in range(8)]
    finished = run_watched([sys.executable, "-c", "print('done')"], tmp_path / "f.log")
    assert finished.returncode == 0 and finished.output == "done\n"


def test_replicated_data_repeats_every_case_with_its_split(tmp_path: Path) -> None:
    folder = tmp_path / "prepared"
    (folder / "imagesTr").mkdir(parents=True)
    cases = [{"id": f"c{i}", "image": f"imagesTr/c{i}.nii.gz", "label": f"labelsTr/c{i}.nii.gz", "split": s}
             for i, s in enumerate(["train", "train", "val"])]
    (folder / "manifest.json").write_text(json.dumps({"cases": cases, "labels": {"0": "bg", "1": "fg"},
                                                      "splits": {"train": ["c0", "c1"], "val": ["c2"], "test": []}}))
    bigger = workload.replicate(folder, 3)
    manifest = json.loads((bigger / "manifest.json").read_text())
    assert len(manifest["cases"]) == 9 and len(manifest["splits"]["train"]) == 6 and manifest["splits"]["test"] == []
    assert (bigger / "2" / "imagesTr" / "c1.nii.gz").resolve() == (folder / "imagesTr" / "c1.nii.gz").resolve()


def test_every_command_in_the_benchmarks_readme_parses() -> None:
    readme = (Path(__file__).resolve().parents[2] / "benchmarks" / "README.md").read_text()
    commands = [shlex.split(line.split("#")[0])[3:] for line in readme.splitlines()
                if line.startswith(".venv/bin/python -m benchmarks")]
    assert len(commands) >= 3
    for args in commands:
        if args == ["--help"]:
            with pytest.raises(SystemExit) as ended:
                parse(args)
            assert ended.value.code == 0
            continue
        parsed = parse(args)
        assert set(parsed.suites) <= set(SUITES) and parsed.repeats >= 1


def test_a_watched_command_that_never_prints_the_line_is_an_error_and_a_hung_one_is_killed(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"ended \(exit 0\) before the line it was watched for; see .*early.log"):
        run_watched([sys.executable, "-c", "print('no match')"], tmp_path / "early.log", until=re.compile("x").search)
    hung = run_watched([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "hung.log", timeout=1.0)
    assert hung.returncode is not None and hung.returncode < 0 and hung.wall < 30
