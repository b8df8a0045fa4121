"""Train step: a MONAI/ignite supervised trainer with sliding-window validation, logged to ClearML.

- network, loss, optimizer and LR schedule from config (``model.net``, ``train.loss`` ...);
- random foreground/background patches plus ``train.augment``; the deterministic part of the transforms
  is cached (``train.cache``; on disk instead when it would not fit ``train.cache.max_memory``), batches
  come from a ``ThreadDataLoader``, MONAI metadata is off after a full cache, and every epoch reports the
  share of its time spent waiting for data (``data_wait``);
- validation every ``train.val_interval`` epochs (and on the last) with the configured inferer and
  mean Dice over foreground classes;
- ClearML: ``ClearMLStatsHandler`` (loss per iteration, LR per epoch, validation Dice per epoch),
  ``ClearMLImageHandler`` (image, label, prediction of a validation case as GIFs), ignite
  ``Checkpoint``s written atomically (last N + best by validation Dice; network, optimizer, scheduler,
  trainer state and the checkpoint handlers' own bookkeeping, so a run can resume). Online, ClearML
  captures every checkpoint as an output model; the best one is also registered explicitly with its
  metrics, and offline the checkpoints are registered with ``OutputModel`` so the offline session
  carries them;
- exact resume: every epoch is reseeded from ``(seed, epoch)`` (``seeding.EpochSeeding``), so
  ``train.resume=auto`` after a kill continues as the uninterrupted run would; a retried attempt on
  another machine fetches the failed attempt's checkpoints first (``train.resume_from_task``).

    python components/train.py train.max_epochs=50 model=segresnet
"""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch  # before clearml.Task.init, so that torch.save is captured (clearml_compat.TORCH_BEFORE_TASK_INIT)
import hydra
from clearml import Task
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint
from monai.data import partition_dataset
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import (CheckpointLoader, ClearMLImageHandler, ClearMLStatsHandler, LrScheduleHandler, MeanDice,
                            TensorBoardImageHandler, TensorBoardStatsHandler, from_engine)
from monai.inferers import SimpleInferer
from monai.transforms import AsDiscreted, Compose
from omegaconf import DictConfig, OmegaConf
from torch.nn.parallel import DistributedDataParallel

from components.common import checkpoints as ckpt
from components.common import clearml_compat, clearml_io, distributed, models, runtime, tracking
from components.common.data import make_dataset, make_loader, metadata_off_when_cached
from components.common.data_wait import DataWaitTimer
from components.common.entry import StepContext, StepResult, run_step, step
from components.common.errors import ConfigError
from components.common.inputs import load_manifest
from components.common.manifest import Manifest
from components.common.seeding import EpochSeeding
from components.common.transforms import deterministic_transforms, training_transforms

log = logging.getLogger("train")

CHECKPOINT_PREFIX = ""
BEST_PREFIX = "best"
KEY_METRIC = "val_mean_dice"


class TrainResult(StepResult, total=False):
    best_checkpoint: str | None
    last_checkpoint: str | None
    best_val_mean_dice: float
    best_epoch: int
    epochs: int
    resumed_from_epoch: int | None
    final_loss: float | None
    device: str
    world_size: int
    iterations_per_epoch: int
    output_models: dict[str, str]


@dataclass
class Checkpoints:
    """The two checkpoint handlers and what they save; ``last`` also stores both handlers' bookkeeping."""

    last: Checkpoint
    best: Checkpoint
    objects: dict[str, Any]

    def resume_objects(self) -> dict[str, Any]:
        return {**self.objects, "checkpointer": self.last, "best_checkpointer": self.best}

    def forget_missing_files(self, _: Engine) -> None:
        """After resuming from an older checkpoint (the newest was unreadable), its bookkeeping may name files
        that later epochs replaced; drop those entries so the handlers do not try to delete them."""
        for handler in (self.last, self.best):
            folder = Path(handler.save_handler.dirname)
            saved = handler.state_dict()["_saved"]
            kept = [(p, f) for p, f in saved if (folder / f).is_file()]
            if len(kept) != len(saved):
                log.warning("checkpoint bookkeeping names files that no longer exist: %s",
                            sorted(set(f for _, f in saved) - set(f for _, f in kept)))
                handler.load_state_dict({"_saved": kept})


