"""``monai-pipeline``: one command family for every way of running the pipeline.

    monai-pipeline run [hydra overrides...]      # all steps on this machine (offline without a server)
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from components.common.errors import PipelineError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="monai-pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run preprocess -> train -> evaluate on this machine")
    run.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. train.max_epochs=3 model=segresnet")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            from .local import run_local
            run_local(args.overrides)
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # a failed step: its own log has the details
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
