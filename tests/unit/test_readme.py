"""Every command the README documents composes, every experiment overlay composes, and every key the README's
knob table names exists: a documented knob that Hydra refuses is a bug."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from pipelines.config import CONFIG_DIR, compose_config
from pipelines.remote import plan_from_overrides
from pipelines.schedule import plan_runs
from tests.support import REPO

README = (REPO / "README.md").read_text()


def _commands() -> list[list[str]]:
    """Command lines of the README's bash blocks (continuations joined, comments dropped), as words."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for raw in block.replace("\\\n", " ").splitlines():
            line = raw.split("  #")[0].strip()  # commands are written to run as they are: no placeholders
            words = shlex.split(line) if line else []
            for i, word in enumerate(words):  # the pipeline command may follow `&&` (the quick start)
                if word.endswith(("monai-pipeline", "components/preprocess.py", "components/train.py",
                                  "components/evaluate.py", "components/promote.py")):
                    commands.append(words[i:])
                    break
    return commands


COMMANDS = _commands()


def test_the_readme_documents_the_commands_it_should() -> None:
    names = {" ".join(c[:2]) if c[0].endswith("monai-pipeline") else c[0] for c in COMMANDS}
    assert {".venv/bin/monai-pipeline run", "monai-pipeline run", "monai-pipeline remote", "monai-pipeline schedule",
            "components/train.py", "components/evaluate.py", "components/promote.py"} <= names, names
    assert len(COMMANDS) >= 12, COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c)[:70] for c in COMMANDS])
def test_every_readme_command_composes(command: list[str]) -> None:
    if command[0].endswith("monai-pipeline"):
        verb, overrides = command[1], [w for w in command[2:] if w != "[overrides]"]
    else:
        verb, overrides = "step", command[1:]
    if verb == "schedule":
        action, overrides = overrides[0], overrides[1:]
        assert action in ("register", "remove", "show"), command
        if action == "register":
            plan_runs(overrides)  # the runs' parameters and the timing, as register checks them first
        else:
            compose_config(overrides)
    elif verb in ("remote", "controller", "register"):
        plan_from_overrides(overrides)  # parameters typed and validated, as the controller would
    else:
        assert verb in ("run", "step"), command
        compose_config(overrides)


EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_locally_and_as_pipeline_parameters(name: str) -> None:
    text = (CONFIG_DIR / "experiment" / f"{name}.yaml").read_text()
    sets_data = "override /data:" in text  # a recipe for a data set; the others (nightly) keep the data source
    overrides = [f"experiment={name}", *(["data.root=/data/example"] if "override /data: decathlon" in text else [])]
    cfg = compose_config(overrides)
    if sets_data:
        assert cfg.data.name == name.split("_")[0] or cfg.data.name == name
    plan = plan_from_overrides(overrides)
    assert f"experiment={name}" in plan.values["overrides"]


def _knob_table_keys() -> list[str]:
    table = README.split("Knobs users change most:")[1].split("\n\n")[1]
    keys = []
    for row in table.splitlines()[2:]:
        keys += [k for k in re.findall(r"`([a-z_/]+(?:\.[a-z_*]+)*)`", row.split("|")[1])]
    return keys


# one composition per option a knob may live in (data sources, intensity groups)
VARIANTS = [[], ["data=decathlon", "data.root=/x"], ["data=folder", "data.images_dir=/x", "data.labels_dir=/y"]]


@pytest.mark.parametrize("key", _knob_table_keys())
def test_every_documented_knob_exists(key: str) -> None:
    configs = [compose_config(v) for v in VARIANTS]
    if "/" in key:  # a config group
        assert (CONFIG_DIR / key).is_dir(), key
        return
    node = key.removesuffix(".*")
    assert any(OmegaConf.select(cfg, node, default="<absent>") != "<absent>" for cfg in configs), key


def test_group_comments_name_existing_knobs() -> None:
    """Overrides quoted in the config files' comments (``key=value`` after ``e.g.``/``Example:``) compose."""
    for path in sorted(Path(CONFIG_DIR).rglob("*.yaml")):
        for line in path.read_text().splitlines():
            match = re.search(r"#\s+(?:monai-pipeline run|Example:)\s+(.*)$", line.strip())
            if match:
                words = [w for w in shlex.split(match.group(1)) if "=" in w]
                compose_config([*words, *(["data.root=/x"] if "data=decathlon" in words else [])])
