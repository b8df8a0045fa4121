"""Checks that fail fast, with a named cause, before a remote run, a registration or a schedule creates or
enqueues anything on the ClearML server.

* The API server (found as the SDK finds it: ``CLEARML_API_HOST``, else ``api.api_server`` in clearml.conf)
  must answer one ``debug.ping`` within ``PING_TIMEOUT``: an unreachable server fails in seconds, naming the
  host and where it was configured, instead of after the SDK's minutes of retries.
* It must accept the credentials: the SDK's own login (``Session``, with few retries), so an access key,
  a token or vaults work as they do for the run; a refusal names the credential settings.
* Every queue the run would use must exist (through the SDK's ``APIClient``): the error names each missing
  queue, the config key that chose it and what uses it, and lists the existing queues.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from omegaconf import DictConfig

from components.common.errors import PipelineError
from pipelines.dag import STEPS

PING_TIMEOUT = (5.0, 5.0)  # (connect, read) seconds for debug.ping: the real server answers in milliseconds
# the preflight session's retries (the SDK's default api.http.retries retry for minutes); after a successful
# ping they only bridge a hiccup
QUICK_RETRIES: Mapping[str, Any] = {"total": 1, "connect": 1, "read": 1, "redirect": 1, "status": 1, "backoff_factor": 0.5}
HOST_ENV = ("CLEARML_API_HOST", "TRAINS_API_HOST")  # the SDK's ENV_HOST, in its order
HOST_KEYS = ("api.api_server", "api.host")  # then clearml.conf, in the SDK's order (Session.get_api_server_host)
CREDENTIAL_SETTINGS = "CLEARML_API_ACCESS_KEY / CLEARML_API_SECRET_KEY or api.credentials in clearml.conf"
CREATE_QUEUE_HINT = ("Create the missing queue (ClearML web UI: Orchestration > Queues, or an agent started with "
                     "--create-queue) or set its config key to an existing queue.")


class ServerError(PipelineError):
    """The ClearML API server cannot be reached, is not an API server, or refuses the login."""

    def __init__(self, host: str, message: str) -> None:
        super().__init__(message)
        self.host = host


class MissingQueuesError(PipelineError):
    """Queues a run would use do not exist on the server."""

    def __init__(self, message: str, missing: Sequence["QueueUse"], existing: Sequence[str]) -> None:
        super().__init__(message)
        self.missing = list(missing)
        self.existing = list(existing)


@dataclass(frozen=True)
class QueueUse:
    """A queue a run uses: its name, the config key that chose it, and what runs on it."""

    queue: str
    key: str
    user: str


# ---------------------------------------------------------------------------------------------- entry points


def check_launch(cfg: DictConfig, command: str) -> None:
    """``monai-pipeline remote|controller|register``: server, credentials, then the steps' queues (and, for
    ``remote``, the controller's queue)."""
    session = check_server()
    check_queues(pipeline_queue_uses(cfg, controller=command == "remote"), session)


def check_step_queues(cfg: DictConfig, session: Any) -> None:
    """Under an agent, with the controller task's logged-in ``session``: the steps' queues exist."""
    check_queues(pipeline_queue_uses(cfg, controller=False), session)


def check_schedule(cfg: DictConfig) -> None:
    """``monai-pipeline schedule register``: server, credentials, the services' queue and the runs' queues."""
    session = check_server()
    check_queues(schedule_queue_uses(cfg), session)


def check_server() -> Any:
    """Ping the configured API server, then log in; returns the SDK session (for the queue check)."""
    host = api_host()
    ping(host)
    return login(host)


# ---------------------------------------------------------------------------------------------- server


def api_host() -> str:
    """The API server the SDK will use (``Session.get_api_server_host``: environment, clearml.conf, default)."""
    from clearml.backend_api.session import Session

    return str(Session.get_api_server_host())


