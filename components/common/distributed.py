"""Data-parallel training on N local processes with ``torch.distributed`` (NCCL on GPUs, gloo on CPU).

The calling process is rank 0: it keeps the ClearML task, so only rank 0 reports and registers models;
ranks 1..N-1 are spawned processes that train on their partition of the data and report nothing.
Ignite's ``ModelCheckpoint`` writes on rank 0 only, and MONAI's metric handlers gather across ranks.

Why not ``ignite.distributed.Parallel(nproc_per_node=N)`` or torchrun: both start *every* rank as a new
process, so rank 0 would not be the process that holds the step's ClearML task (created by ``Task.init``
in the Hydra entry point, and under an agent the process the agent watches); its scalars, debug images
and captured checkpoints would then go nowhere. Spawning only ranks 1..N-1 keeps rank 0 in that process.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import socket
import sys
from dataclasses import replace
from typing import Any, Callable

import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf

from .errors import ConfigError
from .runtime import die_with_parent

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 120.0


def resolve_backend(requested: str, device: torch.device, key: str) -> str:
    """``auto`` -> ``nccl`` on CUDA, ``gloo`` on CPU; an explicit backend is checked against the device.
    ``key`` is the config key of ``requested``, for errors."""
    if requested == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if requested == "nccl" and device.type != "cuda":
        raise ConfigError(key, "nccl needs CUDA devices; use gloo (or auto) on CPU")
    if requested not in ("nccl", "gloo"):
        raise ConfigError(key, f"unknown backend '{requested}' (auto, nccl or gloo)")
    return requested


def rank_device(device: torch.device, rank: int, key: str) -> torch.device:
    """One GPU per rank (``cuda:<rank>``); CPU ranks share the CPU. ``key`` is the config key of the
    number of processes, for errors."""
    if device.type != "cuda":
        return device
    if rank >= torch.cuda.device_count():
        raise ConfigError(key, f"rank {rank} has no GPU: {torch.cuda.device_count()} available")
    torch.cuda.set_device(rank)
    return torch.device("cuda", rank)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_threads_per_rank(world_size: int) -> int:
    """The CPU threads each rank computes with: this process's torch threads shared among the ranks. Each
    rank would otherwise start as many threads as there are cores, and N ranks on the same cores slow each
    other down (on 2 cores, two ranks of 2 threads each trained an epoch 3x slower than one process); torchrun
    sets OMP_NUM_THREADS=1 for the same reason."""
    return max(1, torch.get_num_threads() // world_size)


def _init(rank: int, world_size: int, backend: str, port: int, threads: int) -> None:
    if backend == "gloo":
        torch.set_num_threads(threads)
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)


def _child(fn: Callable[..., Any], rank: int, world_size: int, backend: str, port: int, threads: int, cfg: dict,
           ctx: Any) -> None:
    logging.basicConfig(level=logging.WARNING)
    die_with_parent()  # a rank never outlives rank 0 (the step's process)
    _init(rank, world_size, backend, port, threads)
    try:
        config = OmegaConf.create(cfg)
        fn(config, replace(ctx, cfg=config, task=None), rank=rank, world_size=world_size)
        dist.barrier()  # every rank is done before any tears its process group down
    finally:
        dist.destroy_process_group()
    # End without the interpreter's teardown. After all its work, a rank was seen to abort there under CPU
    # load ("terminate called without an active exception", exit code -6: a C++ thread of torch/gloo still
    # joinable when static objects are destroyed), which failed a finished run. A failure above raises
    # instead, and multiprocessing reports it as exit code 1.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_data_parallel(fn: Callable[..., Any], cfg: DictConfig, ctx: Any, nproc: int, backend: str) -> Any:
    """Run ``fn(cfg, ctx, rank=, world_size=)`` on ``nproc`` ranks; returns rank 0's result. ``ctx`` is the
    step's context (a dataclass); the other ranks get it without the ClearML task.

    ``fn`` must be a module-level function (the other ranks are started with the ``spawn`` method). The
    config is passed resolved, so time-based interpolations give every rank the same values.
    """
    resolved = OmegaConf.to_container(cfg, resolve=True)
    port = _free_port()
    spawn = mp.get_context("spawn")
    untracked = replace(ctx, cfg=None, task=None)
    threads, threads_before = cpu_threads_per_rank(nproc), torch.get_num_threads()
    children = [spawn.Process(target=_child, args=(fn, rank, nproc, backend, port, threads, resolved, untracked),
                              name=f"train-rank{rank}") for rank in range(1, nproc)]
    for p in children:
        p.start()
    log.info("data-parallel training on %d processes (%s)%s", nproc, backend,
             f", {threads} CPU thread(s) each" if backend == "gloo" else "")
    failed = False
    try:
        _init(0, nproc, backend, port, threads)
        config = OmegaConf.create(resolved)
        result = fn(config, replace(ctx, cfg=config), rank=0, world_size=nproc)
        dist.barrier()
        return result
    except BaseException:
        failed = True
        raise
    finally:
        # the other ranks leave first: rank 0 hosts the rendezvous store their process groups still talk to
        # while they tear down (a rank that lost it aborted: "terminate called without an active exception")
        for p in children:
            p.join(timeout=1.0 if failed else JOIN_TIMEOUT_S)
            if p.is_alive():
                p.terminate()
                p.join(timeout=10.0)
        if dist.is_initialized():
            dist.destroy_process_group()
        torch.set_num_threads(threads_before)
        codes = {p.name: p.exitcode for p in children if p.exitcode != 0}
        if codes and not failed:
            raise RuntimeError(f"data-parallel training: ranks ended with errors {codes}")
