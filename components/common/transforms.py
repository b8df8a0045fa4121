"""MONAI transform chains built from config: one deterministic part (cacheable), one random part (training)."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from monai import transforms as mt
from omegaconf import DictConfig

from .errors import ConfigError

KEYS = ("image", "label")


def build_transform(spec: Any, key: str) -> Any:
    """A transform from a ``_target_`` entry; an error names the config key ``key``."""
    if spec is None or "_target_" not in spec:
        raise ConfigError(key, "must be a mapping with a '_target_' entry")
    try:
        return instantiate(spec)
    except Exception as e:  # Hydra wraps the constructor's own error
        cause = e.__cause__ or e
        raise ConfigError(key, f"cannot build {spec.get('_target_')}: {cause}") from e


def deterministic_transforms(data_cfg: DictConfig, keys: tuple[str, ...] = KEYS) -> mt.Compose:
    """Load, channel-first, reorient, resample (optional) and normalize (``data.intensity``): the part worth
    caching."""
    chain: list[Any] = [
        mt.LoadImaged(keys=list(keys), image_only=True),
        mt.EnsureChannelFirstd(keys=list(keys)),
        mt.Orientationd(keys=list(keys), axcodes=str(data_cfg.orientation), labels=None),
    ]
    if data_cfg.spacing:
        modes = ["bilinear" if k == "image" else "nearest" for k in keys]
        chain.append(mt.Spacingd(keys=list(keys), pixdim=[float(s) for s in data_cfg.spacing], mode=modes))
    chain.append(build_transform(data_cfg.intensity, "data.intensity"))
    chain.append(mt.EnsureTyped(keys=list(keys), dtype=None))
    return mt.Compose(chain)


def training_transforms(train_cfg: DictConfig, augment_key: str) -> mt.Compose:
    """Random patch sampling around foreground/background plus the augmentations listed at ``augment_key``."""
    patch = [int(s) for s in train_cfg.patch_size]
    pos, neg = (float(v) for v in train_cfg.pos_neg_ratio)
    chain: list[Any] = [
        mt.SpatialPadd(keys=list(KEYS), spatial_size=patch),
        mt.RandCropByPosNegLabeld(keys=list(KEYS), label_key="label", spatial_size=patch, pos=pos, neg=neg,
                                  num_samples=int(train_cfg.samples_per_volume), image_key="image",
                                  image_threshold=-1e9),
    ]
    for i, spec in enumerate(train_cfg.augment or []):
        chain.append(build_transform(spec, f"{augment_key}[{i}]"))
    return mt.Compose(chain)
