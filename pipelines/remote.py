"""The remote pipeline: a ClearML ``PipelineController`` whose steps are the component scripts, run by agents.

    python pipelines/remote.py remote|controller|register [hydra overrides...]

(``monai-pipeline remote|controller|register`` runs this file from the repository root.) The same file is
the controller task's entry point: a services-mode agent runs it without arguments, and it then rebuilds
the DAG from the controller task's (possibly UI-edited) parameters.

* The steps and their wiring come from ``pipelines/dag.py``; queue names, docker, retry timing and
  per-step settings from ``conf/pipeline``.
* Each step task is created with ``Task.create`` from this repository (URL, commit, uncommitted diff and
  entry point ``components/<step>.py`` taken from the controller task), so an agent checks the code out.
* Step configuration goes into the step task's ``Hydra/<key>`` parameters, which ClearML's Hydra binding
  applies as overrides when the agent runs the component; the typed pipeline parameters
  (``pipelines/parameters.py``) map to those keys.
* Data flows through ClearML: each input a step declares in the DAG is its ``Hydra/inputs.<name>``
  parameter, set to ``${<producer>.parameters.Outputs/<name>}`` (e.g. preprocess publishes a Dataset
  version and sets ``Outputs/dataset_id``; train gets it as ``inputs.dataset_id``).
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from omegaconf import DictConfig, OmegaConf

from components.common import clearml_compat, secrets
from components.common.errors import ConfigError, PipelineError, exit_code_of
from components.common.tracking import task_name
from pipelines import preflight
from pipelines.config import OVERLAY_GROUPS, compose_config, compose_with_choices
from pipelines.dag import FAILED_ATTEMPT, STEPS, Step, producer, run_script
from pipelines.parameters import (PARAMETERS, as_ui_values, defaults_from, format_value,
                                  hydra_overrides, override_key, validate)

log = logging.getLogger("pipelines.remote")

COMMANDS = ("remote", "controller", "register")
STEP_SETTINGS = ("queue", "docker", "time_limit")
# the controller task's user property recording pipeline.poll_seconds
POLL_PROPERTY = "poll_seconds"


@dataclass(frozen=True)
class Source:
    """Where the step code comes from: what an agent checks out."""

    repository: str
    branch: str
    commit: str
    diff: str


@dataclass
class Plan:
    """A validated run: typed parameter values, the config they compose to, and the steps' overrides."""

    values: dict[str, Any]
    cfg: DictConfig
    overrides: list[str]


def plan_from_overrides(overrides: Sequence[str]) -> Plan:
    """Validate command-line overrides: parameters are lifted out of them and typed, the rest is kept.
    A literal secret is refused before the controller records the overrides (``secrets.check_overrides``)."""
    secrets.check_overrides(overrides)
    cfg, choices = compose_with_choices(overrides)
    raw = defaults_from(cfg, choices, list(overrides))
    return plan_from_parameters(raw)


def plan_from_parameters(raw: Mapping[str, Any]) -> Plan:
    """Validate parameter values (text from the UI or typed) and compose the config they stand for."""
    values = validate(raw)
    overrides = hydra_overrides(values)
    cfg = compose_config(overrides)
    check_step_settings(cfg)
    poll_seconds(cfg)
    return Plan(values=values, cfg=cfg, overrides=overrides)


def pin_raw_dataset(plan: Plan) -> Plan:
    """With ``data=clearml_dataset`` and no ``raw_dataset_id``: the id of the newest completed raw version,
    pinned for this run, so every step sees the same version, the run records which one it trained on and
    the cached preprocess is reused only for that version (a registered draft stays unpinned)."""
    if str(plan.cfg.data.source) != "clearml_dataset" or plan.values["raw_dataset_id"]:
        return plan
    from components.common.clearml_io import latest_raw_dataset_id

    raw_id = latest_raw_dataset_id(plan.cfg.data.dataset)
    log.info("raw data: newest version of %s/%s is %s", plan.cfg.data.dataset.project, plan.cfg.data.dataset.name, raw_id)
    return plan_from_parameters({**plan.values, "raw_dataset_id": raw_id})