def git_commit(path: Path) -> str | None:
    """The commit of the repository holding ``path`` (lineage for output models), or None."""
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _check_config(cfg: DictConfig) -> None:
    t = cfg.train
    for key in ("max_epochs", "batch_size", "samples_per_volume", "val_interval"):
        if not isinstance(t[key], int) or t[key] < 1:
            raise ConfigError(f"train.{key}", f"must be a positive integer, got {t[key]!r}")
    if len(t.patch_size) != 3 or any(int(s) < 8 for s in t.patch_size):
        raise ConfigError("train.patch_size", f"must be three sizes of at least 8 voxels, got {list(t.patch_size)}")


@step("train")
def run(cfg: DictConfig, ctx: StepContext) -> TrainResult:
    """Train on the manifest's train split, validate on its val split; return the best checkpoint and metrics.

    With ``train.distributed.nproc`` > 1 the work is shared by that many data-parallel processes.
    """
    _check_config(cfg)
    _fetch_earlier_attempt(cfg, ctx.dir / "checkpoints")
    nproc = int(cfg.train.distributed.nproc)
    if nproc > 1:
        backend = distributed.resolve_backend(str(cfg.train.distributed.backend), runtime.select_device(str(cfg.device)),
                                              key="train.distributed.backend")
        return distributed.run_data_parallel(train_rank, cfg, ctx, nproc, backend)
    return train_rank(cfg, ctx)


def _fetch_earlier_attempt(cfg: DictConfig, folder: Path) -> None:
    """``train.resume=auto`` with ``train.resume_from_task``: when this machine has no epoch checkpoint (a
    retry on a fresh agent checkout), download the checkpoints that earlier attempt's task captured."""
    source = cfg.train.resume_from_task
    if str(cfg.train.resume) != "auto" or not source or ckpt.epoch_checkpoints(folder):
        return
    fetched = clearml_io.download_attempt_checkpoints(str(source), folder)
    log.info("no checkpoint in %s; fetched %s from the earlier attempt %s", folder, [p.name for p in fetched], source)


