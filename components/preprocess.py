"""Preprocess step: gather cases (synthetic, Decathlon or folders), validate them, split, and describe the data.

Writes ``manifest.json`` (cases with their split, label names, statistics) and ``validation_report.json``
into the step's folder; logs statistics and the case table to ClearML. With ``clearml.dataset.publish``
the folder becomes a ClearML Dataset version, handed on as ``dataset_id``; the manifest path is handed
on to a local run's next steps.

    python components/preprocess.py data=decathlon data.root=/data/Task09_Spleen
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import hydra
from clearml import Task
from omegaconf import DictConfig

from components.common import clearml_io, tracking
from components.common.entry import StepContext, StepResult, run_step, step
from components.common.errors import ConfigError, DataError
from components.common.manifest import Case, Manifest, assign_splits
from components.common.sources import collect_cases
from components.common.validation import validate_cases, summarize

log = logging.getLogger("preprocess")

REPORT_NAME = "validation_report.json"


class PreprocessResult(StepResult):
    manifest: str
    dataset: dict[str, Any] | None
    validation_report: str
    num_valid: int
    num_rejected: int
    splits: dict[str, int]
    stats: dict[str, Any]


@step("preprocess")
def run(cfg: DictConfig, ctx: StepContext) -> PreprocessResult:
    """Prepare the data set described by ``cfg.data``; return paths and counts (also in ``result.json``)."""
    out, task = ctx.dir, ctx.task
    data_cfg = cfg.data
    seed = int(cfg.seed)

    cases, labels, origin = collect_cases(data_cfg, out, seed)
    if len(labels) != int(data_cfg.num_classes):
        raise DataError(str(data_cfg.get("root") or out), f"declares {len(labels)} classes {labels} but "
                        f"config key 'data.num_classes' is {data_cfg.num_classes}; make them agree")
    log.info("found %d case(s) from source '%s'; validating", len(cases), data_cfg.source)
    good, bad = validate_cases(cases, int(data_cfg.num_classes), str(data_cfg.on_invalid))
    split_cases = assign_splits([r.case for r in good], float(data_cfg.split.val), float(data_cfg.split.test), seed)
    publish = bool(cfg.clearml.dataset.publish)
    if publish:  # a published data set must be self-contained: bring outside files into the folder
        split_cases = [_copy_into(c, out) for c in split_cases]
    rejected = [{"id": r.case.id, "image": r.case.image, "label": r.case.label, "problems": r.problems} for r in bad]
    stats = summarize(good)
    manifest = Manifest(labels=labels, cases=split_cases, source=origin,
                        stats=stats, rejected=rejected, seed=seed, root=out)
    manifest_path = manifest.save(out)
    report_path = out / REPORT_NAME
    report_path.write_text(json.dumps({"valid": len(good), "invalid": len(bad), "rejected": rejected}, indent=2))

    counts = {s: len(manifest.split(s)) for s in ("train", "val", "test")}
    log.info("valid %d, rejected %d; split train=%d val=%d test=%d", len(good), len(bad),
             counts["train"], counts["val"], counts["test"])
    if task is not None:
        _report(task, manifest, good, counts, len(bad), manifest_path, report_path)
    dataset = None
    if publish:
        if task is None:
            raise ConfigError("clearml.dataset.publish", "publishing a Dataset needs a ClearML task (run the step's "
                                                       "entry point, not run() alone)")
        dataset = clearml_io.publish_dataset(out, str(cfg.clearml.dataset.project), str(cfg.clearml.dataset.name),
                                             tags=list(cfg.clearml.tags or []), raw=origin)
    return PreprocessResult(
        manifest=str(manifest_path.resolve()), dataset=dataset, validation_report=str(report_path.resolve()),
        num_valid=len(good), num_rejected=len(bad), splits=counts, stats=stats,
        outputs={"dataset_id": dataset["id"] if dataset else None, "dataset_version": dataset["version"] if dataset else None,
                 "manifest": str(manifest_path.resolve())})


def _copy_into(case: Case, folder: Path) -> Case:
    """Copy a case's files into ``folder/imagesTr`` and ``folder/labelsTr`` unless they are already inside."""
    paths = []
    for path, sub in ((case.image, "imagesTr"), (case.label, "labelsTr")):
        src = Path(str(path)).resolve()
        if folder.resolve() in src.parents:
            paths.append(str(src))
            continue
        dst = folder / sub / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        paths.append(str(dst.resolve()))
    return Case(case.id, paths[0], paths[1], case.split)


def _report(task: Task, manifest: Manifest, good: list, counts: dict[str, int], num_rejected: int,
            manifest_path: Path, report_path: Path) -> None:
    logger = task.get_logger()
    for name, value in {**counts, "valid": len(good), "rejected": num_rejected}.items():
        logger.report_single_value(f"cases_{name}", value)
    for axis, value in zip("xyz", manifest.stats["spacing_median"]):
        logger.report_single_value(f"spacing_median_{axis}", value)
    for name, value in manifest.stats["intensity_percentiles_median"].items():
        logger.report_single_value(f"intensity_{name}", value)
    split_of = {c.id: c.split for c in manifest.cases}
    rows = [[r.case.id, split_of[r.case.id], "x".join(str(s) for s in r.stats["shape"]),
             " ".join(f"{s:.3g}" for s in r.stats["spacing"]), *(f"{v:.4g}" for v in r.stats["intensity_percentiles"].values())]
            for r in good]
    tracking.report_table(task, "cases", ["case", "split", "shape", "spacing",
                                          *good[0].stats["intensity_percentiles"].keys()], rows)
    task.upload_artifact("manifest", artifact_object=str(manifest_path), wait_on_upload=True)
    task.upload_artifact("validation_report", artifact_object=str(report_path), wait_on_upload=True)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    sys.exit(run_step(cfg, "preprocess", run))


if __name__ == "__main__":
    main()
