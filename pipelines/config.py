"""Compose the Hydra config outside a Hydra app (for runners), with clear errors for bad overrides."""

from __future__ import annotations

from typing import Sequence

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from components.common.errors import ConfigError
from .dag import REPO_ROOT

CONFIG_DIR = REPO_ROOT / "conf"
# overlay groups (conf/experiment, conf/debug) may change any key, so every step depends on them
OVERLAY_GROUPS = ("experiment", "debug")


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The root config with ``overrides`` applied, exactly as the steps' Hydra entry points will see it.

    Unknown keys, mistyped values and missing required values are reported before anything runs.
    """
    return compose_with_choices(overrides)[0]


def compose_with_choices(overrides: Sequence[str] = ()) -> tuple[DictConfig, dict[str, str]]:
    """``compose_config`` plus the chosen option of each config group (``{"data": "decathlon", ...}``)."""
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(_key_of(e), f"{e}".strip()) from e
    choices = {str(k): str(v) for k, v in cfg.hydra.runtime.choices.items() if v is not None}
    with open_dict(cfg):
        del cfg["hydra"]
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(missing[0], f"is required for this configuration; set it on the command line "
                                      f"(missing: {', '.join(missing)})")
    return cfg, choices


def _key_of(error: Exception) -> str:
    key = getattr(error, "full_key", None)
    if key:
        return str(key)
    text = str(error)
    if "'" in text:
        return text.split("'")[1]
    return "<overrides>"