def train_rank(cfg: DictConfig, ctx: StepContext, rank: int = 0, world_size: int = 1) -> TrainResult:
    """The training recipe of one rank (the only one when not distributed); rank 0 writes and reports."""
    tcfg, lead = cfg.train, rank == 0
    device = distributed.rank_device(runtime.select_device(str(cfg.device)), rank, key="train.distributed.nproc")
    runtime.seed_everything(int(cfg.seed))
    manifest, dataset = load_manifest(ctx.input("dataset_id"), ctx.input("manifest"), int(cfg.data.num_classes))

    train_loader, val_loader = build_loaders(cfg, manifest, ctx.dir / "cache", rank, world_size)
    net = models.to_device(models.build_network(cfg.model), device, bool(tcfg.channels_last))
    if world_size > 1:
        net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = models.build_optimizer(tcfg.optimizer, net.parameters(), key="train.optimizer")
    scheduler = models.build_scheduler(tcfg.scheduler, optimizer, key="train.scheduler")

    evaluator = _validator(cfg, manifest, net, val_loader, device)
    trainer = SupervisedTrainer(
        device=device, max_epochs=int(tcfg.max_epochs), train_data_loader=train_loader, network=net,
        optimizer=optimizer, loss_function=models.build_loss(tcfg.loss, key="train.loss"), inferer=SimpleInferer(),
        amp=bool(tcfg.amp) and device.type == "cuda", train_handlers=_train_handlers(cfg, evaluator, scheduler))
    if lead:
        log.info("training %s on %s x%d (amp=%s): %d train / %d val cases, %d epochs", cfg.model.name, device,
                 world_size, trainer.amp, len(train_loader.dataset), len(val_loader.dataset), tcfg.max_epochs)
        DataWaitTimer().attach(trainer)
        _attach_progress(trainer, evaluator, int(tcfg.max_epochs))
        _attach_tracking(trainer, evaluator, ctx.dir / "tensorboard", ctx.task is not None, bool(tcfg.log_images))

    EpochSeeding(int(cfg.seed), train_loader.dataset, rank).attach(trainer)
    folder = ctx.dir / "checkpoints"
    checkpoints = _attach_checkpoints(trainer, evaluator, folder, int(tcfg.checkpoint.keep_last), net, optimizer,
                                      scheduler)
    resume = ckpt.find_resume_checkpoint(tcfg.resume, folder, int(tcfg.max_epochs))
    if resume is not None:
        log.info("resuming from %s (epoch %d)", *resume)
        CheckpointLoader(load_path=str(resume[0]), load_dict=checkpoints.resume_objects(),
                         map_location=device).attach(trainer)  # type: ignore[arg-type]  # (torch.load accepts a device)
        trainer.add_event_handler(Events.STARTED, checkpoints.forget_missing_files)
    try:
        with runtime.explain_out_of_memory(cfg, "training", device, training=True), \
                metadata_off_when_cached(train_loader.dataset, val_loader.dataset) as plain:
            if lead:
                log.info("data: %s (train), %s (val); %s", type(train_loader.dataset).__name__,
                         type(val_loader.dataset).__name__, "plain tensors after the cache (MONAI metadata off)"
                         if plain else "MONAI metadata on (the deterministic transforms run during training)")
            trainer.run()
    except BaseException:  # an error, Ctrl-C or SIGTERM: say where the checkpoints are, then let it end the step
        if lead:
            log.error("training stopped at epoch %d; checkpoints kept in %s: %s (resume with train.resume=auto)",
                      trainer.state.epoch, folder, [p.name for p in ckpt.epoch_checkpoints(folder)])
        raise
    if not lead:
        return TrainResult()
    return _result(cfg, ctx, manifest, dataset, trainer, evaluator, checkpoints, resume[1] if resume else None, device,
                   world_size)


def build_loaders(cfg: DictConfig, manifest: Manifest, cache_dir: Path, rank: int, world_size: int) -> tuple[Any, Any]:
    """Train loader (random patches) and val loader (whole volumes); each rank caches only its partition."""
    tcfg = cfg.train
    base = deterministic_transforms(cfg.data)
    train_records, val_records = manifest.records("train"), manifest.records("val")
    if world_size > 1:
        for split, records in (("train", train_records), ("val", val_records)):
            if len(records) < world_size:
                raise ConfigError("train.distributed.nproc", f"{world_size} processes need at least {world_size} "
                                  f"{split} cases each to share, but the {split} split has {len(records)}")
        train_records = partition_dataset(train_records, num_partitions=world_size, shuffle=True, seed=int(cfg.seed),
                                          even_divisible=True)[rank]
        val_records = partition_dataset(val_records, num_partitions=world_size, even_divisible=False)[rank]
    train_ds = make_dataset(train_records, Compose([base, training_transforms(tcfg, "train.augment")]), tcfg.cache,
                            cache_dir, key="train.cache")
    val_ds = make_dataset(val_records, base, tcfg.cache, cache_dir, key="train.cache")
    return (make_loader(train_ds, int(tcfg.batch_size), shuffle=True, num_workers=int(tcfg.num_workers)),
            make_loader(val_ds, 1, shuffle=False, num_workers=int(tcfg.num_workers)))


