"""A fourth step costs one DAG entry and one component file: the local runner executes it with its inputs
wired from the DAG (the remote pipeline's counterpart is in tests/remote/test_remote_pipeline.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import TINY_OVERRIDES
from tests.standin.repo import make_project_clone
from tests.support import cli, no_server_env, run_command, with_report_step

pytestmark = pytest.mark.slow


def test_local_run_executes_a_step_added_by_one_entry_and_one_file(tmp_path: Path) -> None:
    checkout = make_project_clone(tmp_path / "repo", extra_files=with_report_step())
    env = {**no_server_env(tmp_path), "PYTHONPATH": str(checkout.work)}  # the checkout's code, not the installed one
    finished = run_command(cli("run", *TINY_OVERRIDES, f"paths.output_root={tmp_path}", "paths.run_id=four"),
                           tmp_path / "run.log", env=env, cwd=checkout.work)
    assert finished.returncode == 0, finished.output[-6000:]
    summary = json.loads((tmp_path / "four" / "summary.json").read_text())
    assert list(summary["seconds"]) == ["preprocess", "train", "evaluate", "promote", "report"]
    dice = summary["outputs"]["evaluate"]["test_mean_dice"]
    verdict = summary["outputs"]["report"]["verdict"]
    promoted = summary["outputs"]["promote"]["promoted"]
    assert isinstance(promoted, bool)
    assert f"({dice:.5f}, promoted={promoted})" in verdict, verdict
    assert (tmp_path / "four" / "report" / "report.txt").read_text() == verdict
    assert f"report: {verdict}" in finished.output  # the step's own summary line
    # the runner handed evaluate's output over as the Hydra override inputs.test_mean_dice
    recorded = (tmp_path / "four" / "report" / "config.resolved.yaml").read_text()
    assert f"test_mean_dice: {dice}" in recorded
