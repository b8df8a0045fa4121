"""The evaluate step's metrics on tiny volumes whose prediction the test decides exactly.

The "image" of each case holds the prediction as class indices; the configured network is
``ClassMapNetwork`` (one-hot of the rounded image, no weights) and the intensity transform is the identity,
so ``evaluate.run`` goes through its real path (manifest, checkpoint loading, ``SupervisedEvaluator``,
sliding-window inferer, handlers, files) with a known prediction and label. No training.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from omegaconf import DictConfig, OmegaConf

from components import evaluate
from components.common import metrics
from components.common.manifest import Case, Manifest
from tests.conftest import write_nifti

Cfg = Callable[..., DictConfig]
SHAPE = (16, 16, 16)
LABELS = {"0": "background", "1": "low", "2": "high"}
ANISOTROPIC = np.diag([2.0, 1.0, 1.0, 1.0])  # 2 mm along the first axis, 1 mm along the others


class ClassMapNetwork(torch.nn.Module):
    """Stand-in network: logits = one-hot of the rounded input, so the prediction is whatever the image holds."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        classes = x[:, 0].round().long().clamp(0, self.num_classes - 1)
        return torch.nn.functional.one_hot(classes, self.num_classes).movedim(-1, 1).float()


def volume(*boxes: tuple[int, tuple[slice, slice, slice]]) -> np.ndarray:
    """A class map of SHAPE with each (class, box) painted in order."""
    out = np.zeros(SHAPE, dtype=np.uint8)
    for value, box in boxes:
        out[box] = value
    return out


LOW = (1, (slice(3, 9), slice(3, 9), slice(3, 9)))
LOW_SHIFTED = (1, (slice(5, 11), slice(3, 9), slice(3, 9)))  # LOW moved 2 voxels along the first axis
HIGH = (2, (slice(11, 15), slice(11, 15), slice(11, 15)))


def run_evaluate(tiny_cfg: Cfg, folder: Path, cases: dict[str, tuple[np.ndarray, np.ndarray]], *overrides: str,
                 affine: np.ndarray | None = None, suffix: str = ".nii.gz") -> evaluate.EvaluateResult:
    """Write ``cases`` (id -> (label, prediction)) as a test split and evaluate them."""
    entries = []
    for case_id, (label, prediction) in cases.items():
        image, label_path = folder / "data" / f"{case_id}_img{suffix}", folder / "data" / f"{case_id}_seg{suffix}"
        if suffix == ".npy":
            image.parent.mkdir(parents=True, exist_ok=True)
            np.save(image, prediction.astype(np.float32))
            np.save(label_path, label)
        else:
            write_nifti(image, prediction.astype(np.float32), affine)
            write_nifti(label_path, label, affine)
        entries.append(Case(case_id, str(image), str(label_path), "test"))
    manifest = Manifest(LABELS, entries).save(folder / "data")
    checkpoint = folder / "weights.pt"
    torch.save({"net": ClassMapNetwork(len(LABELS)).state_dict()}, checkpoint)
    cfg = tiny_cfg(f"inputs.manifest={manifest}", f"inputs.checkpoint={checkpoint}", "train.patch_size=[16,16,16]",
                   *overrides)
    OmegaConf.update(cfg, "model.net", {"_target_": f"{__name__}.ClassMapNetwork", "num_classes": len(LABELS)},
                     merge=False)
    OmegaConf.update(cfg, "data.intensity", {"_target_": "monai.transforms.Identityd", "keys": "image"}, merge=False)
    return evaluate.run(cfg)


def read_rows(result: evaluate.EvaluateResult) -> list[dict[str, str]]:
    with open(result["metrics_csv"], newline="") as f:
        return list(csv.DictReader(f))


def test_hausdorff_is_in_mm_from_anisotropic_spacing(tiny_cfg: Cfg, tmp_path: Path) -> None:
    """LOW predicted 2 voxels off along the first axis: 2 mm at 1 mm spacing, 4 mm at 2 mm spacing."""
    case = {"a": (volume(LOW, HIGH), volume(LOW_SHIFTED, HIGH))}
    iso = run_evaluate(tiny_cfg, tmp_path / "iso", case)["metrics"]
    aniso = run_evaluate(tiny_cfg, tmp_path / "aniso", case, affine=ANISOTROPIC)["metrics"]
    assert iso["hd95"]["low"] == pytest.approx(2.0) and aniso["hd95"]["low"] == pytest.approx(4.0)
    assert iso["hd95"]["high"] == aniso["hd95"]["high"] == 0.0
    assert iso["hd_unit"] == aniso["hd_unit"] == "mm"
    assert aniso["mean_hd95"] == pytest.approx(2.0)  # (4 + 0) / 2
    assert aniso["dice"]["low"] == pytest.approx(2 / 3) and aniso["dice"]["high"] == 1.0


