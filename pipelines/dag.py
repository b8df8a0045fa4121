"""The pipeline's steps, declared once. Every runner, the tracking code and the tests read this list.

A step is a component script ``components/<name>.py`` run as its own ClearML task. Its entry here says
everything the runners need to know about it: parents, ClearML task type, queue kind, what it takes
from earlier steps and what it hands on, whether the remote pipeline may reuse a cached run of it,
whether a retry resumes it, and what the pipeline page monitors. Adding a step is one entry here plus
its component file (and, if it has settings, a config group listed in conf/config.yaml's defaults).

Hand-over between steps (``inputs`` / ``outputs``): a step publishes each name in ``outputs`` as the task
parameter ``Outputs/<name>`` and in its ``result.json``; a later step that lists the name in ``inputs``
gets it as the Hydra key ``inputs.<name>``. The remote pipeline wires it as
``${<producer>.parameters.Outputs/<name>}``; the local runner passes the producer's value. Names in
``local_outputs`` (files on this machine, e.g. the manifest path) are handed over by the local runner only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from components.common.clearml_compat import BEST_MODEL_NAME

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPONENTS_DIR = "components"


@dataclass(frozen=True)
class Step:
    """One pipeline step: a component script run as its own ClearML task."""

    name: str
    task_type: str  # a clearml.Task.TaskTypes value: training, testing, data_processing, qc, ...
    queue_kind: str  # cpu | gpu: pipeline.queues.<kind> names the queue (pipeline.steps.<name>.queue overrides it)
    parents: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()  # output names of earlier steps this step reads as ``inputs.<name>``
    outputs: tuple[str, ...] = ()  # names it publishes as ``Outputs/<name>`` (handed over through ClearML)
    local_outputs: tuple[str, ...] = ()  # local file paths it hands on in a local run only
    # the remote pipeline may reuse a completed task with the same code and parameters; only overrides of
    # these root config keys reach a cacheable step, so that e.g. a change of epochs keeps its cache valid
    cache_keys: tuple[str, ...] | None = None
    # Hydra overrides the remote pipeline pins on the step (e.g. publishing what it hands on through ClearML)
    remote_overrides: tuple[str, ...] = ()
    # Hydra overrides a retry of a failed attempt gets (None: the step is not retried); FAILED_ATTEMPT in a
    # value becomes the failed attempt's task id
    retry_overrides: tuple[str, ...] | None = None
    # scalars (title, series) and output model names shown on the pipeline run
    monitor_metrics: tuple[tuple[str, str], ...] = ()
    monitor_models: tuple[str, ...] = ()
    docker_args: str | None = None  # default extra docker arguments (conf/pipeline overrides them)
    # (run summary key, result field): what the local runner's summary.json copies from the step's result
    summary_fields: tuple[tuple[str, str], ...] = ()

    @property
    def script(self) -> str:
        """The component script, relative to the repository root (the task's entry point)."""
        return f"{COMPONENTS_DIR}/{self.name}.py"

    @property
    def path(self) -> Path:
        return REPO_ROOT / self.script

    @property
    def cacheable(self) -> bool:
        return self.cache_keys is not None

    def folder(self, run_dir: Path | str) -> Path:
        """The step's output folder in a run: Hydra's run dir for its script (``hydra.run.dir`` in
        conf/config.yaml is ``${paths.run_dir}/${hydra.job.name}``, and the job name is the script's stem)."""
        return Path(run_dir) / self.name


# placeholder in ``Step.retry_overrides`` for the id of the attempt that failed
FAILED_ATTEMPT = "{failed_attempt}"

STEPS: tuple[Step, ...] = (
    Step("preprocess", task_type="data_processing", queue_kind="cpu",
         outputs=("dataset_id", "dataset_version"), local_outputs=("manifest",),
         cache_keys=("data", "seed", "clearml"), remote_overrides=("clearml.dataset.publish=true",)),
    Step("train", task_type="training", queue_kind="gpu", parents=("preprocess",),
         inputs=("dataset_id", "manifest"), outputs=("model_id", "val_mean_dice"), local_outputs=("checkpoint",),
         retry_overrides=("train.resume=auto", f"train.resume_from_task={FAILED_ATTEMPT}"),
         monitor_models=(BEST_MODEL_NAME,), docker_args="--ipc=host",
         summary_fields=(("best_checkpoint", "best_checkpoint"), ("best_val_mean_dice", "best_val_mean_dice"))),
    Step("evaluate", task_type="testing", queue_kind="gpu", parents=("train",),
         inputs=("dataset_id", "manifest", "model_id", "checkpoint"), outputs=("test_mean_dice", "metrics_url"),
         local_outputs=("metrics_json",),
         monitor_metrics=(("test", "mean_dice"), ("test", "mean_hd95")), summary_fields=(("test_metrics", "metrics"),)),
    Step("promote", task_type="qc", queue_kind="gpu", parents=("evaluate",),
         inputs=("dataset_id", "manifest", "model_id", "metrics_url", "metrics_json"),
         outputs=("promoted", "production_model_id"),
         monitor_metrics=(("promotion", "challenger_mean_dice"), ("promotion", "champion_mean_dice")),
         summary_fields=(("promotion", "decision"),)),
)


class DagError(ValueError):
    """The step list is inconsistent (unknown parent, an input no ancestor produces, a cycle)."""


def by_name(steps: tuple[Step, ...] | None = None) -> dict[str, Step]:
    return {s.name: s for s in (STEPS if steps is None else steps)}


def producer(step: Step, name: str, steps: tuple[Step, ...] | None = None) -> Step:
    """The nearest ancestor of ``step`` that hands on the output ``name``."""
    index = by_name(steps)
    queue, seen = list(step.parents), set()
    while queue:
        parent = index[queue.pop(0)]
        if parent.name in seen:
            continue
        seen.add(parent.name)
        if name in parent.outputs or name in parent.local_outputs:
            return parent
        queue.extend(parent.parents)
    raise DagError(f"step '{step.name}' takes input '{name}', which no earlier step hands on")


def local_handover(step: Step, steps: tuple[Step, ...] | None = None) -> dict[str, Step]:
    """The inputs of ``step`` a local run hands over, with their producer: files where the producer offers
    them (its ``local_outputs``), its ClearML outputs only where it offers no file the step takes. So a
    local run evaluates train's checkpoint file, not the registered model (which evaluate would publish)."""
    chosen: dict[str, Step] = {}
    for name in step.inputs:
        source = producer(step, name, steps)
        takes_files = any(n in source.local_outputs for n in step.inputs if producer(step, n, steps) is source)
        if name in source.local_outputs or not takes_files:
            chosen[name] = source
    return chosen


def check(steps: tuple[Step, ...] | None = None) -> None:
    """Refuse duplicate names, unknown or later parents and inputs that no ancestor produces."""
    steps = STEPS if steps is None else steps
    seen: set[str] = set()
    for s in steps:
        if s.name in seen:
            raise DagError(f"step '{s.name}' is declared twice")
        for parent in s.parents:
            if parent not in seen:
                raise DagError(f"step '{s.name}' has parent '{parent}', which is not declared before it")
        seen.add(s.name)
        for name in s.inputs:
            producer(s, name, steps)


def python_env(base: dict[str, str]) -> dict[str, str]:
    """``base`` with this checkout's root first on PYTHONPATH, for the scripts a runner starts.

    How the scripts find the ``components``/``pipelines`` packages, everywhere: an installed project
    (``pip install -e .``) or a runner's PYTHONPATH here, and under an agent the agent's own PYTHONPATH
    (it adds the task's working directory, the repository root). Setting it here makes a runner start the
    code of *its* checkout even when another checkout is the installed one.
    """
    return {**base, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), base.get("PYTHONPATH")]))}


def run_script(script: Path | str, *args: str) -> int:
    """Run a script of this checkout from the repository root (``python_env``): ClearML then records it,
    relative to the root, as the entry point of a task it creates (what an agent runs)."""
    return subprocess.call([sys.executable, str(script), *args], cwd=str(REPO_ROOT), env=python_env(dict(os.environ)))


check()
