"""MONAI transform chains built from config: one deterministic part (cacheable), one random part (training)."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from monai import transforms as mt
from omegaconf import DictConfig

from .errors import ConfigError

KEYS = ("image", "label")


def _intensity(cfg: DictConfig) -> mt.MapTransform:
    mode = str(cfg.get("mode", "zscore"))
    if mode == "zscore":
        return mt.NormalizeIntensityd(keys="image", nonzero=bool(cfg.get("nonzero", False)), channel_wise=True)
    if mode == "range":
        for key in ("a_min", "a_max"):
            if cfg.get(key) is None:
                raise ConfigError(f"data.intensity.{key}", "must be set when data.intensity.mode=range")
        return mt.ScaleIntensityRanged(keys="image", a_min=float(cfg.a_min), a_max=float(cfg.a_max),
                                       b_min=float(cfg.get("b_min", 0.0)), b_max=float(cfg.get("b_max", 1.0)),
                                       clip=bool(cfg.get("clip", True)))
    raise ConfigError("data.intensity.mode", f"unknown mode '{mode}' (expected zscore or range)")


def deterministic_transforms(data_cfg: DictConfig, keys: tuple[str, ...] = KEYS) -> mt.Compose:
    """Load, channel-first, reorient, resample (optional) and normalize: the part worth caching."""
    chain: list[Any] = [
        mt.LoadImaged(keys=list(keys), image_only=True),
        mt.EnsureChannelFirstd(keys=list(keys)),
        mt.Orientationd(keys=list(keys), axcodes=str(data_cfg.orientation), labels=None),
    ]
    if data_cfg.get("spacing"):
        modes = ["bilinear" if k == "image" else "nearest" for k in keys]
        chain.append(mt.Spacingd(keys=list(keys), pixdim=[float(s) for s in data_cfg.spacing], mode=modes))
    chain.append(_intensity(data_cfg.intensity))
    chain.append(mt.EnsureTyped(keys=list(keys), dtype=None))
    return mt.Compose(chain)


def training_transforms(train_cfg: DictConfig) -> mt.Compose:
    """Random patch sampling around foreground/background plus the augmentations listed in ``train.augment``."""
    patch = [int(s) for s in train_cfg.patch_size]
    pos, neg = (float(v) for v in train_cfg.pos_neg_ratio)
    chain: list[Any] = [
        mt.SpatialPadd(keys=list(KEYS), spatial_size=patch),
        mt.RandCropByPosNegLabeld(keys=list(KEYS), label_key="label", spatial_size=patch, pos=pos, neg=neg,
                                  num_samples=int(train_cfg.samples_per_volume), image_key="image",
                                  image_threshold=-1e9),
    ]
    for i, spec in enumerate(train_cfg.get("augment") or []):
        try:
            chain.append(instantiate(spec))
        except Exception as e:
            raise ConfigError(f"train.augment[{i}]", f"cannot build {spec.get('_target_')}: {e}") from e
    return mt.Compose(chain)


def prediction_postprocessing(num_classes: int) -> tuple[mt.Compose, mt.Compose]:
    """Discrete one-hot prediction and label, as MONAI's metrics expect."""
    return (mt.Compose([mt.AsDiscrete(argmax=True, to_onehot=num_classes)]),
            mt.Compose([mt.AsDiscrete(to_onehot=num_classes)]))
