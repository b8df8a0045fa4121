"""Hausdorff distance for evaluation as a MONAI metric and ignite handler, in physical units and with missed
structures made explicit.

- Spacing: MONAI's ``HausdorffDistance`` handler passes no ``spacing`` to its metric, so distances come out
  in voxels. ``PhysicalHausdorffDistanceMetric`` takes the spacing from the label MetaTensor's affine (the
  label after the data transforms, i.e. the space the metric is computed in). It also records per case
  whether that spacing is physical: the reader gave a geometry (``original_affine``: NIfTI, NRRD, DICOM,
  ITK) or not (e.g. ``.npy`` through ``NumpyReader``, where the affine is the identity of the voxel grid).
  ``unit`` is then "mm" or "voxel".
- Missed structures: a class present in only one of prediction and label has no finite distance. MONAI
  returns inf for it, or NaN when a percentile is asked (the quantile of infinities), which a NaN-aware
  mean then silently drops. Here it is always ``inf``, so it is told apart from the NaN of a class absent
  from both and can be counted.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from monai.data import MetaTensor, affine_to_spacing
from monai.handlers import IgniteMetricHandler
from monai.metrics import HausdorffDistanceMetric
from monai.utils import MetaKeys

from .errors import DataError

UNIT_MM = "mm"
UNIT_VOXEL = "voxel"


def hd_name(percentile: float) -> str:
    """The key of the Hausdorff metric for a percentile: ``hd95`` for 95, ``hd90`` for 90, ``hd99.5`` ..."""
    return f"hd{float(percentile):g}"


def _plain(t: torch.Tensor) -> torch.Tensor:
    return t.as_tensor() if isinstance(t, MetaTensor) else t


def label_spacing(y: torch.Tensor) -> list[list[float]] | None:
    """Voxel spacing per batch item of a batch-first MetaTensor, from its affine; None (unit spacing) for a
    plain tensor."""
    if not isinstance(y, MetaTensor):
        return None
    dims = y.ndim - 2
    affines = torch.as_tensor(y.affine).reshape(-1, dims + 1, dims + 1)  # one affine, or one per batch item
    spacings = [affine_to_spacing(a, r=dims).tolist() for a in affines]
    return spacings * y.shape[0] if len(spacings) == 1 else spacings


def has_physical_spacing(y: torch.Tensor) -> bool:
    """Whether the reader gave the image a geometry (an ``original_affine``), so its spacing is in mm."""
    return isinstance(y, MetaTensor) and MetaKeys.ORIGINAL_AFFINE in y.meta


def structure_missed(y_pred: torch.Tensor, y: torch.Tensor, include_background: bool = False) -> torch.Tensor:
    """(batch, class) True where a class is in exactly one of the one-hot prediction and label."""
    first = 0 if include_background else 1
    in_pred = _plain(y_pred)[:, first:].flatten(2).bool().any(-1)
    in_label = _plain(y)[:, first:].flatten(2).bool().any(-1)
    return in_pred ^ in_label


class PhysicalHausdorffDistanceMetric(HausdorffDistanceMetric):
    """``HausdorffDistanceMetric`` with the spacing from the label's affine and ``inf`` for a missed structure."""

    def __init__(self, include_background: bool = False, percentile: float | None = None,
                 reduction: str = "mean") -> None:
        self.physical: list[bool] = []
        super().__init__(include_background=include_background, percentile=percentile, reduction=reduction)

    def reset(self) -> None:
        super().reset()
        self.physical = []

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        self.physical.extend([has_physical_spacing(y)] * y.shape[0])
        kwargs.setdefault("spacing", label_spacing(y))
        distance = super()._compute_tensor(y_pred, y, **kwargs)
        missed = structure_missed(y_pred, y, self.include_background).to(distance.device)
        return torch.where(missed, torch.full_like(distance, float("inf")), distance)

    @property
    def unit(self) -> str:
        """"mm" when every case seen since the last reset had a physical spacing, "voxel" when none had."""
        if all(self.physical):
            return UNIT_MM
        if not any(self.physical):
            return UNIT_VOXEL
        raise DataError("test split", f"{self.physical.count(False)} of {len(self.physical)} label(s) carry no "
                                      "physical spacing (e.g. .npy) and the others do: their Hausdorff distances "
                                      "would mix voxels and mm; convert the data to one format")


class PhysicalHausdorffDistance(IgniteMetricHandler):
    """Ignite handler of ``PhysicalHausdorffDistanceMetric`` (per-case values in ``engine.state.metric_details``)."""

    metric_fn: PhysicalHausdorffDistanceMetric

    def __init__(self, percentile: float | None = None, include_background: bool = False,
                 output_transform: Callable = lambda x: x, save_details: bool = True) -> None:
        metric = PhysicalHausdorffDistanceMetric(include_background=include_background, percentile=percentile)
        super().__init__(metric_fn=metric, output_transform=output_transform, save_details=save_details)

    @property
    def unit(self) -> str:
        """Unit of the distances of the last run: "mm" or "voxel"."""
        return self.metric_fn.unit
