"""Nightly retrains on agents: ``monai-pipeline schedule register|show|remove`` with the scheduler and the
new-data trigger as service tasks on the services-mode agent, launching runs of the registered pipeline
that the step agents complete."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import psutil
import pytest

from pipelines.schedule import SERVICE_TAG
from tests.remote.harness import Env, controller_id, hydra, run_cli, steps_by_name, task_log, wait_until
from tests.support import clearml_data, latest_dataset_version, raw_case_folder, section

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.agent]


def test_schedule_and_new_data_trigger_launch_runs_agents_complete(env: Env, tmp_path: Path) -> None:
    raw_project, name = f"{env.project}/raw", "cases"
    folder = raw_case_folder(tmp_path / "Task01_Raw", 8, seed=3)
    clearml_data(env.endpoint, tmp_path, "sync", "--project", raw_project, "--name", name, "--folder", str(folder))
    first_version = latest_dataset_version(env.api, raw_project, name)
    runs = env.overrides("data=clearml_dataset", f"data.dataset.project={raw_project}", f"data.dataset.name={name}",
                         "data.num_classes=3", "data.spacing=null", "data/intensity=zscore")
    settings = [f"schedule.queue={env.queues.controller}", "schedule.trigger.enabled=true",
                "schedule.trigger.poll_minutes=0.05"]
    registered = run_cli(env.endpoint, env.checkout.work, env.logdir, "register", *runs)
    assert registered.returncode == 0, registered.output[-6000:]
    draft = controller_id(registered.output)

    def services(status: tuple[str, ...] = ("queued", "in_progress")) -> dict[str, list[dict[str, Any]]]:
        found = env.api.call("tasks.get_all", tags=[SERVICE_TAG], system_tags=["-archived"], status=list(status),
                             only_fields=["id", "name", "status"], search_hidden=True)["tasks"]
        return {kind: [t for t in found if t["name"].endswith(kind)] for kind in ("schedule", "new-data trigger")}

    def launched() -> list[dict[str, Any]]:
        return env.api.call("tasks.get_all", parent=draft, type=["controller"], search_hidden=True,
                            only_fields=["id", "status", "hyperparams"], order_by=["created"])["tasks"]

    def diagnostics() -> str:
        ids = [t["id"] for kind in services(("queued", "in_progress", "stopped")).values() for t in kind]
        configs = [json.dumps((env.api.task(i).get("configuration") or {}).get("datasets")) for i in ids]
        versions = env.api.call("tasks.get_all", system_tags=["dataset"], search_hidden=True,
                                only_fields=["id", "name", "project", "status", "last_update", "last_change"])["tasks"]
        refused = env.endpoint.standin.state.failed_calls[-30:] if env.endpoint.standin else []
        return ("\n".join(f"--- service {i} ---\n{task_log(env.api, i)[-3000:]}" for i in ids) + env.agents.logs()
                + f"\n--- trigger configs ---\n{configs}\n--- datasets ---\n{versions}\n--- refused ---\n{refused}")

    # 1. a schedule every minute: exactly one scheduler and one trigger task on the services queue
    first = run_cli(env.endpoint, env.checkout.work, env.logdir, "schedule", "register", *runs, *settings,
                    "schedule.interval_minutes=1")
    assert first.returncode == 0, first.output[-6000:]
    assert "schedule: every 1 min" in first.output and "next run:" in first.output
    first_ids = dict(re.findall(r"(schedule|trigger) service: (\w+)", first.output))
    active = wait_until("both services running", lambda: (s := services()) and all(len(v) == 1 for v in s.values()) and s,
                    90, diagnostics)
    assert {active["schedule"][0]["id"], active["new-data trigger"][0]["id"]} == set(first_ids.values())
    scheduler = env.api.task(first_ids["schedule"])
    assert scheduler["type"] == "service" and scheduler["execution"]["queue"] == env.api.queue_id(env.queues.controller)
    assert scheduler["script"]["entry_point"] == "pipelines/schedule.py"

    # ... which launches a clone of the registered pipeline with the scheduled runs' parameters
    scheduled = wait_until("a scheduled run", launched, 150, diagnostics)[0]
    args = section(scheduled, "Args")
    assert args["epochs"] == "3" and args["raw_dataset_id"] == ""  # the tiny config wins over experiment=nightly
    assert "experiment=nightly" in args["overrides"]
    done = env.wait(scheduled["id"])
    assert done["status"] == "completed", env.describe(scheduled["id"])
    preprocess = steps_by_name(env.api, scheduled["id"])["preprocess"]
    assert hydra(preprocess)["data.dataset.id"] == first_version  # the controller pinned the newest version
    assert "valid 8, rejected 0" in task_log(env.api, preprocess["id"])

    # a finished run is not the registered pipeline: scheduling it by id is refused before anything changes
    refused = run_cli(env.endpoint, env.checkout.work, env.logdir, "schedule", "register", *runs, *settings,
                      f"schedule.pipeline_id={scheduled['id']}")
    assert refused.returncode == 2, refused.output[-3000:]
    assert f"task {scheduled['id']} is a pipeline run (status completed), not the registered draft" in refused.output
    assert {t["id"] for v in services().values() for t in v} == set(first_ids.values())

    # 2. registering again replaces both services (a daily time now): still exactly one of each
    again = run_cli(env.endpoint, env.checkout.work, env.logdir, "schedule", "register", *runs, *settings,
                    "schedule.time=03:15", "schedule.timezone=Asia/Tokyo")
    assert again.returncode == 0, again.output[-6000:]
    assert "every day at 03:15 Asia/Tokyo (UTC 18:15)" in again.output
    second_ids = dict(re.findall(r"(schedule|trigger) service: (\w+)", again.output))
    for old in first_ids.values():
        replaced = env.api.task(old)
        assert replaced["status"] == "stopped" and "archived" in replaced["system_tags"], replaced["status"]
    wait_until("the new services running", lambda: {t["id"] for v in services().values() for t in v} == set(second_ids.values()),
           90, diagnostics)
    # a replaced service is stopped on the server at once, but its process ends only when its agent notices
    # (up to one agent poll); a scheduler still alive in that window can launch one more run, so the runs
    # counted from here on start once the replaced processes are gone
    wait_until("the replaced service processes to end", lambda: not _service_processes(set(first_ids.values())), 90,
               diagnostics)

    # 3. a new raw Dataset version triggers a run that trains on that version
    before = {t["id"] for t in launched()}
    raw_case_folder(folder, 10, seed=3)
    clearml_data(env.endpoint, tmp_path, "sync", "--project", raw_project, "--name", name, "--folder", str(folder),
                 "--parents", first_version)
    second_version = latest_dataset_version(env.api, raw_project, name)
    triggered = wait_until("a triggered run", lambda: [t for t in launched() if t["id"] not in before], 120, diagnostics)
    assert len(triggered) == 1, triggered
    assert section(triggered[0], "Args")["raw_dataset_id"] == second_version
    done = env.wait(triggered[0]["id"])
    assert done["status"] == "completed", env.describe(triggered[0]["id"])
    steps = steps_by_name(env.api, triggered[0]["id"])
    assert hydra(steps["preprocess"])["data.dataset.id"] == second_version
    assert "valid 10, rejected 0" in task_log(env.api, steps["preprocess"]["id"])
    promoted = section(steps["promote"], "Outputs")["promoted"]

    # 4. show: the schedule, its next run in both zones, the last runs with status and promotion
    shown = run_cli(env.endpoint, env.checkout.work, env.logdir, "schedule", "show", *runs)
    assert shown.returncode == 0, shown.output[-6000:]
    assert re.search(r"next run: \d{4}-\d\d-\d\d 18:15 UTC = \d{4}-\d\d-\d\d 03:15 JST", shown.output), shown.output
    verdict = {"True": "promoted its model", "False": "kept the production model"}[promoted]
    assert re.search(rf"run {triggered[0]['id']} \(started [^)]*\): completed, {verdict} \[new data\]", shown.output), shown.output
    assert re.search(rf"run {scheduled['id']} \(started [^)]*\): completed, .* \[scheduled\]", shown.output), shown.output
    assert f"a run for each new version of {raw_project}/{name}" in shown.output

    # 5. remove: no service left running (and no process of theirs)
    assert len(_service_processes(set(second_ids.values()))) == 2
    removed = run_cli(env.endpoint, env.checkout.work, env.logdir, "schedule", "remove", *runs)
    assert removed.returncode == 0 and "removed 2 service task(s)" in removed.output, removed.output
    assert services() == {"schedule": [], "new-data trigger": []}
    for task_id in second_ids.values():
        assert env.api.task(task_id)["status"] == "stopped"
    wait_until("the service processes to end", lambda: not _service_processes(set(second_ids.values())), 90, diagnostics)


def _service_processes(task_ids: set[str]) -> list[int]:
    """Processes running one of the service tasks (the agent starts them with CLEARML_TASK_ID set)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if "pipelines/schedule.py" in " ".join(proc.info["cmdline"] or []) and \
                    proc.environ().get("CLEARML_TASK_ID") in task_ids:
                found.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found
