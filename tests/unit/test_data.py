"""The train step's datasets: the deterministic head is really cached, and a cache too big for memory goes to disk."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from monai.data import CacheDataset, PersistentDataset, get_track_meta
from monai.transforms import Compose

from components import train
from components.common.data import case_cache_bytes, make_dataset, metadata_off_when_cached
from components.common.errors import ConfigError
from components.common.manifest import Case, Manifest
from components.common.transforms import deterministic_transforms, training_transforms
from pipelines.config import compose_config
from tests.conftest import make_case


def _records(folder: Path, count: int) -> list[dict[str, str]]:
    cases = [make_case(folder, f"c{i}", shape=(24, 24, 24)) for i in range(count)]
    return [{"image": str(image), "label": str(label)} for image, label in cases]


def _train_chain(cfg_overrides: list[str]) -> tuple[Compose, object]:
    cfg = compose_config(["train.patch_size=[16,16,16]", *cfg_overrides])
    chain = Compose([deterministic_transforms(cfg.data), training_transforms(cfg.train, "t")])
    return chain, cfg.train.cache


def test_the_cache_holds_the_deterministic_head_of_a_nested_chain(tmp_path: Path) -> None:
    chain, cache_cfg = _train_chain([])
    dataset = make_dataset(_records(tmp_path, 2), chain, cache_cfg, tmp_path / "cache", key="train.cache")
    assert isinstance(dataset, CacheDataset)
    cached = dataset._cache[0]  # what MONAI stores per case: loaded, normalised, padded volumes
    assert isinstance(cached["image"], torch.Tensor) and tuple(cached["image"].shape) == (1, 24, 24, 24)
    assert case_cache_bytes(dataset.data[0], chain) == 2 * 24**3 * 4  # float32 image and label
    assert len(dataset[0]) == 4  # the random part still runs per access: four patches


def test_a_cache_larger_than_its_memory_share_is_kept_on_disk(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    chain, cache_cfg = _train_chain(["train.cache.max_memory=1e-12"])
    with caplog.at_level(logging.WARNING):
        dataset = make_dataset(_records(tmp_path, 2), chain, cache_cfg, tmp_path / "cache", key="train.cache")
    assert isinstance(dataset, PersistentDataset) and not isinstance(dataset, CacheDataset)
    assert "train.cache: caching 2 cases in memory would take about" in caplog.text
    assert "train.cache.max_memory=1e-12" in caplog.text and "caching on disk instead" in caplog.text
    assert len(dataset[0]) == 4 and any((tmp_path / "cache").iterdir())


@pytest.mark.parametrize(("cache", "plain"), [("type=cache", True), ("rate=0.5", False), ("type=persistent", False)])
def test_metadata_is_off_while_training_only_when_every_case_is_cached(tmp_path: Path, cache: str,
                                                                      plain: bool) -> None:
    chain, cache_cfg = _train_chain([f"train.cache.{cache}"])
    dataset = make_dataset(_records(tmp_path, 2), chain, cache_cfg, tmp_path / "cache", key="train.cache")
    with metadata_off_when_cached(dataset) as off:
        assert off is plain and get_track_meta() is not plain
        patch = dataset[1][0]["image"]  # an uncached case (rate 0.5) must still be loaded with its affine
        assert (type(patch) is torch.Tensor) is plain
    assert get_track_meta() is True


def test_more_processes_than_cases_of_a_split_is_a_named_config_error(tmp_path: Path) -> None:
    records = _records(tmp_path, 3)
    manifest = Manifest(labels={"0": "background", "1": "foreground"}, root=tmp_path,
                        cases=[Case(f"c{i}", r["image"], r["label"], split) for i, (r, split)
                               in enumerate(zip(records, ["train", "train", "val"]))])
    cfg = compose_config(["data.num_classes=2"])
    with pytest.raises(ConfigError, match=r"train.distributed.nproc.*2 processes need at least 2 val cases each to "
                                          r"share, but the val split has 1"):
        train.build_loaders(cfg, manifest, tmp_path / "cache", rank=0, world_size=2)
