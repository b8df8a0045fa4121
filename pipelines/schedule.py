"""Nightly retrains: the registered pipeline run by ClearML's ``TaskScheduler`` and ``TriggerScheduler``.

    python pipelines/schedule.py register|remove|show [hydra overrides...]

(``monai-pipeline schedule register|remove|show`` runs this file from the repository root.)

* ``register`` validates the runs' parameters (``schedule.run_overrides`` plus the command line's
  overrides, e.g. ``experiment=nightly``), finds the registered pipeline draft, stops and archives the
  service tasks of an earlier registration, then creates the services: "<pipeline> schedule" (a
  ``TaskScheduler`` job cloning the draft at ``schedule.time`` in ``schedule.timezone``, or every
  ``schedule.interval_minutes``) and, with ``schedule.trigger.enabled``, "<pipeline> new-data trigger" (a
  ``TriggerScheduler`` dataset trigger on the raw Dataset that passes the new version as
  ``raw_dataset_id``). Each is enqueued to ``schedule.queue`` with the SDK's own ``start_remotely``.
  Two service tasks rather than one: the two schedulers keep their state in an artifact of the same name.
* ``remove`` stops and archives them; ``show`` prints them with the next run (UTC and local) and the last
  runs with their status and whether they promoted a model.

Under an agent the same file is the services' entry point: it rebuilds the scheduler from its task (the
kind and poll interval in the ``Service`` parameters, the jobs in the task's configuration) and loops.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from omegaconf import DictConfig, OmegaConf

from components.common import clearml_compat
from components.common.clearml_io import project_tree_ids
from components.common.errors import ConfigError, PipelineError, exit_code_of
from pipelines import preflight
from pipelines.config import compose_config
from pipelines.dag import REPO_ROOT, python_env, run_script
from pipelines.parameters import as_ui_values, override_key
from pipelines.remote import Plan, plan_from_overrides

log = logging.getLogger("pipelines.schedule")

COMMANDS = ("register", "remove", "show")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
SERVICE_TAG = "monai-pipeline-service"
SCHEDULE, TRIGGER = "schedule", "trigger"
SERVICE_SECTION = "Service"
ACTIVE = ("created", "queued", "in_progress")
RAW_DATASET_PARAMETER = "raw_dataset_id"
NEW_DATA_TAG = "new-data"  # on the runs the trigger launches


# ---------------------------------------------------------------------------------------------- when


@dataclass(frozen=True)
class When:
    """``TaskScheduler.add_task`` timing arguments, in UTC."""

    minute: int
    hour: int | None = None
    day: int | None = None
    weekdays: tuple[str, ...] | None = None

    def as_kwargs(self) -> dict[str, Any]:
        return {"minute": self.minute, "hour": self.hour, "day": self.day,
                "weekdays": list(self.weekdays) if self.weekdays else None}


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ConfigError("schedule.timezone", f"unknown timezone '{name}' (use an IANA name such as Europe/Berlin)") from e


def parse_time_of_day(text: Any) -> time:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", str(text).strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ConfigError("schedule.time", f"'{text}' is not a time of day HH:MM (00:00 to 23:59)")
    return time(int(match[1]), int(match[2]))


def check_weekdays(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    days = tuple(str(d).strip().lower() for d in value)
    unknown = [d for d in days if d not in WEEKDAYS]
    if not days or unknown:
        raise ConfigError("schedule.weekdays", f"must be null or a non-empty list of {', '.join(WEEKDAYS)}; got {list(value)}")
    return days


def when_from_config(scfg: DictConfig, now: datetime | None = None) -> When:
    """The UTC timing of ``schedule`` settings.

    A time of day becomes ``day=1, hour=H, minute=M`` in UTC: in ``TaskScheduler`` the longest unit given
    is the period and the shorter ones the time within it, so ``hour=2, minute=30`` alone means "every 2 h
    30 min", and ``day=1`` makes it "daily at 02:30". The local time is converted with the UTC offset of its
    next occurrence after ``now``; weekdays move with the date when the conversion crosses midnight.
    """
    if scfg.interval_minutes is not None:
        minutes = int(scfg.interval_minutes)
        if minutes < 1 or minutes != float(scfg.interval_minutes):
            raise ConfigError("schedule.interval_minutes", f"must be a whole number of minutes >= 1, got {scfg.interval_minutes}")
        return When(minute=minutes)
    tz = zone(scfg.timezone)
    local = next_local_occurrence(parse_time_of_day(scfg.time), tz, now)
    utc = local.astimezone(timezone.utc)
    weekdays = check_weekdays(scfg.weekdays)
    if weekdays:
        shift = (utc.date() - local.date()).days
        weekdays = tuple(WEEKDAYS[(WEEKDAYS.index(d) + shift) % 7] for d in weekdays)
    return When(minute=utc.minute, hour=utc.hour, day=1, weekdays=weekdays)


def next_local_occurrence(at: time, tz: ZoneInfo, now: datetime | None = None) -> datetime:
    """The next ``at`` in ``tz`` after ``now`` (timezone-aware)."""
    now_local = (now or datetime.now(timezone.utc)).astimezone(tz)
    day: date = now_local.date()
    candidate = datetime.combine(day, at, tzinfo=tz)
    if candidate <= now_local:
        candidate = datetime.combine(day + timedelta(days=1), at, tzinfo=tz)
    return candidate


def schedule_job(when: When, **fields: Any) -> Any:
    """A ``ScheduleJob`` as ``TaskScheduler.add_task`` builds it (for computing next runs outside a scheduler)."""
    from clearml.automation.scheduler import ScheduleJob

    job = ScheduleJob(**{"base_task_id": "preview", "queue": "preview", **fields}, **when.as_kwargs())
    job.verify()
    return job


# ---------------------------------------------------------------------------------------------- what


@dataclass(frozen=True)
class Registration:
    """What ``register`` creates: the runs' parameters, the pipeline draft and the services' settings."""

    cfg: DictConfig  # the composed config of the scheduled runs (its ``schedule`` group: the settings)
    plan: Plan
    draft_id: str
    when: When
    since: datetime  # when the registration began: the trigger reacts to versions finalized after it

    @property
    def name(self) -> str:
        return str(self.cfg.pipeline.name)

    @property
    def project(self) -> str:
        return str(self.cfg.pipeline.project)

    def task_parameters(self) -> dict[str, str]:
        """The controller parameters (section ``Args``) every launched run gets."""
        return {f"Args/{k}": v for k, v in as_ui_values(self.plan.values).items()}


def split_overrides(overrides: Sequence[str]) -> tuple[list[str], list[str]]:
    """(``schedule.*`` settings, the runs' overrides)."""
    settings = [o for o in overrides if override_key(o).startswith("schedule.")]
    return settings, [o for o in overrides if o not in settings]


def run_overrides(cfg: DictConfig, own: Sequence[str]) -> list[str]:
    """``schedule.run_overrides`` then the command line's, which win (a key given on both is the command line's)."""
    given = {override_key(o) for o in own}
    return [*(o for o in cfg.schedule.run_overrides if override_key(str(o)) not in given), *own]


def plan_runs(overrides: Sequence[str], now: datetime | None = None) -> tuple[Plan, When]:
    """The scheduled runs' validated parameters and the schedule's UTC timing (no server needed)."""
    settings, own = split_overrides(overrides)
    base = compose_config([*settings, *own])
    plan = plan_from_overrides([*run_overrides(base, own), *settings])
    cfg = plan.cfg
    when = when_from_config(cfg.schedule, now)
    if cfg.schedule.trigger.enabled and str(cfg.data.source) != "clearml_dataset":
        raise ConfigError("schedule.trigger.enabled", "the new-data trigger watches the raw ClearML Dataset of "
                                                      "data=clearml_dataset; the scheduled runs use "
                                                      f"data={cfg.data.source}")
    return plan, when


def prepare(overrides: Sequence[str], now: datetime | None = None) -> Registration:
    """Validate everything ``register`` needs before anything on the server changes."""
    since = datetime.now(timezone.utc)
    plan, when = plan_runs(overrides, now)
    cfg = plan.cfg
    preflight.check_schedule(cfg)  # server, credentials, queues: before the server is asked or changed
    if cfg.schedule.trigger.enabled:
        from components.common.clearml_io import latest_raw_dataset_id

        latest_raw_dataset_id(OmegaConf.merge(cfg.data.dataset, {"id": None}))  # the trigger watches an existing Dataset
    draft_id = registered_pipeline(cfg)
    return Registration(cfg=cfg, plan=plan, draft_id=draft_id, when=when, since=since)


def registered_pipeline(cfg: DictConfig) -> str:
    """The pipeline draft to clone: ``schedule.pipeline_id`` (checked to be a registered draft controller),
    else the newest draft named ``pipeline.name`` in ``pipeline.project``."""
    from clearml import Task

    wanted = cfg.schedule.pipeline_id
    if wanted:
        try:
            task: Any = Task.get_task(task_id=str(wanted))
        except ValueError as e:
            raise ConfigError("schedule.pipeline_id", f"no task with id '{wanted}'") from e
        problem = _not_a_draft(task)
        if problem:
            raise ConfigError("schedule.pipeline_id", f"task {wanted} {problem}; schedule the registered pipeline "
                                                      "(monai-pipeline register prints its id)")
        return str(task.id)
    client = _client()
    found = client.tasks.get_all(project=_project_ids(str(cfg.pipeline.project)),
                                 name=f"^{re.escape(str(cfg.pipeline.name))}$", type=["controller"],
                                 system_tags=["pipeline", "-archived"], status=["created"],
                                 order_by=["-last_update"], only_fields=["id"], search_hidden=True)
    if not found:
        raise PipelineError(f"no registered pipeline '{cfg.pipeline.name}' in project '{cfg.pipeline.project}': "
                            "run `monai-pipeline register` first (or set schedule.pipeline_id)")
    return str(found[0].id)


def _not_a_draft(task: Any) -> str | None:
    """Why ``task`` cannot be the scheduled pipeline (None when it is a registered draft controller)."""
    if str(task.task_type) != "controller" or "pipeline" not in (task.get_system_tags() or []):
        return f"is not a pipeline controller (type {task.task_type})"
    if str(task.status) != "created":
        return f"is a pipeline run (status {task.status}), not the registered draft"
    return None


def _client() -> Any:
    from clearml.backend_api.session.client import APIClient

    return APIClient()


def _project_ids(project: str) -> list[str]:
    """``project`` and its subprojects; a placeholder id when it does not exist (an empty list filters nothing)."""
    return project_tree_ids(project) or ["<no such project>"]


# ---------------------------------------------------------------------------------------------- services


def service_name(pipeline: str, kind: str) -> str:
    return f"{pipeline} {'schedule' if kind == SCHEDULE else 'new-data trigger'}"


def active_services(cfg: DictConfig) -> list[Any]:
    """The service tasks of this pipeline's schedule and trigger that are queued or running."""
    client = _client()
    names = "|".join(re.escape(service_name(str(cfg.pipeline.name), k)) for k in (SCHEDULE, TRIGGER))
    return list(client.tasks.get_all(project=_project_ids(str(cfg.pipeline.project)), name=f"^({names})$",
                                     tags=[SERVICE_TAG], system_tags=["-archived"], status=list(ACTIVE),
                                     only_fields=["id", "name", "status", "created"], order_by=["-created"]))


def stop_services(cfg: DictConfig) -> list[str]:
    """Stop (dequeue or abort) and archive the active services; returns their ids."""
    from clearml import Task

    stopped = []
    for found in active_services(cfg):
        task: Any = Task.get_task(task_id=found.id)
        if task.status == "queued":
            Task.dequeue(task)
        task.set_archived(True)  # first: the SDK edits a task only while it is created or in progress
        task.mark_stopped(force=True, status_message="replaced or removed by monai-pipeline schedule")
        stopped.append(found.id)
        print(f"stopped {found.name} ({found.id})", flush=True)
    return stopped


def create_service(kind: str, registration: Registration) -> str:
    """Create and enqueue one service task in a child process (``start_remotely`` exits the process that
    calls it, and a process has one ClearML task); returns its id."""
    scfg = registration.cfg.schedule
    spec = {"kind": kind, "settings": {"time": str(scfg.time), "timezone": str(scfg.timezone),
                                       "weekdays": list(scfg.weekdays) if scfg.weekdays else None,
                                       "interval_minutes": scfg.interval_minutes},
            "registration": {"since": registration.since.isoformat(),
        "name": registration.name, "project": registration.project, "draft_id": registration.draft_id,
        "queue": str(registration.cfg.schedule.queue), "controller_queue": str(registration.cfg.pipeline.queues.controller),
        "when": registration.when.as_kwargs(), "parameters": registration.task_parameters(),
        "trigger": OmegaConf.to_container(registration.cfg.schedule.trigger, resolve=True),
        "dataset": ({"project": str(registration.cfg.data.dataset.project), "name": str(registration.cfg.data.dataset.name)}
                    if kind == TRIGGER else None)}}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    try:
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "create-service", f.name],
                              check=False, cwd=str(REPO_ROOT), env=python_env(dict(os.environ)), capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    match = re.search(r"service task: (\w+)", done.stdout)
    if done.returncode != 0 or not match:
        raise PipelineError(f"creating the {kind} service failed (exit code {done.returncode}); see the output above")
    return match[1]


