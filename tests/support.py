"""Helpers shared by the tests: child processes, a no-server environment, offline sessions, API records."""

from __future__ import annotations

import json
import os
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from monai.networks.nets import UNet
from omegaconf import DictConfig

from components.common.sources import generate_synthetic
from pipelines.config import compose_config
from pipelines.dag import by_name
from tests.standin import procs
from tests.standin.client import ApiClient
from tests.standin.environment import ClearMLEndpoint

REPO = Path(__file__).resolve().parents[1]


def run_command(cmd: Sequence[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path = REPO,
                timeout: float = 600.0) -> procs.Finished:
    """Run ``cmd`` in its own process group (stdout and stderr together in ``log_path``); on timeout the
    whole group is killed, so no step process outlives the test."""
    return procs.run(list(cmd), dict(os.environ) if env is None else env, cwd, log_path, timeout)


def step_folder(cfg: DictConfig, step: str) -> Path:
    """The folder a step of ``cfg``'s run writes (its Hydra run dir)."""
    return by_name()[step].folder(str(cfg.paths.run_dir))


def cli(*args: str) -> list[str]:
    """The ``monai-pipeline`` command line, run with this interpreter."""
    return [sys.executable, "-m", "pipelines.cli", *args]


def no_server_env(home: Path) -> dict[str, str]:
    """This environment with no ClearML server configured: a run must go offline by itself."""
    return {**os.environ, "CLEARML_API_ACCESS_KEY": "", "CLEARML_CONFIG_FILE": str(home / "none.conf"),
            "HOME": str(home)}


@dataclass
class OfflineSession:
    """What one ClearML offline session archive holds: task.json, the metric events and the file names."""

    task: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, zip_path: str | Path) -> "OfflineSession":
        with zipfile.ZipFile(zip_path) as z:
            events: list[dict[str, Any]] = []
            for name in ("metrics.jsonl", "log.jsonl"):
                if name not in z.namelist():
                    continue
                for line in z.read(name).decode().splitlines():
                    item = json.loads(line)
                    events.extend(item if isinstance(item, list) else [item])
            return cls(json.loads(z.read("task.json")), events, z.namelist())

    def log(self) -> str:
        """The task's console output as recorded in the session."""
        return "\n".join(str(e.get("msg", "")) for e in self.events if e.get("type") == "log")

    def of_metric(self, metric: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("metric") == metric]


def section(task: dict[str, Any], name: str) -> dict[str, str]:
    """A task's hyperparameter section (``Hydra``, ``Outputs``, ``Args``) as key -> value."""
    return {k: v.get("value", "") for k, v in (task.get("hyperparams") or {}).get(name, {}).items()}


def model_metadata(model: dict[str, Any]) -> dict[str, str]:
    """A model's metadata as key -> value (the API keeps {key: {key, type, value}})."""
    return {m["key"]: m["value"] for m in (model.get("metadata") or {}).values()}


# A throwaway fourth step: one DAG entry and one component file, nothing else (issue: "a new step costs one
# file"). It reads evaluate's test Dice and promote's decision through the DAG's hand-over and hands on a verdict.
REPORT_STEP_ENTRY = '''    Step("report", task_type="qc", queue_kind="cpu", parents=("promote",),
         inputs=("test_mean_dice", "promoted"), outputs=("verdict",)),
'''
REPORT_COMPONENT = '''"""Report step (a test's throwaway step): a verdict on evaluate's test Dice."""

import sys

import hydra
from omegaconf import DictConfig

from components.common.entry import StepContext, StepResult, run_step, step


@step("report")
def run(cfg: DictConfig, ctx: StepContext) -> StepResult:
    dice = float(ctx.input("test_mean_dice"))
    verdict = f"{'good' if dice >= 0.5 else 'poor'} ({dice:.5f}, promoted={ctx.input('promoted')})"
    (ctx.dir / "report.txt").write_text(verdict)
    print(f"report verdict: {verdict}", flush=True)
    return StepResult(outputs={"verdict": verdict}, summary=[f"report: {verdict}"])


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    sys.exit(run_step(cfg, "report", run))


if __name__ == "__main__":
    main()
'''


def with_report_step(repo: Path = REPO) -> dict[str, str]:
    """The files of ``repo`` that change to add the report step: ``pipelines/dag.py`` with one more entry
    in ``STEPS`` and the new ``components/report.py``."""
    dag = (repo / "pipelines" / "dag.py").read_text()
    end = dag.index("\n)\n", dag.index("STEPS: tuple[Step, ...] = ("))
    return {"pipelines/dag.py": dag[:end + 1] + REPORT_STEP_ENTRY + dag[end + 1:],
            "components/report.py": REPORT_COMPONENT}


CLEARML_DATA = str(Path(sys.executable).with_name("clearml-data"))


def clearml_data(endpoint: ClearMLEndpoint, tmp_path: Path, *args: str) -> str:
    """Run the ``clearml-data`` CLI (as the README tells users to) against ``endpoint``."""
    log_path = tmp_path / f"clearml-data-{len(list(tmp_path.glob('clearml-data-*')))}.log"
    finished = procs.run([CLEARML_DATA, *args], endpoint.env(), tmp_path, log_path, 300)
    assert finished.returncode == 0, finished.output[-4000:]
    return finished.output


def raw_case_folder(folder: Path, num_cases: int, seed: int) -> Path:
    """A Decathlon-layout folder of synthetic cases (dataset.json, imagesTr/, labelsTr/)."""
    cfg = compose_config(["debug=tiny", f"data.num_cases={num_cases}"])
    generate_synthetic(cfg.data, folder, seed)
    return folder


def latest_dataset_version(api: ApiClient, project: str, name: str) -> str:
    """Id of the newest completed version of the Dataset ``project/name``."""
    found = api.call("tasks.get_all", name=f"^{name}$", system_tags=["dataset"], status=["completed", "published"],
                     order_by=["-last_update"], only_fields=["id", "project"], search_hidden=True)["tasks"]
    projects = {p["id"] for p in api.call("projects.get_all", name=f"^{project}/", search_hidden=True)["projects"]}
    return next(t["id"] for t in found if t["project"] in projects)


class OutOfMemoryUNet(UNet):
    """A UNet whose forward pass runs out of memory as a too-large batch or window does on a GPU; a test
    selects it with ``model.net._target_=tests.support.OutOfMemoryUNet`` (the fault comes from the test)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total)")
