"""A minimal REST client for test assertions, so the pytest process never imports the SDK's globals."""

from __future__ import annotations

import time
from typing import Any, Iterable

import requests

from tests.standin.environment import ClearMLEndpoint

TERMINAL_STATUSES = ("completed", "failed", "stopped", "closed", "published")


class ApiCallError(RuntimeError):
    def __init__(self, endpoint: str, status: int, meta: dict[str, Any]) -> None:
        super().__init__(f"{endpoint}: HTTP {status} {meta.get('result_code')}/{meta.get('result_subcode')} {meta.get('result_msg')}")
        self.status = status
        self.meta = meta


class ApiClient:
    """Logs in with the key pair (Basic) and calls ``service.action`` endpoints with Bearer tokens."""

    def __init__(self, endpoint: ClearMLEndpoint, timeout: float = 30.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.http = requests.Session()
        self.http.trust_env = False  # never route loopback calls through a proxy from the environment
        self._token: str | None = None

    def _login(self) -> str:
        res = self.http.get(f"{self.endpoint.api_host}/auth.login", timeout=self.timeout,
                            auth=(self.endpoint.access_key, self.endpoint.secret_key))
        res.raise_for_status()
        self._token = res.json()["data"]["token"]
        return self._token

    def raw(self, endpoint: str, body: dict[str, Any] | None = None, version: str | None = None) -> requests.Response:
        path = f"/v{version}/{endpoint}" if version else f"/{endpoint}"
        token = self._token or self._login()
        return self.http.post(f"{self.endpoint.api_host}{path}", json=body or {}, timeout=self.timeout,
                              headers={"Authorization": f"Bearer {token}"})

    def call(self, endpoint: str, **body: Any) -> dict[str, Any]:
        res = self.raw(endpoint, body)
        if res.status_code == 401:
            self._token = None
            res = self.raw(endpoint, body)
        payload = res.json()
        if res.status_code != 200:
            raise ApiCallError(endpoint, res.status_code, payload.get("meta", {}))
        return payload.get("data") or {}

    def task(self, task_id: str) -> dict[str, Any]:
        return self.call("tasks.get_by_id", task=task_id)["task"]

    def queue_id(self, name: str) -> str:
        """The id of the queue named exactly ``name``."""
        return self.call("queues.get_all", name=f"^{name}$")["queues"][0]["id"]

    def wait_for_status(self, task_id: str, statuses: Iterable[str] = TERMINAL_STATUSES,
                        timeout: float = 120.0, poll: float = 0.5) -> dict[str, Any]:
        """Poll until the task reaches one of ``statuses``; raise TimeoutError with its last state."""
        wanted = set(statuses)
        deadline = time.monotonic() + timeout
        task: dict[str, Any] = {}
        while time.monotonic() < deadline:
            task = self.task(task_id)
            if task.get("status") in wanted:
                return task
            time.sleep(poll)
        raise TimeoutError(f"task {task_id} still {task.get('status')!r} ({task.get('status_message')!r}) after {timeout}s")


def refusal(api: ApiClient, endpoint: str, **body: Any) -> tuple[int, int, int, str, dict[str, Any]]:
    """(HTTP status, result_code, result_subcode, result_msg, error_data) of a call that must fail."""
    try:
        api.call(endpoint, **body)
    except ApiCallError as e:
        meta = e.meta
        return e.status, meta["result_code"], meta["result_subcode"], meta["result_msg"], meta.get("error_data") or {}
    raise AssertionError(f"{endpoint} {body} succeeded, but the server must refuse it")
