"""PipelineController end to end: controller on a services-mode agent, both steps on a second agent."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from tests.standin.agent import AgentDaemon
from tests.standin.client import ApiClient
from tests.standin.fixtures import SdkRunner
from tests.standin.repo import GitCheckout

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.agent]
PIPELINE = Path("tests/integration/scripts/pipeline_two_steps.py")


def test_pipeline_steps_run_on_agents(sdk: SdkRunner, clearml_api: ApiClient, project_checkout: GitCheckout,
                                      unique_name: str, agent_factory: Callable[..., AgentDaemon]) -> None:
    services, steps = f"services-{unique_name}", f"steps-{unique_name}"
    for queue in (services, steps):
        clearml_api.call("queues.create", name=queue)
    controller = sdk.run_json(project_checkout.work / PIPELINE, "--project", f"standin-tests/{unique_name}",
                              "--services-queue", services, "--steps-queue", steps,
                              cwd=project_checkout.work)["task_id"]
    assert clearml_api.task(controller)["status"] == "queued"
    services_agent = agent_factory([services], services_mode=True)
    steps_agent = agent_factory([steps])

    def logs() -> str:
        return f"services agent:\n{services_agent.log()[-5000:]}\nsteps agent:\n{steps_agent.log()[-5000:]}"

    try:
        done = clearml_api.wait_for_status(controller, timeout=240)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{logs()}") from None
    assert done["status"] == "completed", logs()
    step_tasks = clearml_api.call("tasks.get_all", parent=controller, search_hidden=True,
                                  only_fields=["name", "status", "last_worker"])["tasks"]
    by_name = {t["name"]: t for t in step_tasks}
    assert set(by_name) == {"add_one", "times_ten"}, step_tasks
    assert all(t["status"] == "completed" for t in step_tasks), step_tasks
    assert {t["last_worker"] for t in step_tasks} == {steps_agent.worker_id}
    # Simple return values land in the "return" section; times_ten gets add_one's by reference.
    add_one, times_ten = clearml_api.task(by_name["add_one"]["id"]), clearml_api.task(by_name["times_ten"]["id"])
    assert add_one["hyperparams"]["return"]["y"]["value"] == "2"
    assert times_ten["hyperparams"]["kwargs_artifacts"]["y"]["value"] == f"{add_one['id']}.y"
    assert times_ten["hyperparams"]["return"]["z"]["value"] == "20"