def build_service(spec: dict[str, Any]) -> Any:
    """In the child process: the scheduler, its task (``Task.init``) and its one job, not yet started."""
    from clearml import Task
    from clearml.automation import TaskScheduler, TriggerScheduler

    reg, kind = spec["registration"], spec["kind"]
    scheduler: Any
    if kind == SCHEDULE:
        scheduler = TaskScheduler(force_create_task_name=service_name(reg["name"], kind),
                                  force_create_task_project=reg["project"])
        scheduler.add_task(schedule_task_id=reg["draft_id"], queue=reg["controller_queue"], name=f"{reg['name']} nightly",
                           single_instance=True, task_parameters=reg["parameters"], **reg["when"])
    else:
        trigger = reg["trigger"]
        scheduler = TriggerScheduler(pooling_frequency_minutes=float(trigger["poll_minutes"]),
                                     force_create_task_name=service_name(reg["name"], kind),
                                     force_create_task_project=reg["project"])
        add_new_data_trigger(scheduler, reg)
    task: Any = Task.current_task()
    task.add_tags([SERVICE_TAG])
    # what the service is, for the agent (kind, poll interval) and for `schedule show` (the local-time settings,
    # the pipeline it launches, the Dataset it watches)
    task.connect({"kind": kind, "poll_minutes": float(reg["trigger"]["poll_minutes"]), "pipeline_id": reg["draft_id"],
                  "settings": json.dumps(spec["settings"]), "watches": json.dumps(reg["dataset"])}, name=SERVICE_SECTION)
    return scheduler


