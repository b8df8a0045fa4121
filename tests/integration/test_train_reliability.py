"""The train step online: captured checkpoints named after their files, a resume from an earlier attempt's
captured checkpoints (a truncated newest one skipped), and Ctrl-C / SIGTERM ending the task as aborted."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from pathlib import Path
from urllib.parse import unquote

import pytest
import torch

from tests.conftest import TINY_OVERRIDES
from tests.standin import procs
from tests.standin.environment import ClearMLEndpoint
from tests.standin.fixtures import ApiClient, SdkRunner
from tests.standin.server import StandinServer
from tests.support import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ONLINE = (*(o for o in TINY_OVERRIDES if not o.startswith("clearml.offline")), "clearml.offline=false")


def _result(folder: Path) -> dict:
    return json.loads((folder / "train" / "result.json").read_text())


def test_a_fresh_machine_resumes_from_the_earlier_attempts_captured_checkpoints(
        sdk: SdkRunner, clearml_api: ApiClient, standin: StandinServer, tmp_path: Path, unique_name: str) -> None:
    common = [*ONLINE, f"clearml.project={unique_name}", f"paths.output_root={tmp_path}"]
    sdk.run(REPO / "components/preprocess.py", *common, "paths.run_id=a", cwd=REPO, timeout=300)
    sdk.run(REPO / "components/train.py", *common, "paths.run_id=a", "train.max_epochs=3", "train.val_interval=1",
            cwd=REPO, timeout=300)
    first = _result(tmp_path / "a")["clearml_task_id"]

    # every captured checkpoint is named after its final file, never the partial one being written
    entries = {e["name"]: e["model"] for e in clearml_api.task(first)["models"]["output"]}
    assert {"checkpoint_2", "checkpoint_3"} <= set(entries), entries
    for name, model_id in entries.items():
        uri = unquote(clearml_api.call("models.get_by_id", model=model_id)["model"]["uri"])
        assert uri.endswith(f"/{name}.pt") and ".partial" not in uri, (name, uri)

    # a kill cut the newest upload short: the stored file is truncated
    (stored,) = [p for p in standin.files_root.rglob("checkpoint_3.pt") if first in str(p)]
    stored.write_bytes(stored.read_bytes()[:200])

    # another machine (another output folder, the same prepared data) continues that attempt
    resumed = sdk.run(REPO / "components/train.py", *common, "paths.run_id=b", "train.max_epochs=4",
                      "train.val_interval=1", "train.resume=auto", f"train.resume_from_task={first}",
                      f"inputs.manifest={tmp_path / 'a' / 'preprocess' / 'manifest.json'}", cwd=REPO, timeout=300)
    result = _result(tmp_path / "b")
    assert result["resumed_from_epoch"] == 2 and result["epochs"] == 4, result
    assert "checkpoint_3 of task" in resumed.output and "unusable" in resumed.output
    fetched = sorted(p.name for p in (tmp_path / "b" / "train" / "checkpoints").glob("*.pt"))
    assert "checkpoint_4.pt" in fetched and any(n.startswith("best_checkpoint_") for n in fetched), fetched
    assert "epoch 3/4" in resumed.output and "epoch 2/4" not in resumed.output, "only the missing epochs train"

    unknown = sdk.run(REPO / "components/train.py", *common, "paths.run_id=c", "train.resume=auto",
                      "train.resume_from_task=0123456789abcdef", check=False, cwd=REPO, timeout=300)
    assert unknown.returncode == 2 and "config key 'train.resume_from_task': no ClearML task with id" in unknown.output

    # an attempt that saved no checkpoint (here: the preprocess task) leaves nothing to continue: a fresh start
    preprocess_task = json.loads((tmp_path / "a" / "preprocess" / "result.json").read_text())["clearml_task_id"]
    sdk.run(REPO / "components/train.py", *common, "paths.run_id=d", "train.max_epochs=1", "train.resume=auto",
            f"train.resume_from_task={preprocess_task}",
            f"inputs.manifest={tmp_path / 'a' / 'preprocess' / 'manifest.json'}", cwd=REPO, timeout=300)
    assert _result(tmp_path / "d")["resumed_from_epoch"] is None


def test_without_an_upload_destination_the_models_point_at_the_final_files(
        sdk: SdkRunner, clearml_api: ApiClient, tmp_path: Path, unique_name: str) -> None:
    common = [*ONLINE, f"clearml.project={unique_name}", f"paths.output_root={tmp_path}", "paths.run_id=a"]
    sdk.run(REPO / "components/preprocess.py", *common, cwd=REPO, timeout=300)
    sdk.run(REPO / "components/train.py", *common, "train.max_epochs=2", "clearml.output_uri=false", cwd=REPO,
            timeout=300)
    task = clearml_api.task(_result(tmp_path / "a")["clearml_task_id"])
    folder = tmp_path / "a" / "train" / "checkpoints"
    uris = {e["name"]: unquote(clearml_api.call("models.get_by_id", model=e["model"])["model"]["uri"])
            for e in task["models"]["output"] if e["name"].startswith("checkpoint_")}
    assert uris == {f"checkpoint_{n}": f"file://{folder / f'checkpoint_{n}.pt'}" for n in (1, 2)}

    # another machine cannot read those files: resuming from that task is a named error, not a fresh start
    for path in folder.glob("*.pt"):
        path.unlink()
    elsewhere = sdk.run(REPO / "components/train.py", *common, "paths.run_id=b", "train.max_epochs=3",
                        "train.resume=auto", f"train.resume_from_task={task['id']}", "clearml.output_uri=false",
                        f"inputs.manifest={tmp_path / 'a' / 'preprocess' / 'manifest.json'}", check=False, cwd=REPO,
                        timeout=300)
    assert elsewhere.returncode == 2, elsewhere.output[-3000:]
    assert f"config key 'train.resume_from_task': no checkpoint of task {task['id']} is readable" in elsewhere.output
    assert f"failed downloading file://{folder / 'checkpoint_2.pt'}" in elsewhere.output


def _wait_for_line(log: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not (log.exists() and text in log.read_text(errors="replace")):
        assert time.monotonic() < deadline, f"'{text}' not in {log}:\n{log.read_text(errors='replace')[-3000:]}"
        time.sleep(0.1)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_step_is_aborted_not_completed_and_keeps_its_checkpoints(
        clearml_server: ClearMLEndpoint, clearml_api: ApiClient, tmp_path: Path, unique_name: str, signum: int) -> None:
    common = [*ONLINE, f"clearml.project={unique_name}", f"paths.output_root={tmp_path}", "paths.run_id=x"]
    assert procs.run([sys.executable, "components/preprocess.py", *common], clearml_server.env(), REPO,
                     tmp_path / "prep.log", 300).returncode == 0
    log = tmp_path / "train.log"
    step = procs.start([sys.executable, "components/train.py", *common, "train.max_epochs=500"], clearml_server.env(),
                       REPO, log)
    try:
        _wait_for_line(log, "epoch 2/500", 240)
        os.kill(step.popen.pid, signum)
        code = step.wait(timeout=120)
    finally:
        step.stop()
    assert code != 0, "an interrupted step does not exit as a success"
    task_id = re.findall(r"ClearML Task: created new task id=(\w+)", log.read_text())[-1]
    task = clearml_api.wait_for_status(task_id, timeout=30)
    assert task["status"] == "stopped", task  # the web UI shows "stopped" as Aborted
    folder = tmp_path / "x" / "train" / "checkpoints"
    kept = sorted(p.name for p in folder.glob("checkpoint_*.pt"))
    assert kept and all(torch.load(folder / n, weights_only=True)["trainer"]["epoch_length"] for n in kept)
    assert f"checkpoints kept in {folder}" in log.read_text()
