"""DataWaitTimer on a plain ignite engine whose data arrives slowly."""

from __future__ import annotations

import time
from typing import Iterator

import pytest
from ignite.engine import Engine, Events

from components.common.data_wait import DataWaitTimer


class SlowBatches:
    """``count`` batches per pass, each taking ``wait`` seconds to arrive."""

    def __init__(self, wait: float, count: int) -> None:
        self.wait, self.count = wait, count

    def __iter__(self) -> Iterator[int]:
        for i in range(self.count):
            time.sleep(self.wait)
            yield i


@pytest.mark.parametrize(("data_s", "step_s"), [(0.04, 0.01), (0.0, 0.03)])
def test_share_of_each_epoch_spent_waiting_for_data(data_s: float, step_s: float) -> None:
    engine = Engine(lambda *_: time.sleep(step_s))
    DataWaitTimer().attach(engine)
    shares = []
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: time.sleep(0.2))  # e.g. validation: not counted
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: shares.append(e.state.data_wait))
    engine.run(SlowBatches(data_s, 5), max_epochs=2)
    expected = data_s / (data_s + step_s)
    assert len(shares) == 2
    assert all(abs(s - expected) < 0.15 for s in shares), shares
