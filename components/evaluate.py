"""Evaluate step: the best checkpoint on the test split with sliding-window inference.

Per case and per foreground class: Dice and 95th-percentile Hausdorff distance (``monai.metrics``, in mm
using the voxel spacing). Writes ``metrics.csv`` (per case), ``metrics.json`` (summary), overlay PNGs and
the predictions as NIfTI in the source image's space and affine; all of it is also logged to ClearML
(table, single values, debug samples, artifacts).

    python components/evaluate.py evaluate.checkpoint=/path/to/best_checkpoint.pt
"""

from __future__ import annotations

import csv
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script (python components/evaluate.py, or by a clearml-agent)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
import hydra
from clearml import Task
from monai.data import DataLoader, Dataset, decollate_batch
from monai.metrics import DiceMetric, HausdorffDistanceMetric
from monai.transforms import AsDiscrete, Invertd, SaveImaged
from omegaconf import DictConfig

from components.common import clearml_io, models, runtime, tracking
from components.common.entry import run_step
from components.common.inputs import load_manifest, resolve_checkpoint
from components.common.overlay import save_overlay
from components.common.transforms import deterministic_transforms

log = logging.getLogger("evaluate")


def _nan_to_none(value: float) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else round(float(value), 5)


def run(cfg: DictConfig, task: Task | None = None) -> dict[str, Any]:
    """Evaluate on the test split; return summary metrics and output paths (also in ``result.json``)."""
    started = time.time()
    out = runtime.step_dir(cfg, "evaluate")
    runtime.save_resolved_config(cfg, out)
    device = runtime.select_device(str(cfg.device))
    manifest, _ = load_manifest(cfg)
    num_classes = manifest.num_classes
    checkpoint = resolve_checkpoint(cfg)
    net = models.build_network(cfg.model).to(device)
    models.load_network_weights(net, checkpoint, device)
    net.eval()
    inferer = models.build_inferer(cfg.inference)

    base = deterministic_transforms(cfg.data)
    records = manifest.records("test")
    loader = DataLoader(Dataset(records, base), batch_size=1, num_workers=0)
    invert = Invertd(keys="pred", transform=base, orig_keys="image", nearest_interp=True, to_tensor=True)
    pred_dir = out / "predictions"
    saver = SaveImaged(keys="pred", output_dir=str(pred_dir), output_postfix="pred", separate_folder=False,
                       resample=False, output_dtype=np.uint8, print_log=False)
    onehot = AsDiscrete(to_onehot=num_classes)
    dice = DiceMetric(include_background=False, reduction="none", ignore_empty=True)
    hd = HausdorffDistanceMetric(include_background=False, percentile=float(cfg.evaluate.hausdorff_percentile),
                                 reduction="none")
    class_names = [manifest.labels[str(c)] for c in range(1, num_classes)]
    rows: list[dict[str, Any]] = []
    overlays: list[Path] = []
    amp = device.type == "cuda" and bool(cfg.train.amp)
    log.info("evaluating %s on %d test case(s)", checkpoint.name, len(records))
    with torch.no_grad():
        for i, batch in enumerate(loader):
            image = batch["image"].to(device)
            with torch.autocast(device_type=device.type, enabled=amp):
                logits = inferer(image, net)
            pred = torch.argmax(logits, dim=1, keepdim=True)
            label = batch["label"].to(device)
            spacing = [float(s) for s in image.pixdim[0][:3]] if hasattr(image, "pixdim") else None
            d = dice(onehot(pred[0])[None], onehot(label[0])[None])[0].cpu().numpy()
            h = hd(onehot(pred[0])[None], onehot(label[0])[None], spacing=spacing)[0].cpu().numpy()
            case_id = records[i]["id"]
            row: dict[str, Any] = {"case": case_id}
            row.update({f"dice_{n}": _nan_to_none(v) for n, v in zip(class_names, d)})
            row.update({f"hd95_{n}": _nan_to_none(v) for n, v in zip(class_names, h)})
            rows.append(row)
            log.info("%s: %s", case_id, "  ".join(f"{k} {v}" for k, v in row.items() if k != "case"))
            if i < int(cfg.evaluate.num_overlays):
                overlays.append(save_overlay(image[0, 0].cpu().numpy(), label[0, 0].cpu().numpy(),
                                             pred[0, 0].cpu().numpy(), out / "overlays" / f"{case_id}.png"))
            if cfg.evaluate.save_predictions:
                item = decollate_batch({"image": batch["image"], "pred": pred.cpu().to(torch.uint8)})[0]
                saver(invert(item))

    summary = _summarize(rows, class_names)
    csv_path = out / "metrics.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        writer.writerows(rows)
    metrics_path = out / "metrics.json"
    metrics_path.write_text(json.dumps({"summary": summary, "cases": rows}, indent=2))
    published = None
    if task is not None:
        _report(task, rows, summary, csv_path, metrics_path, overlays)
        if cfg.inputs.get("model_id"):
            threshold = float(cfg.evaluate.publish_min_dice)
            published = clearml_io.report_test_metrics_on_model(
                str(cfg.inputs.model_id), {"test_mean_dice": summary["mean_dice"], "test_mean_hd95": summary["mean_hd95"]},
                publish=summary["mean_dice"] >= threshold)
            log.info("model %s: test mean Dice %.4f vs threshold %.4f -> %s", cfg.inputs.model_id,
                     summary["mean_dice"], threshold, "published" if published else "not published")
        clearml_io.set_outputs(task, test_mean_dice=round(summary["mean_dice"], 5), published=published)
    result = {"checkpoint": str(checkpoint), "metrics": summary, "published": published, "metrics_csv": str(csv_path.resolve()),
              "metrics_json": str(metrics_path.resolve()), "predictions": str(pred_dir.resolve()),
              "overlays": [str(p.resolve()) for p in overlays], "num_cases": len(rows),
              "seconds": round(time.time() - started, 2), "clearml_task_id": task.id if task else None,
              "clearml_offline_session": tracking.offline_session_zip(task) if task else None}
    runtime.write_result(out, result)
    log.info("test mean Dice %.4f (%s)", summary["mean_dice"],
             ", ".join(f"{n} {summary['dice'][n]:.4f}" for n in class_names))
    return result