def add_new_data_trigger(scheduler: Any, reg: dict[str, Any]) -> None:
    """The dataset trigger of a registration: a clone of the draft for each version of the raw Dataset
    finalized since the registration, carrying all ``schedule.trigger.required_tags``, with its id as
    ``raw_dataset_id``."""
    scheduler.add_dataset_trigger(
        schedule_task_id=reg["draft_id"], schedule_queue=reg["controller_queue"],
        name=f"{reg['name']} new data", add_tag=NEW_DATA_TAG, trigger_project=reg["dataset"]["project"],
        trigger_name=f"^{re.escape(reg['dataset']['name'])}$",
        trigger_on_tags=clearml_compat.all_of_tags(list(reg["trigger"]["required_tags"])),
        task_parameters={**reg["parameters"], f"Args/{RAW_DATASET_PARAMETER}": "${dataset.id}"})
    if not scheduler.get_triggers():
        raise PipelineError(f"no raw Dataset {reg['dataset']['project']}/{reg['dataset']['name']} to watch; "
                            "create its first version (clearml-data sync) before registering the trigger")
    # A trigger reacts to changes after its first poll, which comes only once an agent has started the
    # service: from the registration on instead, so a version finalized meanwhile (or while an earlier
    # registration was being replaced) still starts a run.
    for trigger in scheduler.get_triggers():
        trigger.last_update = datetime.fromisoformat(reg["since"])


