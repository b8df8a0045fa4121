"""Endpoint registry: each module in this package registers ``service.action`` handlers."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from tests.standin.state import Doc, State

MAX_API_VERSION = "2.23"  # the newest schema set clearml 2.1.12 ships (clearml/backend_api/services/v2_23)
SERVER_VERSION = "1.17.0"


@dataclass
class Call:
    """What a handler may need to know about the request besides its body."""

    endpoint: str
    version: str
    worker: str | None
    token: str | None


Handler = Callable[[State, Doc, Call], Any]
ENDPOINTS: dict[str, Handler] = {}


def endpoint(*names: str) -> Callable[[Handler], Handler]:
    """Register a handler under one or more ``service.action`` names."""

    def register(fn: Handler) -> Handler:
        for name in names:
            if name in ENDPOINTS:
                raise RuntimeError(f"endpoint {name} registered twice")
            ENDPOINTS[name] = fn
        return fn

    return register


_MODULES = ("auth", "projects", "tasks", "queues", "workers", "events", "models", "pipelines")


def load() -> dict[str, Handler]:
    """Import every handler module once and return the registry."""
    for name in _MODULES:
        importlib.import_module(f"tests.standin.api.{name}")
    return ENDPOINTS
