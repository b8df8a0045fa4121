"""The API half: routes ``[/vX.Y]/service.action`` calls to handlers and wraps results in meta/data."""

from __future__ import annotations

import json
import re
import traceback
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.standin import errors
from tests.standin.api import MAX_API_VERSION, Call, load
from tests.standin.api.auth import check_basic
from tests.standin.httpbase import BaseHandler, log
from tests.standin.state import Doc, State

_PATH = re.compile(r"^/(?:v(?P<version>\d+\.\d+)/)?(?P<service>[a-z_]+)\.(?P<action>[a-z_]+)/?$")
ENDPOINTS = load()
PUBLIC = {"auth.login", "debug.ping", "server.info", "login.supported_modes"}


def _query_value(value: str) -> Any:
    return {"true": True, "false": False}.get(value.lower(), value)


def parse_body(raw: bytes, endpoint: str) -> Doc:
    """JSON object body; ``events.add_batch`` sends newline-delimited JSON (kept as ``requests``)."""
    text = raw.decode("utf-8").strip() if raw else ""
    if not text:
        return {}
    try:
        if endpoint == "events.add_batch":
            # One event per line; a one-line batch is also a valid JSON object, so never parse it whole.
            lines = [json.loads(line) for line in text.splitlines() if line.strip()]
            events = lines[0] if len(lines) == 1 and isinstance(lines[0], list) else lines
            return {"requests": events}
        body = json.loads(text)
    except json.JSONDecodeError as e:
        # the real server answers the same; the position and a snippet help diagnose the sender
        snippet = text[max(0, e.pos - 60):e.pos + 60]
        raise errors.ApiError(400, 12, f"Validation error (malformed JSON body): {e.msg} at {e.pos}: {snippet!r}") from None
    if not isinstance(body, dict):
        raise errors.ApiError(400, 12, "Validation error (body must be a JSON object)")
    return body


class ApiHandler(BaseHandler):
    """One API call per request: GET (with a JSON body, as the SDK sends), POST or PUT."""

    @property
    def state(self) -> State:
        return self.server.standin.state  # type: ignore[attr-defined]

    def do_GET(self) -> None:  # noqa: N802
        self.handle_call()

    do_POST = do_GET
    do_PUT = do_GET

    def _respond(self, endpoint: str, version: str, status: int, data: Any, subcode: int = 0,
                 msg: str = "OK", error_stack: str = "", error_data: Doc | None = None) -> None:
        meta = {
            "id": uuid.uuid4().hex, "trx": uuid.uuid4().hex,
            "endpoint": {"name": endpoint, "requested_version": version, "actual_version": version},
            "result_code": status, "result_subcode": subcode, "result_msg": msg,
            "error_stack": error_stack, "error_data": error_data or {},
        }
        payload = json.dumps({"meta": meta, "data": data if data is not None else {}}).encode()
        self.send_bytes(status, payload, "application/json")

    def _authenticate(self, endpoint: str) -> str | None:
        """Bearer token issued here, or Basic key/secret; returns the token (if any)."""
        header = self.headers.get("Authorization") or ""
        scheme = header.split(" ", 1)[0].lower()
        if scheme == "basic":
            check_basic(self.state, header)
            return None
        if scheme == "bearer":
            token = header.split(" ", 1)[1].strip()
            if token not in self.state.tokens:
                raise errors.unauthorized(30, "Invalid token")
            return token
        if endpoint in PUBLIC and endpoint != "auth.login":
            return None
        raise errors.unauthorized(20, "Unauthorized (missing credentials)")

    def handle_call(self) -> None:
        split = urlsplit(self.path)
        match = _PATH.match(split.path)
        endpoint = f"{match['service']}.{match['action']}" if match else split.path.strip("/")
        version = (match["version"] if match else None) or MAX_API_VERSION
        raw = self.read_body()
        try:
            handler = ENDPOINTS.get(endpoint) if match else None
            if handler is None:
                self.state.unknown_calls.append(endpoint)
                log.warning("stand-in: unsupported endpoint %s (v%s), body=%s", endpoint, version, raw[:500])
                raise errors.not_supported(endpoint, version)
            token = self._authenticate(endpoint)
            body = parse_body(raw, endpoint)
            body.update({k: _query_value(v) for k, v in parse_qsl(split.query)})
            call = Call(endpoint=endpoint, version=version, worker=self.headers.get("X-ClearML-Worker"), token=token)
            with self.state.lock:
                self.state.calls.append(endpoint)
                data = handler(self.state, body, call)
        except errors.ApiError as exc:
            self.state.failed_calls.append(f"{endpoint}: {exc.code}/{exc.subcode} {exc.msg}")
            if exc.code >= 500 or exc.subcode == 1:
                log.warning("stand-in: %s -> %s/%s %s", endpoint, exc.code, exc.subcode, exc.msg)
            self._respond(endpoint, version, exc.code, None, exc.subcode, exc.msg, error_data=exc.data)
        except Exception as exc:  # a handler bug must reach the client as the real server's 500
            log.exception("stand-in: %s failed", endpoint)
            self.state.failed_calls.append(f"{endpoint}: 500 {exc!r}")
            self._respond(endpoint, version, 500, None, 0, f"General server error: {exc}", traceback.format_exc())
        else:
            self._respond(endpoint, version, 200, data)
