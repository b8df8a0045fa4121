"""Where the tests' ClearML lives (the stand-in or a real server) and the isolated env to reach it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.standin.server import StandinServer

REAL_SERVER_VARS = ("CLEARML_API_HOST", "CLEARML_WEB_HOST", "CLEARML_FILES_HOST",
                    "CLEARML_API_ACCESS_KEY", "CLEARML_API_SECRET_KEY")
_DROPPED_PREFIXES = ("CLEARML_", "TRAINS_", "ALG_")


@dataclass
class ClearMLEndpoint:
    """The hosts and credentials tests talk to, plus a per-session sandbox directory."""

    api_host: str
    web_host: str
    files_host: str
    access_key: str
    secret_key: str
    sandbox: Path
    is_standin: bool = True
    no_proxy_sink: str | None = None
    standin: "StandinServer | None" = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.sandbox / "home"

    @property
    def config_file(self) -> Path:
        return self.sandbox / "clearml.conf"

    def prepare(self) -> None:
        """Create the sandbox HOME and an empty ClearML config file (everything comes from env)."""
        self.home.mkdir(parents=True, exist_ok=True)
        (self.sandbox / "cache").mkdir(parents=True, exist_ok=True)
        if not self.config_file.exists():
            self.config_file.write_text("# ClearML settings come from CLEARML_* environment variables\n")

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """A process environment: inherited CLEARML_* dropped, hosts/keys set, HOME and caches isolated."""
        source = dict(os.environ if base is None else base)
        env = {k: v for k, v in source.items() if not k.startswith(_DROPPED_PREFIXES)}
        env.update({
            "CLEARML_API_HOST": self.api_host,
            "CLEARML_WEB_HOST": self.web_host,
            "CLEARML_FILES_HOST": self.files_host,
            "CLEARML_API_ACCESS_KEY": self.access_key,
            "CLEARML_API_SECRET_KEY": self.secret_key,
            "CLEARML_CONFIG_FILE": str(self.config_file),
            "CLEARML_NO_DEFAULT_SERVER": "1",
            "CLEARML_SUPPRESS_UPDATE_MESSAGE": "1",
            "HOME": str(self.home),
            "XDG_CACHE_HOME": str(self.sandbox / "cache"),
            "TORCH_HOME": str(self.sandbox / "cache" / "torch"),
            "MPLCONFIGDIR": str(self.sandbox / "cache" / "matplotlib"),
            "PYTHONDONTWRITEBYTECODE": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
        })
        if self.no_proxy_sink:
            # Any HTTP(S) request for a host outside loopback goes to the stand-in's refusing proxy
            # (the SDK asks updates.clear.ml for new versions, for instance); loopback stays direct.
            for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
                env[name] = self.no_proxy_sink
            env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
        env.update(self.extra_env)
        return env


def real_server_from_env(sandbox: Path) -> ClearMLEndpoint | None:
    """A real server's endpoint when all five standard CLEARML_* variables are set, else None."""
    values = [os.environ.get(name) for name in REAL_SERVER_VARS]
    if not all(values):
        return None
    api, web, files, access, secret = values  # type: ignore[misc]
    return ClearMLEndpoint(api, web, files, access, secret, sandbox, is_standin=False)  # type: ignore[arg-type]
