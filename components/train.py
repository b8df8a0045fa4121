"""Train step: a MONAI/ignite supervised trainer with sliding-window validation, logged to ClearML.

- network, loss, optimizer and LR schedule from config (``model.net``, ``train.loss`` ...);
- random foreground/background patches plus ``train.augment``; the deterministic part of the transforms
  is cached (``train.cache``);
- validation every ``train.val_interval`` epochs (and on the last) with sliding-window inference and
  mean Dice over foreground classes;
- ClearML: ``ClearMLStatsHandler`` (loss per iteration, LR per epoch, validation Dice per epoch),
  ``ClearMLImageHandler`` (image, label, prediction of a validation case as GIFs), ignite
  ``ModelCheckpoint`` (last N + best by validation Dice; network, optimizer, scheduler and trainer state
  so a run can resume). Online, ClearML captures every checkpoint as an output model; the best one is
  also registered explicitly with its metrics, and offline the checkpoints are registered with
  ``OutputModel`` so the offline session carries them.

    python components/train.py train.max_epochs=50 model=segresnet
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script (python components/train.py, or by a clearml-agent)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # imported before clearml.Task.init so that torch.save is captured as output models
import hydra
from clearml import Task
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, ModelCheckpoint
from monai.data import DistributedSampler
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import (ClearMLImageHandler, ClearMLStatsHandler, LrScheduleHandler, MeanDice,
                            TensorBoardImageHandler, TensorBoardStatsHandler, from_engine)
from monai.inferers import SimpleInferer
from monai.transforms import AsDiscreted, Compose
from omegaconf import DictConfig, OmegaConf
from torch.nn.parallel import DistributedDataParallel

from components.common import clearml_io, distributed, models, runtime, tracking
from components.common.data import make_dataset, make_loader
from components.common.entry import run_step
from components.common.errors import ConfigError
from components.common.inputs import load_manifest
from components.common.manifest import Manifest
from components.common.transforms import deterministic_transforms, training_transforms

log = logging.getLogger("train")
logging.getLogger("ignite.engine").setLevel(logging.WARNING)  # our per-epoch line replaces its per-epoch chatter

CHECKPOINT_PREFIX = ""
BEST_PREFIX = "best"
KEY_METRIC = "val_mean_dice"
# file name of the registered best model; its entry on the task is named after it ("best")
BEST_MODEL_FILE = "best.pt"


def git_commit(path: Path) -> str | None:
    """The commit of the repository holding ``path`` (lineage for output models), or None."""
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def find_resume_checkpoint(resume: Any, checkpoint_dir: Path) -> Path | None:
    """``train.resume``: null (fresh start), ``auto`` (newest epoch checkpoint, if any) or a file path."""
    if resume in (None, "", False):
        return None
    if str(resume) == "auto":
        found = sorted(checkpoint_dir.glob("checkpoint_*.pt"), key=lambda p: p.stat().st_mtime)
        for path in reversed(found):  # a run killed while saving may leave the newest file truncated
            try:
                torch.load(path, map_location="cpu", weights_only=False)
                return path
            except Exception as e:  # torch raises several types for truncated files
                log.warning("checkpoint %s is unreadable (%s); trying an older one", path, e)
        return None
    path = Path(str(resume)).expanduser()
    if not path.is_file():
        raise ConfigError("train.resume", f"checkpoint '{path}' does not exist")
    return path


def _adopt_existing_checkpoints(last: ModelCheckpoint, best: ModelCheckpoint, ckpt_dir: Path) -> None:
    """Make resumed checkpoint handlers aware of the files already saved, so that ``keep_last`` and the
    single best checkpoint still hold across the interruption (ignite's handlers keep this list in memory)."""
    epochs = sorted((int(m.group(1)), p.name) for p in ckpt_dir.glob("checkpoint_*.pt")
                    if (m := re.fullmatch(r"checkpoint_(\d+)\.pt", p.name)))
    last.load_state_dict({"_saved": epochs[-last.n_saved:] if last.n_saved else epochs})
    scored = sorted((float(m.group(1)), p.name) for p in ckpt_dir.glob(f"{BEST_PREFIX}_*.pt")
                    if (m := re.search(rf"{KEY_METRIC}=([0-9.]+)\.pt$", p.name)))
    best.load_state_dict({"_saved": scored[-1:]})


def _check_config(cfg: DictConfig) -> None:
    t = cfg.train
    for key in ("max_epochs", "batch_size", "samples_per_volume", "val_interval"):
        if not isinstance(t[key], int) or t[key] < 1:
            raise ConfigError(f"train.{key}", f"must be a positive integer, got {t[key]!r}")
    if len(t.patch_size) != 3 or any(int(s) < 8 for s in t.patch_size):
        raise ConfigError("train.patch_size", f"must be three sizes of at least 8 voxels, got {list(t.patch_size)}")


def run(cfg: DictConfig, task: Task | None = None) -> dict[str, Any]:
    """Train on the manifest's train split, validate on its val split; return the best checkpoint and metrics.

    With ``train.distributed.nproc`` > 1 the work is shared by that many data-parallel processes.
    """
    _check_config(cfg)
    nproc = int(cfg.train.distributed.nproc)
    if nproc > 1:
        backend = distributed.resolve_backend(str(cfg.train.distributed.backend), runtime.select_device(str(cfg.device)))
        return distributed.run_data_parallel(train_rank, cfg, task, nproc, backend)
    return train_rank(cfg, task)


def train_rank(cfg: DictConfig, task: Task | None, rank: int = 0, world_size: int = 1) -> dict[str, Any]:
    """The training loop of one rank (the only one when not distributed); rank 0 writes and reports."""
    started = time.time()
    lead = rank == 0
    tcfg = cfg.train
    out = runtime.step_dir(cfg, "train")
    if lead:
        runtime.save_resolved_config(cfg, out)
    ckpt_dir = out / "checkpoints"
    ckpt_dir.mkdir(exist_ok=True)
    device = distributed.rank_device(runtime.select_device(str(cfg.device)), rank)
    runtime.seed_everything(int(cfg.seed))

    manifest, dataset = load_manifest(cfg)
    num_classes = manifest.num_classes
    base = deterministic_transforms(cfg.data)
    train_ds = make_dataset(manifest.records("train"), Compose([base, training_transforms(tcfg)]), tcfg.cache,
                            out / "cache")
    val_ds = make_dataset(manifest.records("val"), base, tcfg.cache, out / "cache")
    train_sampler = DistributedSampler(train_ds, shuffle=True) if world_size > 1 else None
    val_sampler = DistributedSampler(val_ds, shuffle=False, even_divisible=False) if world_size > 1 else None
    train_loader = make_loader(train_ds, int(tcfg.batch_size), shuffle=True, num_workers=int(tcfg.num_workers),
                               sampler=train_sampler)
    val_loader = make_loader(val_ds, 1, shuffle=False, num_workers=int(tcfg.num_workers), sampler=val_sampler)

    net = models.build_network(cfg.model).to(device)
    if world_size > 1:
        net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    loss_fn = models.build_loss(tcfg)
    optimizer = models.build_optimizer(tcfg, net.parameters())
    scheduler = models.build_scheduler(tcfg, optimizer)
    amp = bool(tcfg.amp) and device.type == "cuda"
    if lead:
        log.info("training %s on %s x%d (amp=%s): %d train / %d val cases, %d epochs", cfg.model.name, device,
                 world_size, amp, len(train_ds), len(val_ds), tcfg.max_epochs)

    post = Compose([AsDiscreted(keys="pred", argmax=True, to_onehot=num_classes),
                    AsDiscreted(keys="label", to_onehot=num_classes)])
    class_names = {int(k): v for k, v in manifest.labels.items() if int(k) > 0}
    per_class = {f"val_dice_{name}": MeanDice(include_background=True, output_transform=_channel(c))
                 for c, name in class_names.items()}
    evaluator = SupervisedEvaluator(
        device=device, val_data_loader=val_loader, network=net, inferer=models.build_inferer(cfg.inference),
        postprocessing=post, amp=amp,
        key_val_metric={KEY_METRIC: MeanDice(include_background=False, output_transform=from_engine(["pred", "label"]))},
        additional_metrics=per_class)
    trainer = SupervisedTrainer(
        device=device, max_epochs=int(tcfg.max_epochs), train_data_loader=train_loader, network=net,
        optimizer=optimizer, loss_function=loss_fn, inferer=SimpleInferer(), amp=amp)

    @trainer.on(Events.EPOCH_STARTED)
    def _record_lr(engine: Engine) -> None:
        engine.state.lr = optimizer.param_groups[0]["lr"]
        if train_sampler is not None:
            train_sampler.set_epoch(engine.state.epoch)

    if scheduler is not None:
        LrScheduleHandler(scheduler, print_lr=False).attach(trainer)
    max_epochs, interval = int(tcfg.max_epochs), int(tcfg.val_interval)
    trainer.add_event_handler(
        Events.EPOCH_COMPLETED(event_filter=lambda _, e: e % interval == 0 or e == max_epochs),
        lambda engine: evaluator.run(engine.state.epoch))
    if lead:
        _attach_progress(trainer, evaluator, max_epochs)
        _attach_tracking(trainer, evaluator, out / "tensorboard", task is not None, bool(tcfg.log_images))

    to_save = {"net": net, "optimizer": optimizer, "trainer": trainer}
    if scheduler is not None:
        to_save["lr_scheduler"] = scheduler
    epoch_of = lambda *_: trainer.state.epoch  # noqa: E731  (checkpoints are numbered by training epoch)
    # atomic=False: ignite's atomic save writes a temp file and renames it, so ClearML's torch.save binding
    # would name the captured models after the temp file; the previous checkpoints stay as a fallback.
    last = ModelCheckpoint(str(ckpt_dir), CHECKPOINT_PREFIX, n_saved=int(tcfg.checkpoint.keep_last),
                           require_empty=False, global_step_transform=epoch_of, atomic=False)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, last, to_save)
    best = ModelCheckpoint(str(ckpt_dir), BEST_PREFIX, n_saved=1, require_empty=False, atomic=False,
                           score_name=KEY_METRIC,
                           score_function=lambda engine: engine.state.metrics[KEY_METRIC],
                           global_step_transform=epoch_of)
    evaluator.add_event_handler(Events.COMPLETED, best, to_save)

    resume_from = find_resume_checkpoint(tcfg.resume, ckpt_dir)
    if resume_from is not None:
        log.info("resuming from %s", resume_from)
        Checkpoint.load_objects(to_load=to_save, checkpoint=torch.load(resume_from, map_location=device,
                                                                        weights_only=False))
        trainer.state.max_epochs = max_epochs  # the config may extend a finished run
        _adopt_existing_checkpoints(last, best, ckpt_dir)
    start_epoch = int(trainer.state.epoch)
    try:
        trainer.run()
    except Exception:
        if not lead:
            raise
        saved = sorted(str(p) for p in ckpt_dir.glob("*.pt"))
        log.error("training failed; checkpoints kept in %s: %s (resume with train.resume=auto)", ckpt_dir, saved)
        raise

    if not lead:
        return {}
    best_path = Path(best.last_checkpoint) if best.last_checkpoint else None
    result = {
        "best_checkpoint": str(best_path.resolve()) if best_path else None,
        "last_checkpoint": str(Path(last.last_checkpoint).resolve()) if last.last_checkpoint else None,
        "best_val_mean_dice": float(evaluator.state.best_metric),
        "best_epoch": int(evaluator.state.best_metric_epoch),
        "epochs": int(trainer.state.epoch),
        "resumed_from_epoch": start_epoch if resume_from is not None else None,
        "final_loss": float(trainer.state.output[0]["loss"]) if trainer.state.output else None,
        "device": str(device),
        "world_size": world_size,
        "iterations_per_epoch": int(trainer.state.epoch_length or 0),
        "seconds": round(time.time() - started, 2),
        "clearml_task_id": task.id if task else None,
        "clearml_offline_session": tracking.offline_session_zip(task) if task else None,
    }
    if task is not None:
        result["output_models"] = _register_models(cfg, task, manifest, dataset, result, last)
        clearml_io.set_outputs(task, model_id=result["output_models"].get("best"),
                               val_mean_dice=round(result["best_val_mean_dice"], 5))
    runtime.write_result(out, result)
    log.info("best val mean Dice %.4f at epoch %d; checkpoint %s", result["best_val_mean_dice"],
             result["best_epoch"], result["best_checkpoint"])
    return result