def check_step_settings(cfg: DictConfig) -> None:
    """``pipeline.steps`` may only name declared steps and known settings; a step's queue kind must exist."""
    steps = {s.name: s for s in STEPS}
    for name, settings in (cfg.pipeline.steps or {}).items():
        if name not in steps:
            raise PipelineError(f"config key 'pipeline.steps.{name}': no such step (steps: {', '.join(steps)})")
        unknown = sorted(set(settings or {}) - set(STEP_SETTINGS))
        if unknown:
            raise PipelineError(f"config key 'pipeline.steps.{name}.{unknown[0]}': unknown setting "
                                f"(settings: {', '.join(STEP_SETTINGS)})")
    for s in STEPS:
        if s.queue_kind not in cfg.pipeline.queues and not _setting(cfg, s, "queue"):
            raise PipelineError(f"config key 'pipeline.queues.{s.queue_kind}': step '{s.name}' runs on queue kind "
                                f"'{s.queue_kind}', which has no queue name")


def _setting(cfg: DictConfig, step: Step, key: str) -> Any:
    return OmegaConf.select(cfg, f"pipeline.steps.{step.name}.{key}", default=None)


def step_queue_key(cfg: DictConfig, step: Step) -> str:
    """The config key naming a step's queue: ``pipeline.steps.<step>.queue`` when set, else the queue of the
    step's queue kind, ``pipeline.queues.<kind>``."""
    return f"pipeline.steps.{step.name}.queue" if _setting(cfg, step, "queue") else f"pipeline.queues.{step.queue_kind}"


def step_queue(cfg: DictConfig, step: Step) -> str:
    """The queue a step runs on (``step_queue_key``)."""
    return str(OmegaConf.select(cfg, step_queue_key(cfg, step)))


def step_docker(cfg: DictConfig, step: Step) -> tuple[str | None, str | None]:
    """Docker image and arguments of a step task: its own setting, else the step's default args and the
    image for all steps (``pipeline.docker.steps``)."""
    own = _setting(cfg, step, "docker") or {}
    common = cfg.pipeline.docker.steps
    image = own.get("image") or common.image
    args = own.get("args") or step.docker_args or common.args
    return (str(image) if image else None), (str(args) if args else None)


def step_time_limit(cfg: DictConfig, step: Step) -> float | None:
    """``pipeline.steps.<step>.time_limit`` (minutes) in seconds, as ``add_step(time_limit=...)`` counts them."""
    minutes = _setting(cfg, step, "time_limit")
    return float(minutes) * 60.0 if minutes else None


def step_parameters(step: Step, plan: Plan, run_id: str) -> dict[str, str]:
    """The ``Hydra/<key>`` parameters of a step: the run's overrides it depends on plus its DAG wiring."""
    chosen = [o for o in plan.overrides if not override_key(o).startswith("pipeline.")]
    if step.cache_keys is not None:  # only what it depends on, so an unrelated change keeps its cache valid
        depends = (*step.cache_keys, *OVERLAY_GROUPS)
        chosen = [o for o in chosen if override_key(o).split(".")[0].split("/")[0] in depends]
    chosen += list(step.remote_overrides)
    params = {f"Hydra/{key}": value for key, value in (_split(o) for o in chosen)}
    if step.cache_keys is None:
        params["Hydra/paths.run_id"] = run_id  # a per-run folder on the agent (train's checkpoints, for a retry)
    for name in step.inputs:
        source = producer(step, name)
        if name in source.outputs:  # local_outputs are paths on the producer's machine: not handed over
            params[f"Hydra/inputs.{name}"] = f"${{{source.name}.parameters.Outputs/{name}}}"
    return params


def _split(override: str) -> tuple[str, str]:
    key = override_key(override)
    if override.lstrip("+").startswith("~"):
        return "~" + key, ""
    return key, override.split("=", 1)[1] if "=" in override else ""


