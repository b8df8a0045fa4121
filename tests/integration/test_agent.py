"""The real clearml-agent against the server: clone + edit + enqueue, and execute --id."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from tests.standin.agent import AgentDaemon, run_agent_execute
from tests.standin.client import ApiClient
from tests.standin.environment import ClearMLEndpoint
from tests.standin.fixtures import SdkRunner
from tests.standin.repo import GitCheckout

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.agent]
ECHO = Path("tests/integration/scripts/params_echo.py")
SCRIPTS = Path(__file__).parent / "scripts"


def _echoed_lr(task: dict) -> float:
    values = [v["value"] for m in task["last_metrics"].values() for v in m.values() if v["metric"] == "echo"]
    assert len(values) == 1, task["last_metrics"]
    return values[0]


@pytest.fixture
def template(sdk: SdkRunner, project_checkout: GitCheckout, unique_name: str) -> str:
    """A params_echo task run once by hand from the git checkout (so it records the file:// origin)."""
    created = sdk.run_json(project_checkout.work / ECHO, "--project", f"standin-tests/{unique_name}",
                           "--name", "params echo", cwd=project_checkout.work)
    return created["task_id"]


def test_template_records_the_local_git_origin(clearml_api: ApiClient, template: str,
                                               project_checkout: GitCheckout) -> None:
    script = clearml_api.task(template)["script"]
    assert script["repository"] == project_checkout.remote
    assert script["version_num"] == project_checkout.commit
    assert script["entry_point"].endswith("params_echo.py")


def test_cloned_task_runs_on_agent_with_edited_parameters(
    sdk: SdkRunner, clearml_api: ApiClient, template: str, unique_name: str,
    agent_factory: Callable[..., AgentDaemon],
) -> None:
    queue = clearml_api.call("queues.create", name=f"q-{unique_name}")["id"]
    clone = sdk.run_json(SCRIPTS / "clone_enqueue.py", template, f"q-{unique_name}", "0.5", "edited")["task_id"]
    assert clearml_api.task(clone)["status"] == "queued"
    agent = agent_factory([f"q-{unique_name}"])
    try:
        task = clearml_api.wait_for_status(clone, timeout=180)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\nagent log:\n{agent.log()[-6000:]}") from None
    assert task["status"] == "completed", agent.log()[-6000:]
    assert task["hyperparams"]["General"]["lr"]["value"] == "0.5"
    assert _echoed_lr(task) == pytest.approx(0.5)
    assert task["last_worker"] == agent.worker_id
    log = clearml_api.call("events.get_task_log", task=clone, batch_size=500)["events"]
    assert any("echo note=edited" in e.get("msg", "") for e in log)
    assert _echoed_lr(clearml_api.task(template)) == pytest.approx(0.1)  # the template is untouched
    assert not clearml_api.call("queues.get_by_id", queue=queue)["queue"]["entries"]


def test_agent_execute_runs_one_task(sdk: SdkRunner, clearml_api: ApiClient, clearml_server: ClearMLEndpoint,
                                     template: str, tmp_path: Path) -> None:
    clone = sdk.run_json(SCRIPTS / "clone_enqueue.py", template, "-", "0.25", "executed", "--no-enqueue")["task_id"]
    finished = run_agent_execute(clearml_server, clone, timeout=180, workdir=tmp_path / "execute")
    assert finished.returncode == 0, finished.output[-6000:]
    task = clearml_api.task(clone)
    assert task["status"] == "completed", finished.output[-6000:]
    assert _echoed_lr(task) == pytest.approx(0.25)
