"""In-memory state of the stand-in server: entities, queues, events and a call log."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from tests.standin import errors

Doc = dict[str, Any]

COMPANY = "standin-company"
USER = {"id": "standin-user", "name": "Stand-in User"}


def now_iso() -> str:
    """Current UTC time the way the real server returns datetimes: MongoDB keeps milliseconds, the JSON
    encoder writes ISO 8601 with an offset (``2026-01-02T03:04:05.678000+00:00``)."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000).isoformat(timespec="microseconds")


def new_id() -> str:
    """A fresh entity id (the real server uses 32 hex digits too)."""
    return uuid.uuid4().hex


@dataclass
class State:
    """Everything the server knows. Handlers take ``lock`` around each call."""

    access_key: str
    secret_key: str
    lock: threading.RLock = field(default_factory=threading.RLock)
    projects: dict[str, Doc] = field(default_factory=dict)
    tasks: dict[str, Doc] = field(default_factory=dict)
    models: dict[str, Doc] = field(default_factory=dict)
    queues: dict[str, Doc] = field(default_factory=dict)
    workers: dict[str, Doc] = field(default_factory=dict)
    events: dict[str, list[Doc]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)
    unknown_calls: list[str] = field(default_factory=list)
    external_attempts: list[str] = field(default_factory=list)
    failed_calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # The real server creates a "default" queue tagged as the default queue on first start.
        qid = new_id()
        self.queues[qid] = {
            "id": qid,
            "name": "default",
            "company": COMPANY,
            "user": USER["id"],
            "created": now_iso(),
            "tags": [],
            "system_tags": ["default"],
            "entries": [],
            "metadata": {},
        }

    def task(self, task_id: Any) -> Doc:
        """The task with this id, or the real server's invalid-id error."""
        doc = self.tasks.get(task_id) if isinstance(task_id, str) else None
        if doc is None:
            raise errors.invalid_task_id(task_id)
        return doc

    def model(self, model_id: Any) -> Doc:
        doc = self.models.get(model_id) if isinstance(model_id, str) else None
        if doc is None:
            raise errors.invalid_model_id(model_id)
        return doc

    def project(self, project_id: Any) -> Doc:
        doc = self.projects.get(project_id) if isinstance(project_id, str) else None
        if doc is None:
            raise errors.invalid_project_id(project_id)
        return doc

    def queue(self, queue_id: Any) -> Doc:
        doc = self.queues.get(queue_id) if isinstance(queue_id, str) else None
        if doc is None:
            raise errors.invalid_queue_id(queue_id)
        return doc

    def queue_by_name(self, name: str) -> Doc | None:
        return next((q for q in self.queues.values() if q["name"] == name), None)