def serve() -> int:
    """Under an agent: rebuild the service from its task and run its loop (does not return)."""
    from clearml import Task
    from clearml.automation import TaskScheduler, TriggerScheduler

    task: Any = Task.get_task(task_id=_remote_task_id())
    kind = str(task.get_parameter(f"{SERVICE_SECTION}/kind"))
    scheduler: Any
    if kind == SCHEDULE:
        scheduler = TaskScheduler()
    elif kind == TRIGGER:
        scheduler = TriggerScheduler(pooling_frequency_minutes=float(task.get_parameter(f"{SERVICE_SECTION}/poll_minutes")))
    else:
        print(f"ERROR: task {task.id} is not a schedule service (Service/kind={kind!r})", file=sys.stderr)
        return 2
    scheduler.start()
    return 0


def _remote_task_id() -> str:
    from clearml.config import get_remote_task_id

    return str(get_remote_task_id())


# ---------------------------------------------------------------------------------------------- commands


def register(overrides: Sequence[str]) -> int:
    registration = prepare(overrides)
    cfg = registration.cfg
    stop_services(cfg)
    kinds = [SCHEDULE, *([TRIGGER] if cfg.schedule.trigger.enabled else [])]
    ids = {kind: create_service(kind, registration) for kind in kinds}
    print(f"scheduled pipeline '{registration.name}' (draft {registration.draft_id}) with parameters: "
          + ", ".join(f"{k}={v}" for k, v in as_ui_values(registration.plan.values).items()), flush=True)
    for line in describe_timing(cfg.schedule, registration.when, next_run(registration.when)):
        print(line, flush=True)
    if TRIGGER in ids:
        print(f"new-data trigger: a run for each new version of {cfg.data.dataset.project}/{cfg.data.dataset.name}"
              f" (checked every {float(cfg.schedule.trigger.poll_minutes):g} min)", flush=True)
    for kind, task_id in ids.items():
        print(f"{kind} service: {task_id} on queue '{cfg.schedule.queue}'", flush=True)
    return 0