def host_origin(environ: Mapping[str, str] | None = None, config: Any = None) -> str:
    """Where the API host comes from, in the SDK's order of precedence, for messages."""
    environ = os.environ if environ is None else environ
    for name in HOST_ENV:
        if environ.get(name):
            return f"from {name}"
    if config is None:
        from clearml.config import config_obj

        config = config_obj
    for key in HOST_KEYS:
        if config.get(key, None):
            return f"from {key} in clearml.conf"
    return "the SDK's default: set CLEARML_API_HOST or api.api_server in clearml.conf"


def ping(host: str, timeout: tuple[float, float] = PING_TIMEOUT, http: Any = None) -> None:
    """One ``debug.ping`` (no retries): raises ``ServerError`` naming the host unless an API server answers."""
    import requests

    if http is None:
        from clearml.backend_api.utils import get_http_session_with_retry

        http = get_http_session_with_retry(total=0)  # the SDK's HTTP session: its TLS and certificate settings
    try:
        res = http.get(f"{host}/debug.ping", timeout=timeout)
    except requests.RequestException as e:
        raise ServerError(host, unreachable_message(host, describe_failure(e, timeout))) from e
    try:
        payload = res.json()
    except ValueError:
        payload = None
    problem = ping_problem(res.status_code, res.headers.get("Content-Type", ""), payload)
    if problem:
        raise ServerError(host, f"the ClearML API server at {host} ({host_origin()}) {problem}")


def unreachable_message(host: str, reason: str) -> str:
    return f"cannot reach the ClearML API server at {host} ({host_origin()}): {reason}"


def describe_failure(error: BaseException, timeout: tuple[float, float] = PING_TIMEOUT) -> str:
    """A short reason for a failed request (the root cause, not urllib3's retry wrapper)."""
    import requests
    import urllib3

    causes = list(_causes(error))
    for cause in causes:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused (nothing listens on that port: wrong port, or the server is down?)"
        if isinstance(cause, socket.gaierror):
            return f"the host name does not resolve ({cause.strerror or cause})"
    # Without retries urllib3 wraps a timeout in MaxRetryError, which requests turns into a ConnectionError;
    # urllib3's NewConnectionError (any failed connect) subclasses ConnectTimeoutError, so it is no timeout.
    if any(isinstance(c, requests.exceptions.ConnectTimeout) or (isinstance(c, urllib3.exceptions.ConnectTimeoutError)
                                                                 and not isinstance(c, urllib3.exceptions.NewConnectionError))
           for c in causes):
        return f"no connection within {timeout[0]:g} s (host down, or a firewall drops the packets?)"
    if any(isinstance(c, (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError)) for c in causes):
        return f"it accepted the connection but sent no answer within {timeout[1]:g} s (wrong port, or the server hangs?)"
    if any(isinstance(c, requests.exceptions.SSLError) for c in causes):
        return f"TLS error ({causes[-1]})"
    if any(isinstance(c, requests.exceptions.ProxyError) for c in causes):
        return f"the HTTP proxy refused the connection ({causes[-1]})"
    if any(isinstance(c, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                          requests.exceptions.InvalidSchema)) for c in causes):
        return f"not a valid http(s) URL ({error})"
    return f"{type(causes[-1]).__name__}: {causes[-1]}"


def _causes(error: BaseException) -> Iterable[BaseException]:
    """``error`` and what it wraps (exception arguments, urllib3's ``reason``, ``__cause__``/``__context__``)."""
    todo, seen = [error], set()
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = [*current.args, getattr(current, "reason", None), current.__cause__, current.__context__]
        todo.extend(w for w in wrapped if isinstance(w, BaseException))


def ping_problem(status: int, content_type: str, payload: Any) -> str | None:
    """What is wrong with an answer to ``debug.ping`` (None: an API server answered it).

    The real server answers ``{"meta": {..., "result_code": 200}, "data": {"msg": "ClearML server"}}``; any
    answer with a ``meta`` envelope is an API server, whatever else it says."""
    meta = payload.get("meta") if isinstance(payload, dict) else None
    if isinstance(meta, dict):
        if status == 200:
            return None
        return f"answered debug.ping with HTTP {status}: {meta.get('result_msg') or 'no message'}"
    kind = content_type.split(";")[0].strip() or "no content type"
    return (f"answered debug.ping with HTTP {status} ({kind}), not as a ClearML API server: is the port right? "
            "(the API server listens on 8008 by default; 8080 is the web app, 8081 the file server)")


