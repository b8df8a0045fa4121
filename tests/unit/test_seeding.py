"""EpochSeeding on a plain ignite engine: an epoch draws the same random numbers whatever ran before it,
in the loop process and in data-loader workers."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.data import Dataset
from monai.transforms import RandomizableTransform

from components.common.data import make_loader
from components.common.seeding import EpochSeeding, epoch_seed


class Draw(RandomizableTransform):
    """Returns the item with a draw from the transform's own generator (as MONAI's random transforms use)."""

    def __call__(self, item: int) -> tuple[int, float]:
        return item, float(self.R.random_sample())


def _draws(num_workers: int, epochs: int, start_epoch: int = 0) -> dict[int, list]:
    """Per epoch: the batches a shuffled loader gave, plus torch/NumPy/Python draws made in the loop."""
    dataset = Dataset(list(range(6)), transform=Draw())
    loader = make_loader(dataset, batch_size=2, shuffle=True, num_workers=num_workers)
    seen: dict[int, list] = {}

    def step(engine: Engine, batch: object) -> None:
        seen.setdefault(engine.state.epoch, []).append(
            (batch, torch.rand(1).item(), np.random.rand(), random.random()))

    engine = Engine(step)
    EpochSeeding(seed=7, dataset=dataset).attach(engine)
    if start_epoch:
        engine.load_state_dict({"epoch": start_epoch, "epoch_length": len(loader), "max_epochs": epochs})
    torch.manual_seed(12345)  # whatever the generators were before the run must not matter
    engine.run(loader, max_epochs=epochs)
    return seen


@pytest.mark.parametrize("num_workers", [0, 1])
def test_an_epoch_draws_the_same_after_a_resume(num_workers: int) -> None:
    whole = _draws(num_workers, epochs=3)
    resumed = _draws(num_workers, epochs=3, start_epoch=2)
    assert list(resumed) == [3]
    assert str(resumed[3]) == str(whole[3])
    assert str(whole[2]) != str(whole[3]), "epochs differ from each other"


def test_epoch_seeds_differ_by_epoch_rank_and_seed() -> None:
    seeds = {epoch_seed(s, e, r) for s in (0, 1) for e in (1, 2) for r in (0, 1)}
    assert len(seeds) == 8 and all(0 <= s < 2**32 for s in seeds)
    assert epoch_seed(0, 1) == epoch_seed(0, 1, 0)