def remove(overrides: Sequence[str]) -> int:
    cfg = compose_config(list(overrides))
    stopped = stop_services(cfg)
    print(f"removed {len(stopped)} service task(s) of pipeline '{cfg.pipeline.name}'" if stopped
          else f"no schedule or trigger is active for pipeline '{cfg.pipeline.name}'", flush=True)
    return 0


def describe_timing(scfg: DictConfig, when: When, nxt: datetime) -> list[str]:
    """The schedule in words and its next run ``nxt`` in UTC and in ``schedule.timezone``."""
    tz = zone(scfg.timezone)
    if when.hour is None:
        rule = f"every {when.minute} min"
    else:
        days = ", ".join(scfg.weekdays) if scfg.weekdays else "every day"
        rule = f"{days} at {scfg.time} {scfg.timezone} (UTC {when.hour:02d}:{when.minute:02d}" + (
            f" on {', '.join(when.weekdays)})" if when.weekdays else ")")
    return [f"schedule: {rule}",
            f"next run: {nxt:%Y-%m-%d %H:%M} UTC = {nxt.astimezone(tz):%Y-%m-%d %H:%M %Z} ({scfg.timezone})"]


def next_run(when: When, now: datetime | None = None) -> datetime:
    """The first launch time ``TaskScheduler`` computes for ``when`` registered at ``now`` (aware, UTC)."""
    job = schedule_job(when, starting_time=now or datetime.now(timezone.utc))
    result: datetime = job.next()
    return result


