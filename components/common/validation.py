"""Case validation and data set statistics, computed in one read of each file.

Every problem is reported with the file and the reason; ``data.on_invalid`` decides whether a bad case
is skipped (and listed in the report) or stops preprocessing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from .errors import ConfigError, DataError
from .manifest import Case

log = logging.getLogger(__name__)

PERCENTILES = (0.5, 50.0, 99.5)


@dataclass
class CaseReport:
    """What was found in one case: problems (empty when valid) and statistics."""

    case: Case
    problems: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def _load_nifti(path: str | None, what: str, problems: list[str]) -> nib.Nifti1Image | None:
    if path is None:
        problems.append(f"missing {what} file")
        return None
    p = Path(path)
    if not p.is_file():
        problems.append(f"{what} file {p} does not exist")
        return None
    try:
        img = nib.load(str(p))
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            problems.append(f"{what} file {p} is not NIfTI (found {type(img).__name__})")
            return None
        img.get_fdata(dtype=np.float32)  # force a full read: truncated files fail here
        return img
    except Exception as e:  # nibabel raises many types for unreadable files
        problems.append(f"{what} file {p} is unreadable or not NIfTI: {type(e).__name__}: {e}")
        return None


def inspect_case(case: Case, num_classes: int, affine_tolerance: float = 1e-3) -> CaseReport:
    """Validate one case and gather its statistics."""
    report = CaseReport(case)
    problems = report.problems
    image = _load_nifti(case.image, "image", problems)
    label = _load_nifti(case.label, "label", problems)
    if image is None or label is None:
        return report
    data = np.asarray(image.dataobj, dtype=np.float32)
    seg = np.asarray(label.dataobj)
    spatial = tuple(data.shape[:3])
    if spatial != tuple(seg.shape[:3]) or seg.ndim > 3 and any(s != 1 for s in seg.shape[3:]):
        problems.append(f"image shape {tuple(data.shape)} does not match label shape {tuple(seg.shape)}")
    if not np.allclose(image.affine, label.affine, atol=affine_tolerance):
        problems.append("image and label affines differ (different orientation, spacing or origin):\n"
                        f"image affine {image.affine.round(4).tolist()}\nlabel affine {label.affine.round(4).tolist()}")
    finite = np.isfinite(data)
    if not finite.all():
        problems.append(f"image has {int((~finite).sum())} NaN/Inf voxel(s)")
    if not np.allclose(seg, np.round(seg)):
        problems.append("label has non-integer values")
    values = np.unique(np.round(seg).astype(np.int64))
    outside = [int(v) for v in values if v < 0 or v >= num_classes]
    if outside:
        problems.append(f"label values {outside} are outside the declared classes 0..{num_classes - 1}")
    if not (values > 0).any():
        problems.append("label is empty (no foreground voxel)")
    if finite.any():
        pct = [float(v) for v in np.percentile(data[finite], PERCENTILES)]
    else:
        pct = [float("nan")] * len(PERCENTILES)
    report.stats = {
        "shape": list(data.shape),
        "spacing": [float(z) for z in image.header.get_zooms()[:3]],
        "intensity_percentiles": {f"p{p:g}": float(v) for p, v in zip(PERCENTILES, pct)},
        "class_voxels": {str(int(v)): int((seg == v).sum()) for v in values},
    }
    return report


def validate_cases(cases: list[Case], num_classes: int, on_invalid: str) -> tuple[list[CaseReport], list[CaseReport]]:
    """Inspect every case; return (valid, invalid) reports, or raise if ``on_invalid`` is ``fail``."""
    if on_invalid not in ("skip", "fail"):
        raise ConfigError("data.on_invalid", f"must be 'skip' or 'fail', got '{on_invalid}'")
    reports = [inspect_case(c, num_classes) for c in cases]
    good = [r for r in reports if r.ok]
    bad = [r for r in reports if not r.ok]
    for r in bad:
        log.warning("invalid case %s (%s): %s", r.case.id, r.case.image, "; ".join(r.problems))
    if bad and on_invalid == "fail":
        lines = "\n".join(f"  - {r.case.id} ({r.case.image}): {'; '.join(r.problems)}" for r in bad)
        raise DataError(bad[0].case.image, f"{len(bad)} of {len(reports)} case(s) are invalid "
                                           f"(set data.on_invalid=skip to leave them out):\n{lines}")
    if not good:
        raise DataError(cases[0].image if cases else "<no cases>", "no valid case left after validation")
    return good, bad


def summarize(reports: list[CaseReport]) -> dict[str, Any]:
    """Data set statistics over valid cases: spacing and shape medians/ranges, intensity percentiles, class sizes."""
    spacing = np.array([r.stats["spacing"] for r in reports])
    shape = np.array([r.stats["shape"][:3] for r in reports])
    pct = {k: float(np.median([r.stats["intensity_percentiles"][k] for r in reports]))
           for k in reports[0].stats["intensity_percentiles"]}
    class_voxels: dict[str, int] = {}
    for r in reports:
        for k, v in r.stats["class_voxels"].items():
            class_voxels[k] = class_voxels.get(k, 0) + v
    total = sum(class_voxels.values())
    return {
        "num_cases": len(reports),
        "spacing_median": np.median(spacing, axis=0).tolist(),
        "spacing_min": spacing.min(axis=0).tolist(),
        "spacing_max": spacing.max(axis=0).tolist(),
        "shape_median": np.median(shape, axis=0).tolist(),
        "shape_min": shape.min(axis=0).tolist(),
        "shape_max": shape.max(axis=0).tolist(),
        "intensity_percentiles_median": pct,
        "class_fraction": {k: v / total for k, v in sorted(class_voxels.items(), key=lambda kv: int(kv[0]))},
    }
