"""Random state that a resumed run reproduces: every epoch starts from a seed derived from the run's seed
and the epoch, so training after a resume draws exactly what the uninterrupted run drew."""

from __future__ import annotations

import numpy as np
from ignite.engine import Engine, Events
from monai.data.utils import set_rnd
from monai.utils import set_determinism
from torch.utils.data import Dataset


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A 32-bit seed for ``epoch`` (1-based) of data-parallel rank ``rank``, derived from the run's ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(epoch), int(rank)]).generate_state(1)[0])


class EpochSeeding:
    """Reseed Python, NumPy, torch and the data set's random transforms when each epoch starts.

    ignite's checkpoints restore the network, optimizer, schedule and counters but no random state, and
    MONAI's random transforms keep their own generators; reseeding at ``EPOCH_STARTED`` from
    ``(seed, epoch, rank)`` makes each epoch's patch sampling, augmentation, shuffling and data-loader
    worker seeds (drawn from torch's generator when the epoch's iterator is created, after this handler)
    independent of what ran before it. Checkpoints are written at epoch ends, so a resume starts exactly
    where an uninterrupted run would be.
    """

    def __init__(self, seed: int, dataset: Dataset, rank: int = 0) -> None:
        self.seed, self.dataset, self.rank = int(seed), dataset, int(rank)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        seed = epoch_seed(self.seed, engine.state.epoch, self.rank)
        set_determinism(seed=seed, use_deterministic_algorithms=None)
        set_rnd(self.dataset, seed)
