"""``monai-pipeline``: one command family for every way of running the pipeline.

    monai-pipeline run [hydra overrides...]         # all steps on this machine (offline without a server)
    monai-pipeline remote [hydra overrides...]      # controller enqueued to its queue, steps to theirs
    monai-pipeline controller [hydra overrides...]  # controller here, steps on agents; waits for the end
    monai-pipeline register [hydra overrides...]    # draft pipeline on the Pipelines page, run it from the UI
    monai-pipeline schedule register|remove|show [hydra overrides...]  # nightly and new-data runs of the draft

Overrides of keys that are pipeline parameters (train.max_epochs, model, ...) become the parameters'
values; see ``pipelines/parameters.py`` for the mapping.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from components.common.errors import PipelineError, StepFailed

REMOTE_COMMANDS = {
    "remote": "run the pipeline on agents: the controller is enqueued to pipeline.queues.controller",
    "controller": "run the pipeline controller here (until the run ends), the steps on agents",
    "register": "create the pipeline (a draft) so it can be run from the ClearML Pipelines page",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="monai-pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run every pipeline step on this machine")
    run.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. train.max_epochs=3 model=segresnet")
    for name, text in REMOTE_COMMANDS.items():
        remote = sub.add_parser(name, help=text)
        remote.add_argument("overrides", nargs="*", help="Hydra overrides; parameter keys become pipeline parameters")
    schedule = sub.add_parser("schedule", help="nightly retrains: run the registered pipeline on a schedule and on "
                                               "new raw data (conf/schedule)")
    schedule.add_argument("action", choices=["register", "remove", "show"],
                          help="register (or replace) the schedule, remove it, or show it with its last runs")
    schedule.add_argument("overrides", nargs="*", help="Hydra overrides: schedule.* settings and the runs' config")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            from .local import run_local
            run_local(args.overrides)
        elif args.command in REMOTE_COMMANDS:
            from .remote import launch
            return launch(args.command, args.overrides)
        elif args.command == "schedule":
            from .schedule import launch as launch_schedule
            return launch_schedule(args.action, args.overrides)
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except StepFailed as e:  # its own log has the details
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
