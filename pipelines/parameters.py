"""Typed pipeline parameters: what a user edits on a pipeline run in the ClearML UI.

Each parameter is a ``PipelineController`` parameter (section ``Args`` of the controller task) and maps
to one Hydra override of the steps, e.g. ``epochs=5`` -> ``train.max_epochs=5`` -> step parameter
``Hydra/train.max_epochs=5``. Values arrive as text from the UI, so they are parsed and checked here
(type, range, known config-group option) before any step is created; a bad value raises
``ParameterError`` naming the parameter.

Command-line Hydra overrides whose key a parameter owns (``train.max_epochs=5``, ``model=segresnet``)
become that parameter's value; every other override goes into the ``overrides`` parameter, a list of
Hydra overrides that every step gets (a cacheable step only those under its ``cache_keys``, pipelines/dag.py).
"""

from __future__ import annotations

import ast
import json
import math
import shlex
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from omegaconf import DictConfig, OmegaConf

from components.common.errors import PipelineError
from .dag import REPO_ROOT

CONF_DIR = REPO_ROOT / "conf"
# keys the pipeline sets itself on the steps; users cannot override them
RESERVED_KEYS = ("paths.run_id", "paths.output_root", "clearml.offline")
RESERVED_PREFIXES = ("inputs.",)


class ParameterError(PipelineError):
    """A pipeline parameter has a wrong type, an unknown value or is out of range."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"pipeline parameter '{name}': {problem}")
        self.name = name
        self.problem = problem


def group_options(group: str) -> list[str]:
    """The options of a Hydra config group (the YAML files in ``conf/<group>``)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@dataclass(frozen=True)
class Parameter:
    """One pipeline parameter: its type, the Hydra key it sets and how it is checked."""

    name: str
    kind: str  # int | float | bool | str | list
    key: str | None  # Hydra key (or config group) it maps to; None: used by the controller itself
    description: str
    check: Callable[[Any], str | None] = lambda _: None  # returns a problem, or None when fine

    @property
    def is_group(self) -> bool:
        return self.key is not None and "." not in self.key and (CONF_DIR / self.key).is_dir()

    def parse(self, raw: Any) -> Any:
        """A typed value from ``raw`` (text from the UI or a Python value); raises ParameterError."""
        try:
            value = _PARSERS[self.kind](raw)
        except (ValueError, TypeError, SyntaxError) as e:
            raise ParameterError(self.name, f"expected {_KIND_NAMES[self.kind]}, got {raw!r} ({e})") from None
        problem = self.check(value)
        if problem:
            raise ParameterError(self.name, f"{problem} (got {raw!r})")
        return value

    def text(self, value: Any) -> str:
        """The value as shown in the UI and as written in a Hydra override."""
        return format_value(self.kind, value)


def _parse_int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise TypeError("a boolean is not an integer")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        if raw.is_integer():
            return int(raw)
        raise ValueError("not a whole number")
    return int(str(raw).strip())


def _parse_float(raw: Any) -> float:
    if isinstance(raw, bool):
        raise TypeError("a boolean is not a number")
    value = float(str(raw).strip()) if isinstance(raw, str) else float(raw)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError("use true or false")


def _parse_str(raw: Any) -> str:
    if raw is None or isinstance(raw, (list, dict)):
        raise TypeError("not a string")
    return str(raw).strip()


def _parse_list(raw: Any) -> list[Any]:
    """A list from a Python/JSON/Hydra list literal (``[1, 2]``, ``['a=1']``) or whitespace-separated text."""
    if isinstance(raw, (list, tuple)) or OmegaConf.is_list(raw):
        return list(raw)
    text = str(raw).strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = ast.literal_eval(text)
        if not isinstance(value, list):
            raise ValueError("not a list")
        return value
    return shlex.split(text)


_PARSERS: dict[str, Callable[[Any], Any]] = {"int": _parse_int, "float": _parse_float, "bool": _parse_bool,
                                             "str": _parse_str, "list": _parse_list}
_KIND_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
               "list": "a list, e.g. [a, b]"}


def format_value(kind: str, value: Any) -> str:
    """Text of a typed value: Hydra/JSON syntax for lists, lower-case booleans."""
    if kind == "bool":
        return "true" if value else "false"
    if kind == "list":
        return json.dumps(list(value), separators=(",", ":"))
    return str(value)


def _between(lo: float, hi: float, lo_open: bool = False) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value < lo or (lo_open and value == lo) or value > hi:
            return f"must be in {'(' if lo_open else '['}{lo}, {hi}]"
        return None
    return check


