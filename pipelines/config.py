"""Compose the Hydra config outside a Hydra app (for runners), with clear errors for bad overrides."""

from __future__ import annotations

from typing import Sequence

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from components.common.errors import ConfigError
from .dag import REPO_ROOT

CONFIG_DIR = REPO_ROOT / "conf"


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The root config with ``overrides`` applied, exactly as the steps' Hydra entry points will see it.

    Unknown keys, mistyped values and missing required values are reported before anything runs.
    """
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(_key_of(e), f"{e}".strip()) from e
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(missing[0], f"is required for this configuration; set it on the command line "
                                      f"(missing: {', '.join(missing)})")
    return cfg


def _key_of(error: Exception) -> str:
    key = getattr(error, "full_key", None)
    if key:
        return str(key)
    text = str(error)
    if "'" in text:
        return text.split("'")[1]
    return "<overrides>"