def login(host: str) -> Any:
    """The SDK's session for ``host`` (logging in with the configured credentials), with few retries."""
    import requests
    from clearml.backend_api.session import Session
    from clearml.backend_api.session.defs import MissingConfigError
    from clearml.backend_api.session.session import LoginError

    try:
        return Session(host=host, http_retries_config=dict(QUICK_RETRIES))
    except MissingConfigError as e:
        raise ServerError(host, f"no ClearML credentials configured for the API server at {host}: set "
                                f"{CREDENTIAL_SETTINGS} (clearml-init writes clearml.conf)") from e
    except LoginError as e:
        raise ServerError(host, f"the ClearML API server at {host} refused the login with the configured credentials "
                                f"({CREDENTIAL_SETTINGS}): {e}") from e
    except (requests.RequestException, ValueError) as e:  # ValueError: the SDK's "is this an API server?"
        raise ServerError(host, f"logging in to the ClearML API server at {host} failed: {describe_failure(e)}") from e


# ---------------------------------------------------------------------------------------------- queues


def pipeline_queue_uses(cfg: DictConfig, controller: bool) -> list[QueueUse]:
    """The queues of a pipeline run: each step's (``remote.step_queue``) and, with ``controller``, the
    controller's (``pipeline.queues.controller``)."""
    from pipelines.remote import step_queue, step_queue_key  # here: pipelines.remote imports this module

    uses = [QueueUse(str(cfg.pipeline.queues.controller), "pipeline.queues.controller", "the pipeline controller")] \
        if controller else []
    uses += [QueueUse(step_queue(cfg, step), step_queue_key(cfg, step), f"step '{step.name}'") for step in STEPS]
    return uses


def schedule_queue_uses(cfg: DictConfig) -> list[QueueUse]:
    """The queues of a schedule: its services' (``schedule.queue``), the launched runs' controller's and steps'."""
    return [QueueUse(str(cfg.schedule.queue), "schedule.queue", "the schedule and trigger services"),
            *pipeline_queue_uses(cfg, controller=True)]


def existing_queues(session: Any) -> list[str]:
    """The names of the server's queues, sorted."""
    from clearml.backend_api.session.client import APIClient

    client = APIClient(session=session)
    return sorted({str(q.name) for q in client.queues.get_all(only_fields=["id", "name"])})


def check_queues(uses: Sequence[QueueUse], session: Any) -> None:
    """Raise ``MissingQueuesError`` if a queue in ``uses`` does not exist on the server."""
    existing = existing_queues(session)
    message = missing_queues_message(uses, existing, str(session.host))
    if message:
        raise MissingQueuesError(message, [u for u in uses if u.queue not in existing], existing)


def missing_queues_message(uses: Sequence[QueueUse], existing: Iterable[str], host: str) -> str | None:
    """The error for the queues of ``uses`` not in ``existing`` (None when all exist): each missing queue with
    the config key that chose it and its users, then the existing queues."""
    known = set(existing)
    grouped: dict[tuple[str, str], list[str]] = {}
    for use in uses:
        if use.queue not in known:
            grouped.setdefault((use.queue, use.key), []).append(use.user)
    if not grouped:
        return None
    parts = [f"'{queue}' (config key {key}, used by {', '.join(users)})" for (queue, key), users in grouped.items()]
    listed = ", ".join(f"'{q}'" for q in sorted(known)) or "none"
    return (f"no such queue on the ClearML server at {host}: {'; '.join(parts)}. Existing queues: {listed}. "
            f"{CREATE_QUEUE_HINT}")
