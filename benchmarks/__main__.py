"""``python -m benchmarks``: every suite, each side measured alternately in this one run; a table and a JSON file.

    python -m benchmarks                          # all suites, default sizes (about 15 minutes on 2 CPU cores)
    python -m benchmarks --suites time_to_target data_path --repeats 5
    python -m benchmarks --device cuda            # the GPU figures (time to target, data path, memory, scaling)

Figures are ratios of two sides measured together (benchmarks/README.md says what each one compares).
Exit status 1 when a figure misses its target.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import psutil
import torch

from benchmarks import clearml_overhead, data_path, memory, orchestration, scaling, time_to_target, workload
from benchmarks.common import Row, table
from pipelines.config import compose_config

SUITES: dict[str, Callable[..., list[Row]]] = {
    "time_to_target": time_to_target.run,
    "data_path": data_path.run,
    "clearml_overhead": clearml_overhead.run,
    "orchestration": orchestration.run,
    "memory": memory.run,
    "scaling": scaling.run,
}
POLL_SECONDS = float(compose_config().pipeline.poll_seconds)
# suites that train on the prepared synthetic data (the others start their own runs)
NEEDS_DATA = {"time_to_target", "data_path", "clearml_overhead", "memory", "scaling"}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suites", nargs="+", choices=list(SUITES), default=list(SUITES))
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side per comparison (median, spread)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--cases", type=int, default=24, help="synthetic cases of the default-size data set")
    parser.add_argument("--target-dice", type=float, default=0.90, help="time to target: validation mean Dice")
    parser.add_argument("--overhead-epochs", type=int, default=4, help="ClearML overhead: epochs per train run")
    parser.add_argument("--memory-factors", type=int, nargs="+", default=[1, 4, 16],
                        help="memory and scaling: data set sizes as multiples of --cases")
    parser.add_argument("--nprocs", type=int, nargs="+", default=[1, 2], help="scaling: train.distributed.nproc")
    parser.add_argument("--poll-seconds", type=float, nargs=2, default=[12.0, POLL_SECONDS], metavar=("BEFORE", "AFTER"),
                        help="orchestration: pipeline.poll_seconds of the two sides (12 s is ClearML's default, "
                             f"{POLL_SECONDS:g} s the config's)")
    parser.add_argument("--orchestration-repeats", type=int, default=1,
                        help="orchestration: pipeline runs per side (each about a minute on 2 cores)")
    parser.add_argument("--agent-poll-seconds", type=float, default=1.0,
                        help="orchestration: the agents' queue poll (clearml-agent's default is 5 s)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep runs and logs here (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=Path("outputs/benchmarks.json"), help="where to write the results")
    return parser.parse_args(argv)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {"cpu": _cpu_model(), "cores": psutil.cpu_count(logical=True),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version()}


def _cpu_model() -> str:
    """The CPU's model name (Linux), else what the platform module knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="benchmarks-") as tmp:
        workdir = (args.workdir or Path(tmp)).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        data = workload.prepare(workdir, int(args.cases)) if NEEDS_DATA & set(args.suites) else None
        for name in args.suites:
            suite_started = time.perf_counter()
            rows += SUITES[name](args, data, workdir)
            print(f"[{name}] {time.perf_counter() - suite_started:.0f} s", flush=True)
    report = table(rows)
    print(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine(), "arguments": {k: str(v) for k, v in vars(args).items()},
                                     "seconds": round(time.perf_counter() - started, 1),
                                     "rows": [r.to_json() for r in rows]}, indent=1))
    print(f"results: {args.json} ({time.perf_counter() - started:.0f} s)")
    return 1 if any(r.met is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