def test_hausdorff_metric_takes_the_spacing_from_the_label_affine() -> None:
    """The metric itself, on tensors: MONAI's own handler would give 2 (voxels) for both."""
    label, pred = (torch.nn.functional.one_hot(torch.as_tensor(v).long(), 3).movedim(-1, 0)[None].float()
                   for v in (volume(LOW), volume(LOW_SHIFTED)))
    for affine, expected in ((np.eye(4), 2.0), (ANISOTROPIC, 4.0)):
        metric = metrics.PhysicalHausdorffDistanceMetric(percentile=95)
        value = metric(pred, MetaTensor(label, affine=torch.as_tensor(affine), meta={"original_affine": affine}))
        assert isinstance(value, torch.Tensor) and value[0, 0].item() == pytest.approx(expected)
        assert metric.unit == "mm"


def test_hausdorff_unit_is_voxel_without_spacing_metadata(tiny_cfg: Cfg, tmp_path: Path) -> None:
    """``.npy`` volumes are read by MONAI's ``NumpyReader``, which gives no affine (``original_affine``): the
    spacing is the voxel grid's, so the distance is reported in voxels, not mm."""
    result = run_evaluate(tiny_cfg, tmp_path, {"a": (volume(LOW, HIGH), volume(LOW_SHIFTED, HIGH))}, suffix=".npy")
    summary = result["metrics"]
    assert summary["hd_unit"] == "voxel" and summary["hd95"]["low"] == pytest.approx(2.0)
    assert result["summary"][0].endswith("mean HD95 1.00 voxel")


def test_missed_structures_are_counted_and_left_out_of_the_hausdorff_mean(tiny_cfg: Cfg, tmp_path: Path) -> None:
    """``high`` is hit in case a, missing from the prediction in b and predicted where there is none in c."""
    result = run_evaluate(tiny_cfg, tmp_path, {
        "a": (volume(LOW, HIGH), volume(LOW_SHIFTED, HIGH)),
        "b": (volume(LOW, HIGH), volume(LOW)),
        "c": (volume(LOW), volume(LOW, HIGH)),
    })
    summary = result["metrics"]
    assert summary["missed"] == {"low": 0, "high": 2}
    assert summary["hd95"] == {"low": pytest.approx(2 / 3), "high": 0.0}  # high: case a only
    assert summary["mean_hd95"] == pytest.approx(1 / 3)
    assert summary["dice"]["high"] == pytest.approx(0.5)  # a: 1, b: 0 (missed), c: no label, ignored
    rows = {r["case"]: r for r in read_rows(result)}
    assert rows["b"]["dice_high"] == "0.0" and rows["b"]["hd95_high"] == ""
    assert rows["c"]["dice_high"] == "" and rows["c"]["hd95_high"] == ""
    assert "missed in 2 case(s)" in result["summary"][2]
    monai_report = (Path(result["metrics_csv"]).parent / "metrics" / "hd95_raw.csv").read_text().splitlines()
    assert monai_report[2].startswith(str(tmp_path / "data" / "b_img.nii.gz")) and ",inf," in monai_report[2]


def test_hausdorff_keys_follow_the_percentile(tiny_cfg: Cfg, tmp_path: Path) -> None:
    """A 3-voxel spur on LOW: its 90th-percentile distance is 2 voxels (the 95th and the maximum are 3)."""
    spur = (1, (slice(9, 12), slice(3, 9), slice(3, 5)))
    result = run_evaluate(tiny_cfg, tmp_path, {"a": (volume(LOW, HIGH), volume(LOW, spur, HIGH))},
                          "evaluate.hausdorff_percentile=90")
    summary = result["metrics"]
    assert summary["hd_name"] == "hd90" and summary["hd_percentile"] == 90.0
    assert summary["hd90"] == {"low": pytest.approx(2.0), "high": 0.0} and summary["mean_hd90"] == pytest.approx(1.0)
    assert "hd95" not in summary and "mean_hd95" not in summary
    assert list(read_rows(result)[0]) == ["case", "dice_low", "dice_high", "hd90_low", "hd90_high"]
    assert result["summary"][0].endswith("mean HD90 1.00 mm")
    assert metrics.hd_name(95) == "hd95" and metrics.hd_name(99.5) == "hd99.5"
