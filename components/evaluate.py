"""Evaluate step: the best checkpoint on the test split, with MONAI's ``SupervisedEvaluator``.

Inference is the validation path of the train step: the configured inferer (``inference.inferer``), AMP on
CUDA (``inference.amp``), argmax then one-hot postprocessing. Per case and per foreground class, ignite
metric handlers compute Dice (``MeanDice``) and the Hausdorff distance at ``evaluate.hausdorff_percentile``
(``common.metrics.PhysicalHausdorffDistance``) in the network's space (after reorientation/resampling).
Writes ``metrics.csv`` (per case), ``metrics.json`` (summary and cases), MONAI's own per-case and summary
reports (``MetricsSaver``, in ``metrics/``), overlay PNGs, and the predictions as NIfTI in the source image's
space and affine (``Invertd`` + ``SaveImaged``); all of it is also logged to ClearML (table, single values,
debug samples, artifacts).

How the summary treats the Hausdorff distance (HD), as in ``conf/evaluate``::

    # percentile of the HD: 95 -> keys hd95 / mean_hd95 (the pipeline monitors test/mean_hd95),
    # 90 -> hd90 / mean_hd90 ...; the summary records hd_name and hd_percentile.
    # Unit: mm from the voxel spacing of the label; "voxel" when the reader gives no geometry (e.g. .npy);
    # the summary records hd_unit.
    # A structure missed entirely (in the label but not the prediction, or the other way round) has no
    # finite HD: its CSV cell is empty, the per-class HD mean is over the cases with a finite HD, and
    # summary.missed[class] counts the cases left out. Its Dice is 0 and stays in the Dice mean. A class
    # absent from both label and prediction has no Dice and no HD (NaN, empty cell) and is ignored.
    hausdorff_percentile: 95

    python components/evaluate.py inputs.checkpoint=/path/to/best_checkpoint.pt
"""

from __future__ import annotations

import csv
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any, Iterable, cast

import numpy as np
import torch
import hydra
from clearml import Task
from ignite.engine import Engine, Events
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator
from monai.handlers import MeanDice, MetricsSaver, from_engine
from monai.transforms import AsDiscreted, Compose, CopyItemsd, DeleteItemsd, Invertd, SaveImaged
from omegaconf import DictConfig

from components.common import clearml_io, metrics, models, runtime, tracking
from components.common.entry import StepContext, StepResult, run_step, step
from components.common.errors import DataError
from components.common.inputs import load_manifest, resolve_checkpoint
from components.common.overlay import save_overlay
from components.common.transforms import deterministic_transforms

log = logging.getLogger("evaluate")

DICE = "dice"
SAVED_PRED = "pred_saved"  # the class map inverted to the source space, written by SaveImaged


class EvaluateResult(StepResult, total=False):
    checkpoint: str
    metrics: dict[str, Any]
    metrics_csv: str
    metrics_json: str
    predictions: str
    overlays: list[str]
    num_cases: int


class OverlayWriter:
    """Ignite handler: an overlay PNG (image slice, label and prediction contours) for each of the first
    ``limit`` cases, named by the case id."""

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder, self.limit = folder, limit
        self.paths: list[Path] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        batch, outputs = cast(list, engine.state.batch), cast(list, engine.state.output)  # decollated per case
        for item, output in zip(batch, outputs):
            if len(self.paths) >= self.limit:
                return
            image, label, pred = (output[k].detach().cpu() for k in ("image", "label", "pred"))
            self.paths.append(save_overlay(image[0].numpy(), label.argmax(0).numpy(), pred.argmax(0).numpy(),
                                           self.folder / f"{item['id']}.png"))


@step("evaluate")
def run(cfg: DictConfig, ctx: StepContext) -> EvaluateResult:
    """Evaluate on the test split; return summary metrics and output paths (also in ``result.json``)."""
    out, task = ctx.dir, ctx.task
    device = runtime.select_device(str(cfg.device))
    manifest, _ = load_manifest(ctx.input("dataset_id"), ctx.input("manifest"), int(cfg.data.num_classes))
    records = manifest.records("test")
    if not records:
        raise DataError(str(manifest.root), "the manifest has no test case to evaluate")
    checkpoint = resolve_checkpoint(ctx.input("model_id"), ctx.input("checkpoint"))
    net = models.build_network(cfg.model).to(device)
    models.load_network_weights(net, checkpoint, device,
                                key="inputs.model_id" if ctx.input("model_id") else "inputs.checkpoint")

    overlays = OverlayWriter(out / "overlays", int(cfg.evaluate.num_overlays))
    pred_dir = out / "predictions"
    log.info("evaluating %s on %d test case(s)", checkpoint.name, len(records))
    summary, rows = score(cfg, net, records, manifest.labels, device, handlers=[overlays, _metrics_saver(out / "metrics")],
                          pred_dir=pred_dir if cfg.evaluate.save_predictions else None)
    for row in rows:
        log.info("%s: %s", row["case"], "  ".join(f"{k} {v}" for k, v in row.items() if k != "case"))
    model_id = ctx.input("model_id")
    csv_path, metrics_path = _write_metrics(out, rows, summary, weights={"checkpoint": str(checkpoint), "model_id": model_id})
    metrics_url = None
    if task is not None:
        metrics_url = _report(task, rows, summary, csv_path, metrics_path, overlays.paths)
        if model_id:
            clearml_io.report_test_metrics_on_model(str(model_id), _model_metrics(summary))
    lines = summary_lines(summary, foreground_names(manifest.labels))
    for line in lines:
        log.info("%s", line)
    return EvaluateResult(
        checkpoint=str(checkpoint), metrics=summary, metrics_csv=str(csv_path.resolve()),
        metrics_json=str(metrics_path.resolve()), predictions=str(pred_dir.resolve()),
        overlays=[str(p.resolve()) for p in overlays.paths], num_cases=len(rows),
        outputs={"test_mean_dice": round(summary["mean_dice"], 5), "metrics_url": metrics_url,
                 "metrics_json": str(metrics_path.resolve())}, summary=lines)


