"""MONAI datasets and loaders for the train/val/test splits of a manifest."""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import psutil
import torch
from monai.data import CacheDataset, Dataset, PersistentDataset, ThreadDataLoader, get_track_meta, set_track_meta
from monai.transforms import Compose, RandomizableTrait, Transform
from omegaconf import DictConfig

from .errors import ConfigError

log = logging.getLogger(__name__)


def make_dataset(records: Sequence[dict[str, Any]], transform: Compose, cache_cfg: DictConfig,
                 default_cache_dir: Path, key: str) -> Dataset:
    """Dataset that caches the deterministic head of ``transform`` (up to the first random transform).

    ``cache.type``: ``cache`` keeps it in memory (CacheDataset), ``persistent`` on disk (PersistentDataset,
    reused across runs and steps), ``none`` recomputes every time. ``key`` names ``cache_cfg`` in errors.

    The chain is flattened first: MONAI's datasets cache up to the first element that is random, and a
    nested ``Compose`` counts as random, so ``Compose([deterministic, random])`` would cache nothing.
    """
    transform = transform.flatten()
    kind = str(cache_cfg.type)
    if kind == "cache" and records:
        kind = _fits_in_memory(records, transform, cache_cfg, key)
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


def cached_bytes(item: Any) -> int:
    """Bytes of the tensors in one cached item: a dictionary whose arrays the deterministic transforms'
    ``EnsureTyped`` made tensors (other values, such as the case id, count nothing)."""
    if isinstance(item, torch.Tensor):
        return item.element_size() * item.nelement()
    if isinstance(item, dict):
        return sum(cached_bytes(v) for v in item.values())
    return 0


def case_cache_bytes(record: dict[str, Any], transform: Compose) -> int:
    """What one case takes in the cache: the deterministic head of ``transform`` (up to its first random
    transform, as MONAI's datasets cache it) applied to ``record``."""
    head = transform.flatten()
    first_random = head.get_index_of_first(lambda t: isinstance(t, RandomizableTrait) or not isinstance(t, Transform))
    return cached_bytes(head(dict(record), end=first_random, threading=True))


def _fits_in_memory(records: Sequence[dict[str, Any]], transform: Compose, cache_cfg: DictConfig, key: str) -> str:
    """``cache`` when the in-memory cache is estimated (from the first case) to stay within
    ``cache.max_memory`` of the machine's available memory, else ``persistent`` with a warning: a cache
    that does not fit would end the run out of memory after minutes of loading."""
    per_case = case_cache_bytes(records[0], transform)
    need = per_case * math.ceil(len(records) * float(cache_cfg.rate))
    available = psutil.virtual_memory().available
    limit = available * float(cache_cfg.max_memory)
    if need <= limit:
        return "cache"
    log.warning("%s: caching %d cases in memory would take about %.1f GiB (%.1f MiB per case), more than %s.max_memory"
                "=%g of the %.1f GiB available; caching on disk instead (%s.type=persistent, %s.dir)", key,
                len(records), need / 2**30, per_case / 2**20, key, float(cache_cfg.max_memory), available / 2**30,
                key, key)
    return "persistent"


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int) -> ThreadDataLoader:
    """MONAI ``ThreadDataLoader``: a MONAI DataLoader (collates the lists produced by multi-sample crops, seeds
    workers) whose batches are prepared in a background thread while the network computes on the previous one.
    With cached deterministic transforms only the random crops and augmentations remain per batch, which
    one thread keeps ahead of the network without the start-up and memory cost of worker processes.

    Workers are started anew each epoch: MONAI seeds a worker's random transforms when it starts, from
    torch's generator, which ``seeding.EpochSeeding`` resets per epoch; persistent workers would carry
    their random state across epochs, and a resumed run would draw differently."""
    return ThreadDataLoader(dataset, buffer_size=1, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                            pin_memory=False, persistent_workers=False)


@contextmanager
def metadata_off_when_cached(*datasets: Dataset) -> Iterator[bool]:
    """MONAI's ``set_track_meta(False)`` for the duration of the block when every case of ``datasets`` is
    cached in memory; yields whether it did.

    With the deterministic transforms (loading, reorientation, resampling, which need the affine) done
    up front, the random crops and augmentations only need plain tensors, and skipping the ``MetaTensor``
    bookkeeping on each of them makes the data path several times faster. With ``persistent``, ``none`` or
    a partial cache the deterministic transforms still run during training, so metadata stays on. The
    setting is global to the process and restored afterwards."""
    cached = all(isinstance(d, CacheDataset) and d.cache_num == len(d) for d in datasets)
    previous = get_track_meta()
    if cached:
        set_track_meta(False)
    try:
        yield cached
    finally:
        set_track_meta(previous)
