"""How much faster the train step runs with MONAI's cached datasets than without, measured side by side.

Runs the train step's ``run(cfg)`` on the same prepared data with ``train.cache.type`` = cache,
persistent (second use, cache already on disk) and none, and reports each time as a ratio to ``none``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from components import preprocess, train
from pipelines.config import compose_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--cases", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = [f"paths.output_root={tmp}", "paths.run_id=bench", f"data.num_cases={args.cases}",
                f"train.max_epochs={args.epochs}", f"train.val_interval={args.epochs}", "device=cpu",
                "train.log_images=false"]
        preprocess.run(compose_config(base))
        persistent_dir = Path(tmp) / "persistent-cache"
        times = {}
        for label, extra in (("none", ["train.cache.type=none"]),
                             ("cache", ["train.cache.type=cache"]),
                             ("persistent (warm-up)", ["train.cache.type=persistent", f"train.cache.dir={persistent_dir}"]),
                             ("persistent", ["train.cache.type=persistent", f"train.cache.dir={persistent_dir}"])):
            started = time.time()
            train.run(compose_config([*base, *extra]))
            times[label] = time.time() - started
    for label, seconds in times.items():
        print(f"{label:>22}: {seconds:6.1f} s  ({times['none'] / seconds:4.2f}x the speed of no cache)")


if __name__ == "__main__":
    main()
