"""Exact resume: a train step killed mid-run and resumed with ``train.resume=auto`` reports the same losses
and validation Dice, and ends with the same weights, as an uninterrupted run with the same seed (CPU,
bit for bit); and a kill during a checkpoint save never leaves an unreadable checkpoint.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import torch
from omegaconf import DictConfig
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from components import preprocess, train
from components.common.checkpoints import PARTIAL_DIR
from tests.conftest import TINY_OVERRIDES
from tests.standin import procs
from tests.support import REPO, no_server_env, step_folder

pytestmark = pytest.mark.slow
Cfg = Callable[..., DictConfig]
EPOCHS = ("train.max_epochs=5", "train.val_interval=1")
# the epoch after which the killed attempt is stopped (the kill lands while it trains the next one)
KILL_AFTER_EPOCH = 2


def _scalars(folder: Path) -> dict[str, dict[int, float]]:
    """Every scalar the TensorBoard handlers wrote in ``folder`` except timings (``data_wait``, wall-clock
    shares that differ between any two runs): tag -> step -> value."""
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]
            if tag != "data_wait"}


def _wait_for_line(log: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not (log.exists() and text in log.read_text(errors="replace")):
        if time.monotonic() > deadline:
            raise AssertionError(f"'{text}' not in {log} after {timeout}s:\n"
                                 f"{log.read_text(errors='replace')[-3000:] if log.exists() else '(no log)'}")
        time.sleep(0.05)


def test_a_run_killed_mid_training_resumes_bit_for_bit(tiny_cfg: Cfg, tmp_path: Path) -> None:
    reference = tiny_cfg(*EPOCHS, run_id="reference")
    preprocess.run(reference)
    uninterrupted = train.run(reference)
    expected = _scalars(step_folder(reference, "train") / "tensorboard")

    # the same run in its own process, SIGKILLed while it trains the epoch after KILL_AFTER_EPOCH
    killed = tiny_cfg(*EPOCHS, run_id="killed")
    preprocess.run(killed)
    log = tmp_path / "killed-attempt.log"
    attempt = procs.start([sys.executable, "components/train.py", *TINY_OVERRIDES, *EPOCHS,
                           f"paths.output_root={tmp_path}", "paths.run_id=killed"], no_server_env(tmp_path), REPO, log)
    try:
        _wait_for_line(log, f"epoch {KILL_AFTER_EPOCH}/5", timeout=240)
        os.kill(attempt.popen.pid, signal.SIGKILL)
        attempt.wait(timeout=30)
    finally:
        attempt.stop()
    folder = step_folder(killed, "train")
    (folder / "tensorboard").rename(folder / "tensorboard-killed")

    resumed = train.run(tiny_cfg(*EPOCHS, "train.resume=auto", run_id="killed"))
    done = resumed["resumed_from_epoch"]
    assert done in (KILL_AFTER_EPOCH - 1, KILL_AFTER_EPOCH), resumed  # the kill may precede epoch 2's save
    per_epoch = resumed["iterations_per_epoch"]
    got = _scalars(folder / "tensorboard")
    assert set(got) == set(expected), "the resumed run reports the same series"
    for tag, by_step in expected.items():
        # iteration-level series (train_loss) count iterations, epoch-level ones (lr, val Dice) epochs
        first_new = done * per_epoch + 1 if tag == "train_loss" else done + 1
        assert min(got[tag]) == first_new, f"{tag}: the resumed scalars continue from step {first_new}"
        assert got[tag] == {s: v for s, v in by_step.items() if s >= first_new}, f"{tag} differs after the resume"
    before = _scalars(folder / "tensorboard-killed")
    for tag, by_step in before.items():
        assert all(by_step[s] == expected[tag][s] for s in by_step if s < (done * per_epoch + 1 if tag == "train_loss"
                                                                           else done + 1)), tag

    assert resumed["best_val_mean_dice"] == uninterrupted["best_val_mean_dice"]
    assert resumed["final_loss"] == uninterrupted["final_loss"]
    mine, theirs = (torch.load(r["last_checkpoint"], weights_only=True) for r in (resumed, uninterrupted))
    assert mine["net"].keys() == theirs["net"].keys()
    assert all(torch.equal(mine["net"][k], theirs["net"][k]) for k in mine["net"]), "final weights differ"


SAVER = """
import sys, time, torch
from components.common.checkpoints import AtomicCheckpointSaver
saver = AtomicCheckpointSaver(sys.argv[1])
big = {"net": {"w": torch.randn(40_000_000)}}  # 160 MB: a save takes long enough to be cut
for n in range(1000):
    saver(big, f"checkpoint_{n % 3}.pt")
    print(f"saved {n}", flush=True)
"""


def test_a_kill_during_a_save_leaves_every_checkpoint_readable(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    script = tmp_path / "saver.py"
    script.write_text(SAVER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for attempt in range(3):
        log = tmp_path / f"saver-{attempt}.log"
        saver = procs.start([sys.executable, str(script), str(folder)], env, REPO, log)
        try:
            _wait_for_line(log, f"saved {attempt + 1}", timeout=120)
            time.sleep(0.1 + 0.1 * attempt)  # somewhere inside the next save
            os.kill(saver.popen.pid, signal.SIGKILL)
            saver.wait(timeout=30)
        finally:
            saver.stop()
        finals = sorted(folder.glob("*.pt"))
        assert finals, "complete checkpoints exist"
        for path in finals:
            assert torch.load(path, weights_only=True)["net"]["w"].numel() == 40_000_000, path
    left = {p.name for p in folder.iterdir()}
    assert left <= {"checkpoint_0.pt", "checkpoint_1.pt", "checkpoint_2.pt", PARTIAL_DIR}, \
        f"only complete checkpoints and the partial-save folder: {left}"