def foreground_names(labels: dict[str, str]) -> list[str]:
    """Foreground class names in label order (the manifest's ``labels`` without background)."""
    return [labels[str(c)] for c in range(1, len(labels))]


def score(cfg: DictConfig, net: torch.nn.Module, records: list[dict[str, str]], labels: dict[str, str],
          device: torch.device, handlers: list[Any] | None = None,
          pred_dir: Path | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Test metrics of ``net`` on ``records``: the summary (``summarize``) and one row per case (``case_rows``).

    The promote step scores the production model with this too, so both sides of a comparison are
    measured by the same code on the same cases."""
    percentile = float(cfg.evaluate.hausdorff_percentile)
    hd_name = metrics.hd_name(percentile)
    hausdorff = metrics.PhysicalHausdorffDistance(percentile=percentile,
                                                  output_transform=from_engine(["pred", "label"]))
    evaluator = build_evaluator(cfg, net, records, len(labels), device, hd_name, hausdorff,
                                handlers=list(handlers or []), pred_dir=pred_dir)
    with runtime.explain_out_of_memory(cfg, "evaluation", device, training=False):
        evaluator.run()
    names = foreground_names(labels)
    dice, hd = (evaluator.state.metric_details[k].detach().cpu().numpy() for k in (DICE, hd_name))
    rows = case_rows([r["id"] for r in records], dice, hd, names, hd_name)
    return summarize(dice, hd, names, percentile, hausdorff.unit), rows


def build_evaluator(cfg: DictConfig, net: torch.nn.Module, records: list[dict[str, str]], num_classes: int,
                    device: torch.device, hd_name: str, hausdorff: metrics.PhysicalHausdorffDistance,
                    handlers: list[Any], pred_dir: Path | None) -> SupervisedEvaluator:
    """A ``SupervisedEvaluator`` over ``records`` (batch 1) with the train step's validation inference path,
    Dice as key metric and the Hausdorff handler; per-case values land in ``state.metric_details``."""
    base = deterministic_transforms(cfg.data)
    return SupervisedEvaluator(
        device=device, val_data_loader=DataLoader(Dataset(records, base), batch_size=1, num_workers=0),
        network=net, inferer=models.build_inferer(cfg.inference),
        postprocessing=postprocessing(base, num_classes, pred_dir),
        amp=bool(cfg.inference.amp) and device.type == "cuda",
        key_val_metric={DICE: MeanDice(include_background=False, output_transform=from_engine(["pred", "label"]),
                                       save_details=True)},
        additional_metrics={hd_name: hausdorff}, val_handlers=handlers)


def postprocessing(base: Compose, num_classes: int, pred_dir: Path | None) -> Compose:
    """Class map; with ``pred_dir``, that map inverted to the source image's space and saved as uint8 NIfTI
    (``<image>_pred.nii.gz``); then one-hot prediction and label for the metrics."""
    chain: list[Any] = [AsDiscreted(keys="pred", argmax=True)]
    if pred_dir is not None:
        chain += [CopyItemsd(keys="pred", names=SAVED_PRED),
                  Invertd(keys=SAVED_PRED, transform=base, orig_keys="image", nearest_interp=True, device="cpu"),
                  SaveImaged(keys=SAVED_PRED, output_dir=str(pred_dir), output_postfix="pred", separate_folder=False,
                             resample=False, output_dtype=np.uint8, print_log=False),
                  DeleteItemsd(keys=SAVED_PRED)]
    chain.append(AsDiscreted(keys=["pred", "label"], to_onehot=num_classes))
    return Compose(chain)


def _metrics_saver(folder: Path) -> MetricsSaver:
    """MONAI's own report: overall metrics, per-case values named by image file (``<metric>_raw.csv``, classes
    as class0.. from the first foreground class) and their summary. A missed structure shows as inf there, so
    the summary keeps the operations that stay defined with inf (no percentile, no std)."""
    return MetricsSaver(save_dir=str(folder), metrics="*", metric_details="*",
                        summary_ops=("mean", "median", "min", "max", "notnans"),
                        batch_transform=lambda batch: [item["image"].meta for item in batch])


def _cell(value: float) -> float | None:
    """A CSV/JSON cell: rounded, or None (empty) for NaN (class absent) and inf (structure missed)."""
    return round(float(value), 5) if math.isfinite(value) else None


def case_rows(case_ids: list[str], dice: np.ndarray, hd: np.ndarray, class_names: list[str],
              hd_name: str) -> list[dict[str, Any]]:
    """One row per case: ``case``, ``dice_<class>``..., ``<hd_name>_<class>``... (the ``metrics.csv`` columns)."""
    rows = []
    for case_id, d, h in zip(case_ids, dice, hd, strict=True):
        row: dict[str, Any] = {"case": case_id}
        row.update({f"dice_{n}": _cell(v) for n, v in zip(class_names, d)})
        row.update({f"{hd_name}_{n}": _cell(v) for n, v in zip(class_names, h)})
        rows.append(row)
    return rows


def _finite_mean(values: Iterable[float]) -> float:
    finite = [float(v) for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def summarize(dice: np.ndarray, hd: np.ndarray, class_names: list[str], percentile: float,
              unit: str) -> dict[str, Any]:
    """Per-class means over the cases where the value is finite, their mean over classes, and per class the
    number of cases where the structure was missed (infinite HD, left out of the HD mean)."""
    name = metrics.hd_name(percentile)
    per_dice = {n: _finite_mean(dice[:, i]) for i, n in enumerate(class_names)}
    per_hd = {n: _finite_mean(hd[:, i]) for i, n in enumerate(class_names)}
    return {"mean_dice": _finite_mean(per_dice.values()), "dice": per_dice,
            f"mean_{name}": _finite_mean(per_hd.values()), name: per_hd,
            "hd_name": name, "hd_unit": unit, "hd_percentile": percentile,
            "missed": {n: int(np.isinf(hd[:, i]).sum()) for i, n in enumerate(class_names)},
            "num_cases": int(dice.shape[0])}


def summary_lines(summary: dict[str, Any], class_names: list[str]) -> list[str]:
    """The end-of-run summary: mean Dice and HD (named by percentile, with unit), then per class."""
    name, unit = summary["hd_name"], summary["hd_unit"]
    label = name.upper()
    lines = [f"test mean Dice {summary['mean_dice']:.4f}  mean {label} {summary[f'mean_{name}']:.2f} {unit}"]
    for n in class_names:
        missed = summary["missed"][n]
        note = f"  (missed in {missed} case(s), left out of the {label} mean)" if missed else ""
        lines.append(f"  {n:>12}: Dice {summary['dice'][n]:.4f}  {label} {summary[name][n]:.2f} {unit}{note}")
    return lines


def _write_metrics(out: Path, rows: list[dict[str, Any]], summary: dict[str, Any],
                   weights: dict[str, Any]) -> tuple[Path, Path]:
    """``metrics.csv`` (one row per case; empty cell = no finite value) and ``metrics.json`` (summary, cases
    and the weights evaluated: what the promote step compares the production model against)."""
    csv_path = out / "metrics.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        writer.writerows(rows)
    metrics_path = out / "metrics.json"
    metrics_path.write_text(json.dumps({"summary": summary, "cases": rows, "weights": weights}, indent=2))
    return csv_path, metrics_path


def _model_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The test metrics recorded on the evaluated model (its metadata in the model registry)."""
    name = summary["hd_name"]
    return {"test_mean_dice": summary["mean_dice"], f"test_mean_{name}": summary[f"mean_{name}"]}


