"""Overlay pictures for a quick visual check: an image slice with label and prediction contours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

LABEL_COLOUR = (0, 220, 0)
PREDICTION_COLOUR = (255, 40, 40)


def _contour(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask)


def best_slice(label: np.ndarray) -> int:
    """Index along the last axis with the most foreground (the middle slice when there is none)."""
    counts = (label > 0).reshape(-1, label.shape[-1]).sum(axis=0)
    return int(np.argmax(counts)) if counts.any() else label.shape[-1] // 2


def save_overlay(image: np.ndarray, label: np.ndarray, prediction: np.ndarray, path: Path, zoom: int = 4) -> Path:
    """Write a PNG of the slice with most foreground: grey image, green label contours, red prediction contours.

    All arrays are 3D (H, W, D) in the same space; label and prediction hold class indices.
    """
    z = best_slice(label)
    img = image[..., z].astype(np.float32)
    lo, hi = np.percentile(img, (1, 99))
    grey = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1) * 255
    rgb = np.repeat(grey[..., None], 3, axis=-1).astype(np.uint8)
    for volume, colour in ((label, LABEL_COLOUR), (prediction, PREDICTION_COLOUR)):
        sl = volume[..., z]
        for c in np.unique(sl[sl > 0]):
            rgb[_contour(sl == c)] = colour
    picture = Image.fromarray(np.rot90(rgb)).resize((rgb.shape[1] * zoom, rgb.shape[0] * zoom), Image.Resampling.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    return path