def show(overrides: Sequence[str]) -> int:
    from clearml import Task

    cfg = compose_config(list(overrides))
    services = active_services(cfg)
    if not services:
        print(f"no schedule or trigger is active for pipeline '{cfg.pipeline.name}'", flush=True)
        return 0
    drafts = set()
    for found in services:
        task: Any = Task.get_task(task_id=found.id)
        kind = str(task.get_parameter(f"{SERVICE_SECTION}/kind"))
        drafts.add(str(task.get_parameter(f"{SERVICE_SECTION}/pipeline_id")))
        print(f"{found.name}: task {found.id}, {found.status}", flush=True)
        if kind == SCHEDULE:
            settings = OmegaConf.create(json.loads(str(task.get_parameter(f"{SERVICE_SECTION}/settings"))))
            state = _state(task)
            for job in json.loads(task.get_configuration_object(SCHEDULE) or "[]"):
                when = When(minute=int(job["minute"]), hour=job.get("hour"), day=job.get("day"),
                            weekdays=tuple(job["weekdays"]) if job.get("weekdays") else None)
                for line in describe_timing(settings, when, _planned(state, job["name"]) or next_run(when)):
                    print(f"  {line}", flush=True)
        else:
            watched = json.loads(str(task.get_parameter(f"{SERVICE_SECTION}/watches")))
            print(f"  a run for each new version of {watched['project']}/{watched['name']} (checked every "
                  f"{float(task.get_parameter(f'{SERVICE_SECTION}/poll_minutes')):g} min)", flush=True)
    client = _client()
    runs = sorted((run for draft in sorted(drafts)  # one draft: both services launch the registered pipeline
                   for run in client.tasks.get_all(parent=draft, type=["controller"], system_tags=["-archived"],
                                                   order_by=["-created"], page=0, page_size=int(cfg.schedule.history),
                                                   only_fields=["id", "created", "tags"], search_hidden=True)),
                  key=lambda run: str(run.created), reverse=True)[:int(cfg.schedule.history)]
    print(f"last {len(runs)} run(s) launched:" if runs else "no run launched yet", flush=True)
    for run in runs:
        origin = "new data" if NEW_DATA_TAG in (run.tags or []) else "scheduled"
        print(f"  {describe_run(run.id, str(run.created))} [{origin}]", flush=True)
    return 0


def _state(task: Any) -> dict[str, Any]:
    artifact = task.artifacts.get("state")
    if artifact is None:
        return {}
    text = artifact.get(force_download=True)
    return json.loads(text) if text else {}


def _planned(state: dict[str, Any], name: str) -> datetime | None:
    """The next run the running scheduler planned for its job ``name`` (its state artifact), if any."""
    for job in state.get("scheduled_jobs") or []:
        if job.get("name") == name and job.get("_next_run"):
            parsed = datetime.fromisoformat(str(job["_next_run"]))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None


def describe_run(controller_id: str, started: str) -> str:
    """One launched run: its status and, once its promote step reported, whether it promoted its model."""
    client = _client()
    found = client.tasks.get_all(id=[controller_id], only_fields=["id", "status"])
    if not found:
        return f"run {controller_id} (started {started[:19]}): deleted"
    promoted = "promotion: pending"
    for step in client.tasks.get_all(parent=controller_id, name="promote$", system_tags=["-archived"], search_hidden=True,
                                     only_fields=["id", "hyperparams"]):
        outputs = (step.hyperparams or {}).get("Outputs") or {}
        item = outputs.get("promoted")
        value = item.get("value") if isinstance(item, dict) else getattr(item, "value", None)
        promoted = {"True": "promoted its model", "False": "kept the production model"}.get(str(value), promoted)
    return f"run {controller_id} (started {started[:19]}): {found[0].status}, {promoted}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; under an agent the service loop, else a command."""
    from clearml.config import running_remotely

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s %(levelname)s] %(message)s")
    clearml_compat.report_from_threads()  # both before the services' Task.init (see their docstrings): a stopped
    clearml_compat.exit_on_sigterm()  # service must end when its agent sends SIGTERM
    args = list(sys.argv[1:] if argv is None else argv)
    if running_remotely():
        return serve()
    if args[:1] == ["create-service"]:
        from clearml import Task

        spec = json.loads(Path(args[1]).read_text())
        scheduler = build_service(spec)
        task: Any = Task.current_task()
        clearml_compat.wait_for_repo_detection(task)  # the agent checks out what the task records
        print(f"service task: {task.id}", flush=True)
        scheduler.start_remotely(queue=spec["registration"]["queue"])  # enqueues the task and exits this process
        return 0
    if not args or args[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    command = {"register": register, "remove": remove, "show": show}[args[0]]
    return exit_code_of(lambda: command(args[1:]))


def launch(command: str, overrides: Sequence[str]) -> int:
    """Run this file as a script from the repository root (the services' entry point is this file)."""
    return run_script(Path(__file__).resolve(), command, *overrides)


if __name__ == "__main__":
    sys.exit(main())
