"""Network, loss, optimizer and LR schedule built from ``_target_`` config entries with Hydra's instantiate.

Switching to any MONAI network (or any torch module) is a config change: ``model.net._target_=...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from monai.inferers import Inferer
from omegaconf import DictConfig

from .errors import ConfigError


def _build(cfg: Any, key: str, **kwargs: Any) -> Any:
    if cfg is None or "_target_" not in cfg:
        raise ConfigError(key, "must be a mapping with a '_target_' entry")
    try:
        return instantiate(cfg, **kwargs)
    except Exception as e:
        # Hydra wraps the real cause; show the config key and the innermost message.
        cause: BaseException = e
        while cause.__cause__ is not None:
            cause = cause.__cause__
        raise ConfigError(key, f"cannot build {cfg._target_}: {cause}") from e


def build_network(model_cfg: DictConfig) -> torch.nn.Module:
    """The segmentation network from ``model.net``."""
    net = _build(model_cfg.net, "model.net")
    if not isinstance(net, torch.nn.Module):
        raise ConfigError("model.net._target_", f"{model_cfg.net._target_} did not build a torch.nn.Module")
    return net


def to_device(net: torch.nn.Module, device: torch.device, channels_last: bool) -> torch.nn.Module:
    """Move ``net`` to ``device``; with ``channels_last`` its 3D weights use the channels-last layout, which
    oneDNN (CPU) and cuDNN (GPU) convolutions run faster (about 10 % per training iteration on this
    project's UNet on a 2-core CPU, benchmarks/README.md). Inputs need no conversion: the convolutions
    follow the weights' layout."""
    net = net.to(device)
    if channels_last and any(p.dim() == 5 for p in net.parameters()):
        net = net.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    return net


def build_loss(loss_cfg: DictConfig, key: str) -> torch.nn.Module:
    """The loss from the ``_target_`` entry ``loss_cfg`` (config key ``key``)."""
    return _build(loss_cfg, key)


def _build_partial(cfg: Any, key: str, *args: Any) -> Any:
    """Instantiate a ``_partial_: true`` entry, then call it with the run-time arguments (e.g. parameters)."""
    factory = _build(cfg, key)
    if not callable(factory):
        raise ConfigError(key, "must be a '_partial_: true' entry")
    try:
        return factory(*args)
    except Exception as e:
        raise ConfigError(key, f"cannot build {cfg._target_}: {e}") from e


def build_optimizer(optimizer_cfg: DictConfig, params: Any, key: str) -> torch.optim.Optimizer:
    """The optimizer from the ``_partial_`` entry ``optimizer_cfg`` (config key ``key``), given the parameters."""
    return _build_partial(optimizer_cfg, key, params)


def build_scheduler(scheduler_cfg: DictConfig | None, optimizer: torch.optim.Optimizer, key: str) -> Any:
    """The epoch-wise LR schedule from the ``_partial_`` entry ``scheduler_cfg`` (``null``: constant LR)."""
    if scheduler_cfg is None:
        return None
    return _build_partial(scheduler_cfg, key, optimizer)


def build_inferer(inference_cfg: DictConfig) -> Inferer:
    """The inferer from ``inference.inferer`` (sliding window by default), shared by validation and evaluation."""
    inferer = _build(inference_cfg.inferer, "inference.inferer")
    if not isinstance(inferer, Inferer):
        raise ConfigError("inference.inferer._target_", f"{inference_cfg.inferer._target_} is not a monai Inferer")
    return inferer


def load_network_weights(net: torch.nn.Module, checkpoint: Path | str, device: torch.device, key: str) -> dict[str, Any]:
    """Load the ``net`` entry of a training checkpoint (or a bare state dict) into ``net``; errors name ``key``
    (the config key the checkpoint came from)."""
    path = Path(checkpoint)
    if not path.is_file():
        raise ConfigError(key, f"checkpoint '{path}' does not exist")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # torch raises several types for unreadable files
        raise ConfigError(key, f"{path} is not a readable torch checkpoint: {e}") from e
    weights = state.get("net", state) if isinstance(state, dict) else state
    try:
        net.load_state_dict(weights)
    except RuntimeError as e:
        raise ConfigError("model", f"checkpoint {path} does not fit the configured network "
                                   f"(was it trained with another model config?): {e}") from e
    return state
