"""How much of each training epoch waits for data: the number that says whether a run is input-bound."""

from __future__ import annotations

import time

from ignite.engine import Engine, Events


class DataWaitTimer:
    """Per epoch, the share of the epoch's iteration time (ignite's own epoch timing, which leaves out what
    runs at ``EPOCH_COMPLETED`` such as validation) the engine spent fetching batches (``GET_BATCH_STARTED``
    to ``GET_BATCH_COMPLETED``), stored as ``engine.state.data_wait`` (0-1) for the progress line and the
    stats handlers' ``state_attributes``.

    Near 0 the network is the bottleneck; a large share means the data path (loading, uncached transforms,
    too few loader workers) holds the GPU or CPU back.
    """

    def __init__(self) -> None:
        self.waited = self.batch_requested = 0.0

    def attach(self, engine: Engine) -> None:
        engine.state.data_wait = 0.0  # type: ignore[attr-defined]
        engine.add_event_handler(Events.EPOCH_STARTED, self.start_epoch)
        engine.add_event_handler(Events.GET_BATCH_STARTED, self.request)
        engine.add_event_handler(Events.GET_BATCH_COMPLETED, self.receive)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.complete_epoch)

    def start_epoch(self, _: Engine) -> None:
        self.waited = 0.0

    def request(self, _: Engine) -> None:
        self.batch_requested = time.perf_counter()

    def receive(self, _: Engine) -> None:
        self.waited += time.perf_counter() - self.batch_requested

    def complete_epoch(self, engine: Engine) -> None:
        elapsed = engine.state.times.get(Events.EPOCH_COMPLETED.name) or 0.0
        engine.state.data_wait = self.waited / elapsed if elapsed > 0 else 0.0  # type: ignore[attr-defined]
