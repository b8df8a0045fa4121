"""Transforms and config-built models behave as the config says."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from components.common import models
from components.common.errors import ConfigError
from components.common.transforms import deterministic_transforms, training_transforms
from pipelines.config import compose_config
from tests.conftest import make_case


def test_deterministic_transforms_load_normalize_and_resample(tmp_path: Path) -> None:
    image, label = make_case(tmp_path, "a", shape=(24, 20, 16))
    cfg = compose_config()
    out = deterministic_transforms(cfg.data)({"image": str(image), "label": str(label)})
    assert tuple(out["image"].shape) == (1, 24, 20, 16) and tuple(out["label"].shape) == (1, 24, 20, 16)
    assert abs(float(out["image"].mean())) < 1e-4 and abs(float(out["image"].std()) - 1) < 1e-2
    resampled = deterministic_transforms(compose_config(["data.spacing=[2.0,2.0,2.0]"]).data)(
        {"image": str(image), "label": str(label)})
    assert tuple(resampled["image"].shape) == (1, 12, 10, 8)
    assert set(torch.unique(resampled["label"]).tolist()) <= {0.0, 1.0}  # nearest keeps label values


def test_training_transforms_sample_patches(tmp_path: Path) -> None:
    image, label = make_case(tmp_path, "a", shape=(24, 24, 24))
    cfg = compose_config(["train.patch_size=[16,16,16]", "train.samples_per_volume=3"])
    base = deterministic_transforms(cfg.data)({"image": str(image), "label": str(label)})
    patches = training_transforms(cfg.train, "train.augment")(base)
    assert len(patches) == 3
    assert all(tuple(p["image"].shape) == (1, 16, 16, 16) for p in patches)


def test_bad_augmentation_names_its_key() -> None:
    cfg = compose_config()
    cfg.train.augment.append({"_target_": "monai.transforms.NoSuchTransformd"})
    with pytest.raises(ConfigError, match=r"train.augment\[5\]"):
        training_transforms(cfg.train, "train.augment")


@pytest.mark.parametrize("model", ["unet", "segresnet"])
def test_config_built_networks_segment_3d(model: str) -> None:
    cfg = compose_config([f"model={model}"])
    net = models.build_network(cfg.model)
    with torch.no_grad():
        out = net(torch.zeros(1, 1, 32, 32, 32))
    assert tuple(out.shape) == (1, cfg.data.num_classes, 32, 32, 32)
    loss = models.build_loss(cfg.train.loss, "train.loss")
    optimizer = models.build_optimizer(cfg.train.optimizer, net.parameters(), "train.optimizer")
    scheduler = models.build_scheduler(cfg.train.scheduler, optimizer, "train.scheduler")
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.param_groups[0]["lr"] == cfg.train.optimizer.lr
    assert scheduler.T_max == cfg.train.max_epochs
    assert float(loss(out, torch.zeros(1, 1, 32, 32, 32))) > 0


def test_any_torch_module_can_be_configured() -> None:
    cfg = compose_config(["model.net._target_=monai.networks.nets.BasicUNet", "~model.net.channels",
                          "~model.net.strides", "~model.net.num_res_units", "~model.net.norm", "~model.net.dropout",
                          "+model.net.features=[4,4,8,8,16,4]"])
    net = models.build_network(cfg.model)
    assert type(net).__name__ == "BasicUNet"


def test_bad_model_target_names_the_key() -> None:
    cfg = compose_config(["model.net._target_=monai.networks.nets.NoSuchNet"])
    with pytest.raises(ConfigError, match="model.net"):
        models.build_network(cfg.model)