def _summarize(rows: list[dict[str, Any]], class_names: list[str]) -> dict[str, Any]:
    def mean(key: str) -> float:
        values = [r[key] for r in rows if r[key] is not None]
        return float(np.mean(values)) if values else float("nan")

    per_class_dice = {n: mean(f"dice_{n}") for n in class_names}
    per_class_hd = {n: mean(f"hd95_{n}") for n in class_names}
    return {"mean_dice": float(np.nanmean(list(per_class_dice.values()))), "dice": per_class_dice,
            "mean_hd95": float(np.nanmean(list(per_class_hd.values()))), "hd95": per_class_hd,
            "num_cases": len(rows)}


def _report(task: Task, rows: list[dict[str, Any]], summary: dict[str, Any], csv_path: Path, metrics_path: Path,
            overlays: list[Path]) -> None:
    logger = task.get_logger()
    logger.report_single_value("test_mean_dice", summary["mean_dice"])
    logger.report_single_value("test_mean_hd95", summary["mean_hd95"])
    # also as plain scalars: single values do not appear in scalar histograms, which pipeline monitoring reads
    logger.report_scalar("test", "mean_dice", summary["mean_dice"], iteration=0)
    logger.report_scalar("test", "mean_hd95", summary["mean_hd95"], iteration=0)
    for name, value in summary["dice"].items():
        logger.report_single_value(f"test_dice_{name}", value)
        logger.report_scalar("test dice", name, value, iteration=0)
    for name, value in summary["hd95"].items():
        logger.report_single_value(f"test_hd95_{name}", value)
        logger.report_scalar("test hd95", name, value, iteration=0)
    tracking.report_table(task, "test metrics per case", list(rows[0].keys()), [list(r.values()) for r in rows])
    for path in overlays:
        logger.report_image("overlay", path.stem, iteration=0, local_path=str(path))
    task.upload_artifact("metrics_csv", artifact_object=str(csv_path), wait_on_upload=True)
    task.upload_artifact("metrics", artifact_object=str(metrics_path), wait_on_upload=True)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    run_step(cfg, "evaluate", run)


if __name__ == "__main__":
    main()
