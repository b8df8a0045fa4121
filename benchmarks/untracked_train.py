"""The train step without ClearML: ``components.train.run(cfg)`` with no task (its stats and images go to
TensorBoard only, its checkpoints are not captured). The baseline of the ClearML overhead benchmark.

    python -m benchmarks.untracked_train inputs.manifest=<prepared folder> train.max_epochs=6
"""

from __future__ import annotations

import logging
import sys

from components import train
from pipelines.config import compose_config


def main(overrides: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s %(levelname)s] %(message)s")
    logging.getLogger("ignite.engine").setLevel(logging.WARNING)
    train.run(compose_config(overrides))


if __name__ == "__main__":
    main(sys.argv[1:])