def _channel(c: int):
    """Output transform picking class channel ``c`` of one-hot predictions and labels."""
    def pick(output: list[dict[str, torch.Tensor]]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return [o["pred"][c:c + 1] for o in output], [o["label"][c:c + 1] for o in output]
    return pick


def _attach_progress(trainer: Engine, evaluator: Engine, max_epochs: int) -> None:
    epoch_start = {"t": time.time()}

    @trainer.on(Events.EPOCH_STARTED)
    def _start(_: Engine) -> None:
        epoch_start["t"] = time.time()

    @trainer.on(Events.EPOCH_COMPLETED)
    def _line(engine: Engine) -> None:
        loss = engine.state.output[0]["loss"] if engine.state.output else float("nan")
        val = evaluator.state.metrics.get(KEY_METRIC) if evaluator.state.epoch == engine.state.epoch else None
        log.info("epoch %d/%d  loss %.4f  lr %.2e%s  (%.1fs)", engine.state.epoch, max_epochs, float(loss),
                 engine.state.lr, f"  val mean Dice {val:.4f}" if val is not None else "", time.time() - epoch_start["t"])


def _attach_tracking(trainer: Engine, evaluator: Engine, log_dir: Path, clearml: bool, log_images: bool) -> None:
    """Stats and image handlers: ClearML's when a task exists, else their TensorBoard parents (same output)."""
    stats_cls, image_cls = (ClearMLStatsHandler, ClearMLImageHandler) if clearml else \
        (TensorBoardStatsHandler, TensorBoardImageHandler)
    trainer_epoch = lambda *_: trainer.state.epoch  # noqa: E731
    stats_cls(log_dir=str(log_dir), tag_name="train_loss", output_transform=from_engine(["loss"], first=True),
              state_attributes=["lr"]).attach(trainer)
    stats_cls(log_dir=str(log_dir), output_transform=lambda _: None, global_epoch_transform=trainer_epoch,
              iteration_log=False).attach(evaluator)
    if log_images:
        image_handler = image_cls(
            log_dir=str(log_dir), batch_transform=from_engine(["image", "label"]),
            output_transform=lambda output: [torch.argmax(o["pred"], dim=0, keepdim=True) for o in output],
            global_iter_transform=trainer_epoch, frame_dim=-1, max_channels=1)
        evaluator.add_event_handler(Events.EPOCH_COMPLETED, image_handler)


def _register_models(cfg: DictConfig, task: Task, manifest: Manifest, dataset: dict[str, Any],
                     result: dict[str, Any], last: ModelCheckpoint) -> dict[str, str]:
    """Register the best checkpoint (and, offline, the kept epoch checkpoints) as output models with lineage.

    The best model's metadata holds what is needed to trace and rebuild it: git commit, dataset id and
    version, seed, validation Dice; its configuration is the resolved run config.
    """
    val_dice = round(result["best_val_mean_dice"], 5)
    metadata = {"val_mean_dice": val_dice, "best_epoch": result["best_epoch"], "seed": int(cfg.seed),
                "git_commit": git_commit(Path(__file__).parent) or "unknown", "model": str(cfg.model.name),
                "dataset_id": dataset.get("id", ""), "dataset_version": dataset.get("version", ""),
                "dataset_path": dataset.get("path", ""), "pipeline_run": _pipeline_run(task)}
    tags = ["best", f"val_dice={val_dice:.4f}", *(f"{k}={metadata[k]}" for k in ("dataset_id", "pipeline_run")
                                                  if metadata[k])]
    config = OmegaConf.to_container(cfg, resolve=True)
    labels = {v: int(k) for k, v in manifest.labels.items()}
    registered = {}
    if result["best_checkpoint"]:
        model = tracking.register_model(task, Path(result["best_checkpoint"]), f"{task.name} best", tags=tags,
                                        metadata=metadata, config=config, labels=labels,
                                        stored_as=BEST_MODEL_FILE)
        registered["best"] = model.id
    if task.is_offline():  # online, ClearML's torch.save binding already captured these
        for saved in last._saved:
            path = Path(last.save_handler.dirname) / saved.filename
            if path.is_file():
                model = tracking.register_model(task, path, f"{task.name} {path.stem}", tags=["checkpoint"],
                                                config=config, labels=labels)
                registered[path.stem] = model.id
    return registered


def _pipeline_run(task: Task) -> str:
    """Id of the pipeline (controller task) that launched this step, or "" when run on its own."""
    return task.parent or "" if not task.is_offline() else ""


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    run_step(cfg, "train", run)


if __name__ == "__main__":
    main()