def _report(task: Task, rows: list[dict[str, Any]], summary: dict[str, Any], csv_path: Path, metrics_path: Path,
            overlays: list[Path]) -> str | None:
    """Log the metrics, overlays and files to the task; returns the URL of the uploaded ``metrics.json``."""
    name, unit = summary["hd_name"], summary["hd_unit"]
    logger = task.get_logger()
    tracking.report_values(task, "test", {"mean_dice": summary["mean_dice"], f"mean_{name}": summary[f"mean_{name}"]},
                           monitored=True)
    tracking.report_values(task, "test_dice", summary["dice"], monitored=True)
    tracking.report_values(task, f"test_{name}", summary[name], monitored=True)
    tracking.report_values(task, "test_missed", {k: float(v) for k, v in summary["missed"].items()})
    tracking.report_table(task, f"test metrics per case ({name} in {unit})", list(rows[0].keys()),
                          [list(r.values()) for r in rows])
    for path in overlays:
        logger.report_image("overlay", path.stem, iteration=0, local_path=str(path))
    task.upload_artifact("metrics_csv", artifact_object=str(csv_path), wait_on_upload=True)
    task.upload_artifact("metrics", artifact_object=str(metrics_path), wait_on_upload=True)
    return None if task.is_offline() else str(task.artifacts["metrics"].url)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    logging.getLogger("ignite.engine").setLevel(logging.WARNING)  # the summary lines replace its chatter
    sys.exit(run_step(cfg, "evaluate", run))


if __name__ == "__main__":
    main()