def _validator(cfg: DictConfig, manifest: Manifest, net: torch.nn.Module, loader: Any,
               device: torch.device) -> SupervisedEvaluator:
    """Whole-volume validation with the configured inferer: mean Dice over foreground classes and per class."""
    num_classes = manifest.num_classes
    post = Compose([AsDiscreted(keys="pred", argmax=True, to_onehot=num_classes),
                    AsDiscreted(keys="label", to_onehot=num_classes)])
    per_class: dict[str, Any] = {f"val_dice_{name}": MeanDice(include_background=True, output_transform=_channel(int(c)))
                 for c, name in manifest.labels.items() if int(c) > 0}
    return SupervisedEvaluator(
        device=device, val_data_loader=loader, network=net, inferer=models.build_inferer(cfg.inference),
        postprocessing=post, amp=bool(cfg.inference.amp) and device.type == "cuda",
        key_val_metric={KEY_METRIC: MeanDice(include_background=False, output_transform=from_engine(["pred", "label"]))},
        additional_metrics=per_class)


class ValidationRecord:
    """The validator's best metric and its epoch as checkpoint state: MONAI keeps them on the engine's state,
    which ignite's checkpoints do not store, so a resumed run would otherwise forget the earlier best."""

    def __init__(self, validator: Engine) -> None:
        self.validator = validator

    def state_dict(self) -> dict[str, float | int]:
        state: Any = self.validator.state
        return {"best_metric": float(state.best_metric), "best_metric_epoch": int(state.best_metric_epoch)}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        self.validator.state.best_metric = float(state["best_metric"])  # type: ignore[attr-defined]
        self.validator.state.best_metric_epoch = int(state["best_metric_epoch"])  # type: ignore[attr-defined]


class PeriodicValidation:
    """Run the validator every ``interval`` epochs and after the last one (MONAI's ``ValidationHandler``
    skips the last epoch when it is not a multiple of the interval)."""

    def __init__(self, validator: Engine, interval: int) -> None:
        self.validator, self.interval = validator, interval

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED(event_filter=self._due), self)

    def _due(self, engine: Engine, epoch: int) -> bool:
        return epoch % self.interval == 0 or epoch == engine.state.max_epochs

    def __call__(self, engine: Engine) -> None:
        self.validator.run(engine.state.epoch)  # type: ignore[arg-type]  # (MONAI's Workflow.run takes the global epoch)


def _train_handlers(cfg: DictConfig, evaluator: SupervisedEvaluator, scheduler: Any) -> list[Any]:
    """LR schedule (per epoch) and validation every ``train.val_interval`` epochs and on the last."""
    handlers: list[Any] = [PeriodicValidation(evaluator, int(cfg.train.val_interval))]
    if scheduler is not None:
        handlers.insert(0, LrScheduleHandler(scheduler, print_lr=False))
    return handlers


def _attach_checkpoints(trainer: Engine, evaluator: Engine, folder: Path, keep_last: int, net: torch.nn.Module,
                        optimizer: torch.optim.Optimizer, scheduler: Any) -> Checkpoints:
    """Last ``train.checkpoint.keep_last`` epoch checkpoints and the best by validation Dice, each written
    atomically (``checkpoints.AtomicCheckpointSaver``).

    The epoch checkpoints carry both handlers' own bookkeeping (which files they keep), so a resumed run
    keeps honouring ``keep_last`` and the single best file.
    """
    clearml_compat.register_checkpoints_by_final_path()
    objects: dict[str, Any] = {"net": net, "optimizer": optimizer, "trainer": trainer,
                               "validation": ValidationRecord(evaluator)}
    if scheduler is not None:
        objects["lr_scheduler"] = scheduler
    epoch_of = lambda *_: trainer.state.epoch  # noqa: E731  (checkpoints are numbered by training epoch)
    best = Checkpoint(objects, ckpt.AtomicCheckpointSaver(folder), BEST_PREFIX, n_saved=1, score_name=KEY_METRIC,
                      score_function=lambda engine: engine.state.metrics[KEY_METRIC], global_step_transform=epoch_of)
    evaluator.add_event_handler(Events.COMPLETED, best)
    last = Checkpoint({**objects, "best_checkpointer": best}, ckpt.AtomicCheckpointSaver(folder), CHECKPOINT_PREFIX,
                      n_saved=keep_last, global_step_transform=epoch_of, include_self=True)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, last)
    return Checkpoints(last=last, best=best, objects=objects)


