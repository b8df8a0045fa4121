"""Promote step: ship the newly trained model (the challenger) only when it beats the production model.

The production model (the champion) is scored on the **same test cases** as the challenger in this run,
with the same metric code (``evaluate.score``), using its own recorded network and preprocessing config.
``components/common/promotion.py`` holds the rules (``conf/promote``): without a champion the challenger
must reach ``promote.min_dice``; with one it must be better by ``promote.margin`` in mean Dice, and with
``promote.require_significance`` also significantly better per case (one-sided Wilcoxon signed-rank).

Where the champion lives (``common/registry.py``): online, the ClearML model registry (the published model
tagged ``promote.production_tag``); a promotion publishes the challenger, moves the tag and records the
previous champion's id and the decision in its metadata. Offline, a local champion folder
(``promote.local_registry``), or, when that is null, the step skips the comparison and says so.

The decision is reported on this task (text, table, per-class scalars challenger vs champion), on the
pipeline run that started it (text and table) and in a local run's summary.

    python components/promote.py inputs.manifest=outputs/<run>/preprocess inputs.metrics_json=outputs/<run>/evaluate/metrics.json
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from clearml import Task
from omegaconf import DictConfig, OmegaConf

from components.common import models, runtime, tracking
from components.common.entry import StepContext, StepResult, run_step, step
from components.common.errors import ConfigError, DataError
from components.common.inputs import load_manifest
from components.common.promotion import Decision, Rules, decide, decide_first, per_case_mean_dice
from components.common.registry import Champion, ClearMLRegistry, LocalRegistry
from components.evaluate import score

log = logging.getLogger("promote")

# data keys that shape what a network sees: the champion is scored with its own
CHAMPION_DATA_KEYS = ("orientation", "spacing", "intensity")


class PromoteResult(StepResult, total=False):
    decision: dict[str, Any] | None
    champion_id: str | None
    case_ids: list[str]
    champion_case_ids: list[str] | None
    champion_metrics: dict[str, Any] | None


@step("promote")
def run(cfg: DictConfig, ctx: StepContext) -> PromoteResult:
    """Compare the evaluated challenger with the production model and promote it if it wins."""
    record = load_evaluation(ctx.input("metrics_json"), ctx.input("metrics_url"))
    challenger_summary, challenger_rows = record["summary"], record["cases"]
    case_ids = [str(r["case"]) for r in challenger_rows]
    rules = Rules.from_config(cfg.promote)
    online = ctx.task is not None and not ctx.task.is_offline()
    model_id = ctx.input("model_id")
    if online and not model_id:
        raise ConfigError("inputs.model_id", "promoting online needs the challenger's ClearML model id (the train "
                                             "step's model_id output)")
    registry = (ClearMLRegistry(str(cfg.clearml.project), str(cfg.promote.production_tag)) if online
                else LocalRegistry(Path(str(cfg.promote.local_registry))) if cfg.promote.local_registry else None)
    if registry is None:
        line = ("promote: skipped, no production model to compare with: no ClearML server (offline) and "
                "promote.local_registry is null")
        log.warning("%s", line)
        return PromoteResult(decision=None, champion_id=None, case_ids=case_ids, champion_case_ids=None, champion_metrics=None,
                             outputs={"promoted": None, "production_model_id": None}, summary=[line])
    challenger_id = str(model_id) if online else f"local:{cfg.paths.run_id}"
    champion = registry.champion()
    champion_summary, champion_case_ids = None, None
    if champion is None:
        decision = decide_first(float(challenger_summary["mean_dice"]), rules)
    elif champion.id == challenger_id:
        decision = Decision(promote=False, reason=f"{challenger_id} is already the production model",
                            challenger_mean_dice=float(challenger_summary["mean_dice"]))
    else:
        champion_summary, champion_rows = score_champion(cfg, ctx, champion)
        champion_case_ids = [str(r["case"]) for r in champion_rows]
        if champion_case_ids != case_ids:
            raise DataError("promote", "the champion was scored on other cases than the challenger")
        decision = decide(float(challenger_summary["mean_dice"]), float(champion_summary["mean_dice"]),
                          per_case_mean_dice(challenger_rows), per_case_mean_dice(champion_rows), rules)
    if decision.promote:
        if isinstance(registry, ClearMLRegistry):
            registry.promote(challenger_id, champion, decision)
        else:
            registry.promote(challenger_id, Path(str(record["weights"]["checkpoint"])),
                             OmegaConf.to_container(cfg, resolve=True), champion, decision)  # type: ignore[arg-type]
    elif isinstance(registry, ClearMLRegistry):
        registry.record(challenger_id, decision, champion)
    production = challenger_id if decision.promote else (champion.id if champion else None)
    lines = decision_lines(decision, challenger_id, champion)
    for line in lines:
        log.info("%s", line)
    if ctx.task is not None:
        _report(ctx.task, decision, lines, challenger_summary, champion_summary)
    return PromoteResult(decision=decision.metadata(), champion_id=champion.id if champion else None, case_ids=case_ids,
                         champion_case_ids=champion_case_ids, champion_metrics=champion_summary,
                         outputs={"promoted": decision.promote, "production_model_id": production}, summary=lines)


def load_evaluation(path: str | None, url: str | None) -> dict[str, Any]:
    """The evaluate step's ``metrics.json`` (summary, per-case rows, weights evaluated): a local file, else
    the artifact URL the remote pipeline hands over."""
    if path:
        source = Path(str(path)).expanduser()
        key = "inputs.metrics_json"
    elif url:
        from clearml import StorageManager

        local = StorageManager.get_local_copy(str(url), extract_archive=False)
        if not local:
            raise ConfigError("inputs.metrics_url", f"could not download '{url}'")
        source, key = Path(local), "inputs.metrics_url"
    else:
        raise ConfigError("inputs.metrics_json", "no evaluation to promote: set inputs.metrics_json (evaluate's "
                                                 "metrics.json) or run evaluate first in the same run (paths.run_id)")
    if not source.is_file():
        raise ConfigError(key, f"file '{source}' does not exist")
    try:
        record: dict[str, Any] = json.loads(source.read_text())
    except json.JSONDecodeError as e:
        raise DataError(str(source), f"malformed JSON: {e}") from e
    missing = [k for k in ("summary", "cases", "weights") if k not in record]
    if missing:
        raise DataError(str(source), f"not an evaluation record (no {', '.join(missing)}); expected evaluate's metrics.json")
    return record


def score_champion(cfg: DictConfig, ctx: StepContext, champion: Champion) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The champion's test metrics on this run's test cases, with its own network and preprocessing."""
    own = champion.config
    if not isinstance(own.get("model"), dict):
        raise DataError(f"production model {champion.id}", "records no network config ('model'); it cannot be "
                                                           "re-evaluated. Remove its production tag to start over")
    data = {k: own["data"][k] for k in CHAMPION_DATA_KEYS if k in (own.get("data") or {})}
    champion_cfg = OmegaConf.merge(cfg, {"model": own["model"], "data": data})
    manifest, _ = load_manifest(ctx.input("dataset_id"), ctx.input("manifest"), int(cfg.data.num_classes))
    device = runtime.select_device(str(cfg.device))
    net = models.build_network(champion_cfg.model).to(device)
    models.load_network_weights(net, champion.weights, device, key=f"production model {champion.id}")
    log.info("scoring the production model %s on %d test case(s)", champion.id, len(manifest.records("test")))
    return score(champion_cfg, net, manifest.records("test"), manifest.labels, device)  # type: ignore[arg-type]


