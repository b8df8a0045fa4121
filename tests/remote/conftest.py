"""Remote-pipeline tests talk to a ClearML server (the stand-in unless told otherwise) and run real agents."""

from __future__ import annotations

import uuid
from typing import Iterator

import pytest

from tests.remote.harness import Env, Queues, start_agents
from tests.standin.client import ApiClient
from tests.standin.environment import ClearMLEndpoint
from tests.standin.fixtures import *  # noqa: F401,F403 (pytest fixtures)
from tests.standin.repo import GitCheckout


@pytest.fixture(scope="module")
def env(clearml_server: ClearMLEndpoint, clearml_api: ApiClient, project_checkout: GitCheckout,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A queue and an agent per role, unique to the test module, and a project for its runs."""
    tag = uuid.uuid4().hex[:8]
    queues = Queues(controller=f"services-{tag}", cpu=f"cpu-{tag}", gpu=f"gpu-{tag}")
    for queue in (queues.controller, queues.cpu, queues.gpu):
        clearml_api.call("queues.create", name=queue)
    workdir = tmp_path_factory.mktemp("remote")
    agents = start_agents(clearml_server, queues, workdir / "agents")
    try:
        yield Env(clearml_server, clearml_api, project_checkout, queues, agents, f"standin-tests/remote-{tag}",
                  workdir / "logs")
    finally:
        agents.stop()
