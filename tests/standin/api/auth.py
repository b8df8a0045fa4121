"""auth.*, server.*, debug.*, users.* and login.*: the token scheme and version negotiation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from tests.standin import errors
from tests.standin.api import MAX_API_VERSION, SERVER_VERSION, Call, endpoint
from tests.standin.state import COMPANY, USER, Doc, State

TOKEN_LIFETIME_SEC = 30 * 24 * 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(state: State, expiration_sec: int | None = None) -> str:
    """An HS256 JWT carrying what the SDK reads: exp, api_version, server_version, feature_set."""
    header = {"alg": "HS256", "typ": "JWT"}
    payload = {
        "exp": int(time.time()) + int(expiration_sec or TOKEN_LIFETIME_SEC),
        "iat": int(time.time()),
        "api_version": MAX_API_VERSION,
        "server_version": SERVER_VERSION,
        "server_build": "standin",
        "feature_set": "basic",
        "env": "test",
        "identity": {"company": COMPANY, "user": USER["id"], "user_name": USER["name"], "role": "user"},
    }
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    signature = hmac.new(state.secret_key.encode(), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{_b64(signature)}"
    state.tokens.add(token)
    return token


def check_basic(state: State, header: str) -> None:
    """Validate an ``Authorization: Basic`` header against the configured key pair."""
    try:
        access, _, secret = base64.b64decode(header.split(" ", 1)[1]).decode().partition(":")
    except (ValueError, IndexError) as exc:
        raise errors.unauthorized(21, "Unauthorized (malformed credentials)") from exc
    if access != state.access_key or secret != state.secret_key:
        raise errors.unauthorized(22, "Unauthorized (invalid credentials)")


@endpoint("auth.login")
def login(state: State, body: Doc, call: Call) -> Doc:
    return {"token": make_token(state, body.get("expiration_sec"))}


@endpoint("server.info")
def server_info(state: State, body: Doc, call: Call) -> Doc:
    return {"version": SERVER_VERSION, "build": "standin", "commit": "standin", "api_version": MAX_API_VERSION}


@endpoint("debug.ping")
def ping(state: State, body: Doc, call: Call) -> Doc:
    return {"msg": "ClearML server (stand-in)"}


@endpoint("users.get_current_user")
def current_user(state: State, body: Doc, call: Call) -> Doc:
    user = {**USER, "company": {"id": COMPANY, "name": "Stand-in"}, "role": "user", "preferences": {}}
    return {"user": user, "getting_started": {}, "settings": {}}


@endpoint("users.get_all", "users.get_all_ex")
def users(state: State, body: Doc, call: Call) -> Doc:
    return {"users": [{**USER, "company": COMPANY, "role": "user"}]}


@endpoint("users.get_vaults")
def vaults(state: State, body: Doc, call: Call) -> Any:
    return {"vaults": []}


@endpoint("login.supported_modes")
def supported_modes(state: State, body: Doc, call: Call) -> Doc:
    return {"authenticated": False, "basic": {"enabled": True, "guest": {"enabled": False}}, "sso": {}, "sso_providers": []}