class GrowingDelayRetry:
    """Retry policy for a step: up to ``count`` retries, waiting ``delay * backoff**n`` seconds before retry n+1.

    ClearML relaunches a failed step at once and with the same task; here each retry is a fresh clone of
    the failed task (which stays, with its log) with the step's ``retry_overrides`` (train:
    ``train.resume=auto`` and ``train.resume_from_task=<failed task>``, so training continues from the last
    checkpoint in the run's train folder or, on a fresh agent checkout, the failed attempt's captured ones).
    """

    def __init__(self, count: int, delay: float, backoff: float, max_delay: float,
                 resume_parameters: Mapping[str, str] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.count, self.delay, self.backoff, self.max_delay = int(count), float(delay), float(backoff), float(max_delay)
        self.resume_parameters = dict(resume_parameters or {})
        self.sleep = sleep

    def delay_before(self, retries_done: int) -> float:
        """Seconds to wait before the retry that follows ``retries_done`` earlier retries."""
        return min(self.max_delay, self.delay * self.backoff ** retries_done)

    def __call__(self, pipeline: Any, node: Any, retries_done: int) -> bool:
        if retries_done >= self.count:
            return False
        wait = self.delay_before(retries_done)
        print(f"step '{node.name}' failed; retry {retries_done + 1}/{self.count} in {wait:.0f}s", flush=True)
        self.sleep(wait)
        if self.resume_parameters and node.job is not None:
            failed = str(node.job.task_id())
            parameters = {k: v.replace(FAILED_ATTEMPT, failed) for k, v in self.resume_parameters.items()}
            node.job = clearml_compat.fresh_attempt(node.job, pipeline.id, parameters)
        return True


def controller_source(task: Any) -> Source:
    """The repository, commit and uncommitted diff recorded on the controller task (what agents check out)."""
    script = task.data.script
    if not script or not script.repository:
        raise PipelineError(
            "the controller task has no git repository recorded; run from a clone of this repository whose "
            "'origin' remote the agents can reach (the steps are checked out from it)")
    return Source(repository=str(script.repository), branch=str(script.branch or ""),
                  commit=str(script.version_num or ""), diff=str(script.diff or ""))


def _step_task_factory(step: Step, source: Source, plan: Plan, project: str) -> Callable[[Any], Any]:
    """``base_task_factory`` for a step: a draft task of the component script at the controller's commit."""

    def create(node: Any) -> Any:
        from clearml import Task

        image, args = step_docker(plan.cfg, step)
        packages = plan.cfg.pipeline.packages
        task: Any = Task.create(
            project_name=project, task_name=task_name(plan.cfg.clearml, step.name), task_type=step.task_type,
            repo=source.repository, branch=source.branch or None, commit=source.commit or None,
            script=step.script, working_directory=".",
            packages=list(packages) if packages is not None else None,
            docker=image, docker_args=args,
            add_task_init_call=False,  # the components call Task.init inside their Hydra main
        )
        if source.diff:
            task.set_script(diff=source.diff)
        return task

    return create


def build(plan: Plan, command: str) -> Any:
    """Create the PipelineController: parameters, then one step per entry of ``dag.STEPS``."""
    from clearml import PipelineController

    pcfg = plan.cfg.pipeline
    poll = poll_seconds(plan.cfg)
    pipe = PipelineController(name=str(pcfg.name), project=str(pcfg.project), version=str(pcfg.version),
                              add_pipeline_tags=True, target_project=True, abort_on_failure=False,
                              docker=pcfg.docker.controller.image, docker_args=pcfg.docker.controller.args,
                              # steps upload models/artifacts here (under an agent Task.init's output_uri is ignored)
                              output_uri=_output_uri(plan.cfg),
                              pool_frequency=poll / 60.0)  # minutes; the SDK's default 0.2 waits 12 s per check
    pipe.task.set_user_properties({"name": POLL_PROPERTY, "value": f"{poll:g}",
                                   "description": "seconds between the controller's checks of the steps' states "
                                                  "(pipeline.poll_seconds)"})
    for p in PARAMETERS:
        pipe.add_parameter(p.name, format_value(p.kind, plan.values[p.name]), description=p.description,
                           param_type=p.kind)
    # the recorded commit/diff must be complete before the steps copy it
    clearml_compat.wait_for_repo_detection(pipe.task)
    source = controller_source(pipe.task)
    if command != "agent" and source.diff:
        log.warning("uncommitted changes: the steps get them as a git diff on top of %s", source.commit)
    project = str(pipe.task.get_project_name())
    retries = pcfg.retries
    for step in STEPS:
        retry = None
        if step.retry_overrides is not None and int(retries.count) > 0:
            retry = GrowingDelayRetry(retries.count, retries.delay, retries.backoff, retries.max_delay,
                                      resume_parameters={f"Hydra/{k}": v for k, v in map(_split, step.retry_overrides)})
        pipe.add_step(
            name=step.name, parents=list(step.parents),
            base_task_factory=_step_task_factory(step, source, plan, project),
            parameter_override=step_parameters(step, plan, pipe.id),
            execution_queue=step_queue(plan.cfg, step),
            cache_executed_step=step.cacheable and bool(pcfg.cache) and not plan.values["force_rerun"],
            retry_on_failure=retry if retry is not None else 0,
            monitor_metrics=[(m, m) for m in step.monitor_metrics] or None,
            monitor_models=list(step.monitor_models) or None,
            time_limit=step_time_limit(plan.cfg, step),
        )
    return pipe


def poll_seconds(cfg: DictConfig) -> float:
    """``pipeline.poll_seconds``: seconds between the controller's checks of the steps' states (> 0)."""
    value = OmegaConf.select(cfg, "pipeline.poll_seconds", default=None)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError("pipeline.poll_seconds", f"must be a number of seconds, got '{value}'") from None
    if not seconds > 0:
        raise ConfigError("pipeline.poll_seconds", f"must be more than 0 seconds, got {value}")
    return seconds


def _output_uri(cfg: DictConfig) -> str | bool:
    """``clearml.output_uri``, or True (the server's file server) when unset."""
    value = cfg.clearml.output_uri
    return True if value in (None, "") else str(value)


def run(command: str, overrides: Sequence[str]) -> int:
    """``remote``: enqueue the controller; ``controller``: run it here; ``register``: leave a draft for the UI."""
    if command not in COMMANDS:
        raise PipelineError(f"unknown command '{command}' (choose from: {', '.join(COMMANDS)})")
    plan = plan_from_overrides(overrides)
    preflight.check_launch(plan.cfg, command)  # server, credentials, queues: before anything is created
    if command == "controller":
        plan = pin_raw_dataset(plan)
    pipe = build(plan, command)
    queue = str(plan.cfg.pipeline.queues.controller)
    print(f"pipeline controller task: {pipe.id}", flush=True)
    print("parameters: " + ", ".join(f"{k}={v}" for k, v in as_ui_values(plan.values).items()), flush=True)
    if command == "register":
        pipe.create_draft()
        print(f"registered pipeline '{plan.cfg.pipeline.name}' (draft {pipe.id}); run it from the Pipelines page",
              flush=True)
        return 0
    if command == "controller":
        pipe.start_locally(run_pipeline_steps_locally=False)
        ok = pipe.is_successful()
        print(f"pipeline {pipe.id} {'completed' if ok else 'failed'}", flush=True)
        return 0 if ok else 1
    print(f"enqueueing the controller to queue '{queue}'", flush=True)
    pipe.start(queue=queue)  # exits this process once the controller task is enqueued
    return 0


def run_on_agent() -> int:
    """Under an agent: rebuild the pipeline from the controller task's parameters and run it."""
    from clearml import Task

    task: Any = Task.get_task(task_id=_remote_task_id())
    raw = {k.split("/", 1)[1]: v for k, v in task.get_parameters().items() if k.startswith("Args/")}
    try:
        plan = pin_raw_dataset(plan_from_parameters(raw))
        preflight.check_step_queues(plan.cfg, task.session)
    except PipelineError as e:
        _fail_before_start(task, str(e))
        return 2
    pipe = build(plan, "agent")
    pipe.start(queue=str(plan.cfg.pipeline.queues.controller))  # runs the DAG here, then stop() settles the status
    # Under an agent the controller task stays in_progress until this process exits (the agent then marks it
    # completed), so is_successful() would say False; stop() has already marked it failed if a step failed.
    return 1 if Task.get_task(task_id=pipe.id).status == Task.TaskStatusEnum.failed else 0


def _remote_task_id() -> str:
    from clearml.config import get_remote_task_id

    return str(get_remote_task_id())


def _fail_before_start(task: Any, message: str) -> None:
    """Report why a controller with invalid parameters stops before any step exists; the caller then exits
    non-zero and the agent marks the task failed once it has the whole console output."""
    print(f"ERROR in pipeline: {message}", file=sys.stderr, flush=True)
    task.flush(wait_for_uploads=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; argv is read by hand (clearml_compat.CONTROLLER_ARGV_BY_HAND)."""
    from clearml.config import running_remotely

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s %(levelname)s] %(message)s")
    clearml_compat.report_from_threads()  # both before the controller's Task.init (see their docstrings)
    clearml_compat.exit_on_sigterm()
    args = list(sys.argv[1:] if argv is None else argv)
    if running_remotely():
        return run_on_agent()
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    return exit_code_of(lambda: run(args[0], args[1:]))


def launch(command: str, overrides: Sequence[str]) -> int:
    """Run this file as a script from the repository root (so ClearML records it as the controller's entry point)."""
    return run_script(Path(__file__).resolve(), command, *overrides)


if __name__ == "__main__":
    sys.exit(main())
