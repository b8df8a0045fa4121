"""MONAI datasets and loaders for the train/val/test splits of a manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from monai.data import CacheDataset, DataLoader, Dataset, PersistentDataset
from monai.transforms import Compose
from omegaconf import DictConfig

from .errors import ConfigError


def make_dataset(records: Sequence[dict[str, Any]], transform: Compose, cache_cfg: DictConfig,
                 default_cache_dir: Path, key: str) -> Dataset:
    """Dataset that caches the deterministic head of ``transform`` (up to the first random transform).

    ``cache.type``: ``cache`` keeps it in memory (CacheDataset), ``persistent`` on disk (PersistentDataset,
    reused across runs and steps), ``none`` recomputes every time. ``key`` names ``cache_cfg`` in errors.
    """
    kind = str(cache_cfg.type)
    if kind == "cache":
        return CacheDataset(data=list(records), transform=transform, cache_rate=float(cache_cfg.rate),
                            num_workers=None, progress=False)
    if kind == "persistent":
        cache_dir = Path(str(cache_cfg.dir or default_cache_dir))
        cache_dir.mkdir(parents=True, exist_ok=True)
        return PersistentDataset(data=list(records), transform=transform, cache_dir=cache_dir)
    if kind == "none":
        return Dataset(data=list(records), transform=transform)
    raise ConfigError(f"{key}.type", f"unknown cache type '{kind}' (expected cache, persistent or none)")


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int) -> DataLoader:
    """MONAI DataLoader (collates the lists produced by multi-sample crops, seeds workers).

    Workers are started anew each epoch: MONAI seeds a worker's random transforms when it starts, from
    torch's generator, which ``seeding.EpochSeeding`` resets per epoch; persistent workers would carry
    their random state across epochs, and a resumed run would draw differently."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, pin_memory=False,
                      persistent_workers=False)