def decision_lines(decision: Decision, challenger_id: str, champion: Champion | None) -> list[str]:
    against = f"production model {champion.id}" if champion else "no production model"
    return [f"promote: {'PROMOTED' if decision.promote else 'not promoted'} {challenger_id} (vs {against})",
            f"  {decision.reason}"]


def _report(task: Task, decision: Decision, lines: list[str], challenger: dict[str, Any],
            champion: dict[str, Any] | None) -> None:
    """The decision on this task and, when a pipeline started it, on the pipeline run."""
    tracking.report_values(task, "promotion", {"challenger_mean_dice": decision.challenger_mean_dice,
                                               "champion_mean_dice": decision.champion_mean_dice or 0.0,
                                               "promoted": float(decision.promote)}, monitored=True)
    tracking.report_values(task, "challenger_dice", challenger["dice"], monitored=True)
    if champion is not None:
        tracking.report_values(task, "champion_dice", champion["dice"], monitored=True)
    header = ["class", "challenger Dice", "production Dice"]
    rows = [[name, f"{value:.4f}", f"{champion['dice'][name]:.4f}" if champion else ""]
            for name, value in challenger["dice"].items()]
    targets = [task]
    if not task.is_offline() and task.parent:
        targets.append(Task.get_task(task_id=task.parent))
    for target in targets:
        target.get_logger().report_text("\n".join(lines))
        tracking.report_table(target, "promotion", header, rows)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    logging.getLogger("ignite.engine").setLevel(logging.WARNING)
    sys.exit(run_step(cfg, "promote", run))


if __name__ == "__main__":
    main()
