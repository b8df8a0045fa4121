"""Configuration: composition, overrides, clear errors for bad keys and values, device choice."""

from __future__ import annotations

import pytest
import torch

from components.common.errors import ConfigError
from components.common.runtime import select_device
from pipelines.config import compose_config


def test_defaults_compose_and_overrides_apply() -> None:
    cfg = compose_config(["train.max_epochs=3", "model=segresnet", "data.num_cases=12"])
    assert cfg.train.max_epochs == 3 and cfg.data.num_cases == 12
    assert cfg.model.name == "segresnet" and cfg.model.net._target_.endswith("SegResNet")
    assert cfg.model.net.out_channels == cfg.data.num_classes == 3
    assert cfg.inference.inferer.roi_size == cfg.train.patch_size


def test_unknown_key_is_rejected_with_its_name() -> None:
    with pytest.raises(ConfigError) as err:
        compose_config(["train.max_epoch=3"])
    assert "max_epoch" in str(err.value)


def test_unknown_config_group_option_is_rejected() -> None:
    with pytest.raises(ConfigError) as err:
        compose_config(["model=resnet9000"])
    assert "resnet9000" in str(err.value)


def test_required_value_missing_is_named() -> None:
    with pytest.raises(ConfigError) as err:
        compose_config(["data=decathlon"])
    assert "data.root" in str(err.value)


def test_cuda_requested_without_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError) as err:
        select_device("cuda")
    assert "device" in str(err.value) and "no CUDA device" in str(err.value)
    assert select_device("auto").type == "cpu"
    with pytest.raises(ConfigError, match="unknown device"):
        select_device("tpu")