def _one_of_group(group: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        options = group_options(group)
        return None if value in options else f"unknown {group} '{value}' (choose from: {', '.join(options)})"
    return check


def _check_patch(value: Any) -> str | None:
    if len(value) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return "must be three integers, e.g. [96,96,96] (or one integer for a cube)"
    if not all(8 <= v <= 1024 for v in value):
        return "each size must be in [8, 1024]"
    return None


def _check_overrides(value: Any) -> str | None:
    for item in value:
        if not isinstance(item, str) or not ("=" in item or item.startswith("~")):
            return f"'{item}' is not a Hydra override (key=value)"
        key = override_key(item)
        owner = PARAMETERS_BY_KEY.get(key)
        if owner is not None:
            return f"'{item}' sets {key}, which the parameter '{owner.name}' controls; set that parameter instead"
        if key in RESERVED_KEYS or key.startswith(RESERVED_PREFIXES):
            return f"'{item}' sets {key}, which the pipeline sets itself"
    return None


class _PatchParameter(Parameter):
    """Patch size: one integer (a cube) or three."""

    def parse(self, raw: Any) -> Any:
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw = [raw, raw, raw]
        elif isinstance(raw, str) and raw.strip().isdigit():
            raw = [int(raw)] * 3
        return super().parse(raw)


PARAMETERS: tuple[Parameter, ...] = (
    Parameter("data", "str", "data", "data source (config group conf/data)", _one_of_group("data")),
    Parameter("data_size", "int", "data.num_cases",
              "number of cases to generate (data sources with data.num_cases only; 0 otherwise)", _between(0, 100000)),
    Parameter("model", "str", "model", "network (config group conf/model)", _one_of_group("model")),
    Parameter("epochs", "int", "train.max_epochs", "training epochs", _between(1, 100000)),
    Parameter("learning_rate", "float", "train.optimizer.lr", "optimizer learning rate", _between(0.0, 1.0, True)),
    Parameter("batch_size", "int", "train.batch_size", "training batch size (volumes per iteration)",
              _between(1, 4096)),
    _PatchParameter("patch_size", "list", "train.patch_size", "training patch size [x, y, z] in voxels",
                    _check_patch),
    Parameter("seed", "int", "seed", "random seed of data generation, splits and training", _between(0, 2**32 - 1)),
    Parameter("raw_dataset_id", "str", "data.dataset.id",
              "raw-data ClearML Dataset version to prepare (data=clearml_dataset only; empty: the newest version); "
              "the new-data trigger sets it"),
    Parameter("dice_threshold", "float", "promote.min_dice",
              "with no production model yet, promote the model when its test mean Dice is at least this",
              _between(0.0, 1.0)),
    Parameter("force_rerun", "bool", "pipeline.force_rerun",
              "re-run cacheable steps (preprocess) even when a cached run matches"),
    Parameter("overrides", "list", None, "further Hydra overrides for every step, e.g. [\"model.net.dropout=0.1\"]",
              _check_overrides),
)
PARAMETERS_BY_NAME: dict[str, Parameter] = {p.name: p for p in PARAMETERS}
PARAMETERS_BY_KEY: dict[str, Parameter] = {p.key: p for p in PARAMETERS if p.key}


def override_key(override: str) -> str:
    """The config key of a Hydra override (``++a.b=1`` -> ``a.b``, ``~a`` -> ``a``, ``model@x=y`` -> ``model@x``)."""
    return override.split("=", 1)[0].lstrip("+~").strip()


def defaults_from(cfg: DictConfig, choices: Mapping[str, str], overrides: Sequence[str]) -> dict[str, Any]:
    """Parameter values for a run composed from ``overrides``: the config ``cfg`` and its config-group
    ``choices`` (which file of each group was chosen, e.g. ``data: decathlon``)."""
    values: dict[str, Any] = {}
    for p in PARAMETERS:
        if p.key is None:
            continue
        if p.is_group:
            values[p.name] = str(choices[p.key])
        else:
            node = OmegaConf.select(cfg, p.key, default=None)
            if p.name == "data_size" and not _group_has(choices["data"], "num_cases"):
                node = 0  # an overlay may add num_cases to any source; only generated data has a size
            if p.name == "raw_dataset_id":
                node = node or ""  # unset (null, or a source without it): empty
            values[p.name] = OmegaConf.to_object(node) if OmegaConf.is_config(node) else node
    values["overrides"] = [o for o in overrides if override_key(o) not in PARAMETERS_BY_KEY]
    return values


def validate(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Typed values for all parameters from ``raw`` (all must be present; unknown names are refused)."""
    unknown = sorted(set(raw) - set(PARAMETERS_BY_NAME))
    if unknown:
        raise ParameterError(unknown[0], f"unknown parameter (parameters: {', '.join(PARAMETERS_BY_NAME)})")
    missing = [p.name for p in PARAMETERS if p.name not in raw]
    if missing:
        raise ParameterError(missing[0], "missing")
    values = {p.name: p.parse(raw[p.name]) for p in PARAMETERS}
    if values["data_size"] > 0 and values["data"] != "synthetic" and not _group_has(values["data"], "num_cases"):
        raise ParameterError("data_size", f"data '{values['data']}' has no num_cases; set data_size to 0")
    if values["data_size"] == 0 and _group_has(values["data"], "num_cases"):
        raise ParameterError("data_size", f"must be at least 1 with data '{values['data']}'")
    if values["raw_dataset_id"] and not _group_has(values["data"], "dataset"):
        raise ParameterError("raw_dataset_id", f"data '{values['data']}' reads no ClearML Dataset; leave it empty "
                                               "or choose data=clearml_dataset")
    return values


def _group_has(data: str, key: str) -> bool:
    return key in OmegaConf.load(CONF_DIR / "data" / f"{data}.yaml")


def hydra_overrides(values: Mapping[str, Any]) -> list[str]:
    """The Hydra overrides the typed ``values`` stand for: group choices, then ``overrides``, then the rest."""
    groups = [f"{p.key}={p.text(values[p.name])}" for p in PARAMETERS if p.is_group]
    plain = [f"{p.key}={p.text(values[p.name])}" for p in PARAMETERS
             if p.key and not p.is_group and not _unset(p.name, values[p.name])]
    return [*groups, *values["overrides"], *plain]


def _unset(name: str, value: Any) -> bool:
    """A parameter that only applies to some data sources and is not set: no override is written for it."""
    return (name == "data_size" and value == 0) or (name == "raw_dataset_id" and not value)


def as_ui_values(values: Mapping[str, Any]) -> dict[str, str]:
    """Parameter values as the text the controller task stores (and the UI shows)."""
    return {name: PARAMETERS_BY_NAME[name].text(v) for name, v in values.items()}