def _channel(c: int) -> Any:
    """Output transform picking class channel ``c`` of one-hot predictions and labels."""
    def pick(output: list[dict[str, torch.Tensor]]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return [o["pred"][c:c + 1] for o in output], [o["label"][c:c + 1] for o in output]
    return pick


def _attach_progress(trainer: Engine, evaluator: Engine, max_epochs: int) -> None:
    """One line per epoch: loss, LR, validation Dice when validated, epoch time (ignite's own timing) and the
    share of it spent waiting for data (``DataWaitTimer``)."""

    @trainer.on(Events.EPOCH_STARTED)
    def _record_lr(engine: Engine) -> None:  # the LR this epoch trains with (also a ClearML scalar)
        engine.state.lr = engine.optimizer.param_groups[0]["lr"]  # type: ignore[attr-defined]

    @trainer.on(Events.EPOCH_COMPLETED)
    def _line(engine: Engine) -> None:
        output: Any = engine.state.output
        loss = output[0]["loss"] if output else float("nan")
        val = evaluator.state.metrics.get(KEY_METRIC) if evaluator.state.epoch == engine.state.epoch else None
        log.info("epoch %d/%d  loss %.4f  lr %.2e%s  (%.1fs, data wait %.0f%%)", engine.state.epoch, max_epochs,
                 float(loss), engine.state.lr,  # type: ignore[attr-defined]  # (set at EPOCH_STARTED above)
                 f"  val mean Dice {val:.4f}" if val is not None else "",
                 engine.state.times.get(Events.EPOCH_COMPLETED.name) or 0.0,
                 100 * engine.state.data_wait)  # type: ignore[attr-defined]  # (DataWaitTimer)


def _attach_tracking(trainer: Engine, evaluator: Engine, log_dir: Path, clearml: bool, log_images: bool) -> None:
    """Stats and image handlers: ClearML's when a task exists, else their TensorBoard parents (same output)."""
    stats_cls, image_cls = (ClearMLStatsHandler, ClearMLImageHandler) if clearml else \
        (TensorBoardStatsHandler, TensorBoardImageHandler)
    trainer_epoch = lambda *_: trainer.state.epoch  # noqa: E731
    stats_cls(log_dir=str(log_dir), tag_name="train_loss", output_transform=from_engine(["loss"], first=True),
              state_attributes=["lr", "data_wait"]).attach(trainer)
    stats_cls(log_dir=str(log_dir), output_transform=lambda _: None, global_epoch_transform=trainer_epoch,
              iteration_log=False).attach(evaluator)
    if log_images:
        image_handler = image_cls(
            log_dir=str(log_dir), batch_transform=from_engine(["image", "label"]),
            output_transform=lambda output: [torch.argmax(o["pred"], dim=0, keepdim=True) for o in output],
            global_iter_transform=trainer_epoch, frame_dim=-1, max_channels=1)
        evaluator.add_event_handler(Events.EPOCH_COMPLETED, image_handler)


def _result(cfg: DictConfig, ctx: StepContext, manifest: Manifest, dataset: dict[str, Any], trainer: Engine,
            evaluator: Engine, checkpoints: Checkpoints, resumed_from_epoch: int | None, device: torch.device,
            world_size: int) -> TrainResult:
    state: Any = evaluator.state  # MONAI's Workflow adds best_metric and best_metric_epoch
    output: Any = trainer.state.output
    best_path = Path(checkpoints.best.last_checkpoint).resolve() if checkpoints.best.last_checkpoint else None
    last_path = Path(checkpoints.last.last_checkpoint).resolve() if checkpoints.last.last_checkpoint else None
    result = TrainResult(
        best_checkpoint=str(best_path) if best_path else None, last_checkpoint=str(last_path) if last_path else None,
        best_val_mean_dice=float(state.best_metric), best_epoch=int(state.best_metric_epoch),
        epochs=int(trainer.state.epoch),
        resumed_from_epoch=resumed_from_epoch,
        final_loss=float(output[0]["loss"]) if output else None,
        device=str(device), world_size=world_size, iterations_per_epoch=int(trainer.state.epoch_length or 0))
    registered = _register_models(cfg, ctx.task, manifest, dataset, result, checkpoints.last) if ctx.task else {}
    if ctx.task is not None:
        result["output_models"] = registered
    online = ctx.task is not None and not ctx.task.is_offline()  # an offline model id means nothing elsewhere
    result["outputs"] = {"model_id": registered.get("best") if online else None, "val_mean_dice": round(result["best_val_mean_dice"], 5),
                         "checkpoint": result["best_checkpoint"]}
    result["summary"] = [f"best val mean Dice {result['best_val_mean_dice']:.4f} at epoch {result['best_epoch']}",
                         f"best model: {result['best_checkpoint']}"]
    log.info("%s; checkpoint %s", result["summary"][0], result["best_checkpoint"])
    return result


def _register_models(cfg: DictConfig, task: Task, manifest: Manifest, dataset: dict[str, Any],
                     result: TrainResult, last: Checkpoint) -> dict[str, str]:
    """Register the best checkpoint (and, offline, the kept epoch checkpoints) as output models with lineage.

    The best model's metadata holds what is needed to trace and rebuild it: git commit, the prepared
    Dataset's id and version and the raw Dataset version it was prepared from (data=clearml_dataset),
    seed, validation Dice; its configuration is the resolved run config.
    """
    val_dice = round(result["best_val_mean_dice"], 5)
    metadata = {"val_mean_dice": val_dice, "best_epoch": result["best_epoch"], "seed": int(cfg.seed),
                "git_commit": git_commit(Path(__file__).parent) or "unknown", "model": str(cfg.model.name),
                "dataset_id": dataset.get("id", ""), "dataset_version": dataset.get("version", ""),
                "dataset_path": dataset.get("path", ""),
                "raw_dataset_id": manifest.source.get("dataset_id", ""),
                "raw_dataset_version": manifest.source.get("dataset_version", ""), "pipeline_run": _pipeline_run(task)}
    tags = ["best", f"val_dice={val_dice:.4f}", *(f"{k}={metadata[k]}" for k in ("dataset_id", "pipeline_run")
                                                  if metadata[k])]
    config = OmegaConf.to_container(cfg, resolve=True)
    labels = {v: int(k) for k, v in manifest.labels.items()}
    registered = {}
    if result["best_checkpoint"]:
        model = tracking.register_model(task, Path(result["best_checkpoint"]), f"{task.name} best", tags=tags,
                                        metadata=metadata, config=config, labels=labels,  # type: ignore[arg-type]
                                        stored_as=clearml_compat.BEST_MODEL_FILE)
        registered["best"] = model.id
    if task.is_offline():  # online, ClearML's torch.save binding already captured these
        for _, filename in last.state_dict()["_saved"]:
            path = Path(last.save_handler.dirname) / filename
            if path.is_file():
                model = tracking.register_model(task, path, f"{task.name} {path.stem}", tags=["checkpoint"],
                                                config=config, labels=labels)  # type: ignore[arg-type]
                registered[path.stem] = model.id
    return registered


def _pipeline_run(task: Task) -> str:
    """Id of the pipeline (controller task) that launched this step, or "" when run on its own."""
    return task.parent or "" if not task.is_offline() else ""


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    logging.getLogger("ignite.engine").setLevel(logging.WARNING)  # the per-epoch line replaces its chatter
    sys.exit(run_step(cfg, "train", run))


if __name__ == "__main__":
    main()
