"""Lifecycle of the stand-in: API, web and files HTTP servers on free loopback ports, one process."""

from __future__ import annotations

import shutil
import tempfile
import threading
from http.server import ThreadingHTTPServer
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Iterator

from tests.standin.app import ApiHandler
from tests.standin.environment import ClearMLEndpoint
from tests.standin.fileserver import FilesHandler, RefusingProxyHandler, WebHandler
from tests.standin.state import State

DEFAULT_ACCESS_KEY = "STANDINACCESSKEY"
DEFAULT_SECRET_KEY = "standin-secret-key-not-a-real-credential"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type, standin: "StandinServer") -> None:
        self.standin = standin
        super().__init__(address, handler)


class StandinServer:
    """Starts the three hosts (api, web, files); use as a context manager or start()/stop()."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        web_port: int = 0,
        files_port: int = 0,
        files_root: Path | None = None,
        access_key: str = DEFAULT_ACCESS_KEY,
        secret_key: str = DEFAULT_SECRET_KEY,
    ) -> None:
        self.host = host
        self._ports = (port, web_port, files_port)
        self._own_root = files_root is None
        self.files_root = Path(files_root or tempfile.mkdtemp(prefix="clearml-standin-files-")).resolve()
        self.state = State(access_key=access_key, secret_key=secret_key)
        self._servers: list[_HTTPServer] = []
        self._threads: list[threading.Thread] = []

    @property
    def access_key(self) -> str:
        return self.state.access_key

    @property
    def secret_key(self) -> str:
        return self.state.secret_key

    def _url(self, index: int) -> str:
        return f"http://{self.host}:{self._servers[index].server_address[1]}"

    @property
    def api_host(self) -> str:
        return self._url(0)

    @property
    def web_host(self) -> str:
        return self._url(1)

    @property
    def files_host(self) -> str:
        return self._url(2)

    @property
    def proxy_sink(self) -> str:
        """URL of a proxy that refuses (and records) every request: for HTTP(S)_PROXY in test processes."""
        return self._url(3)

    def start(self) -> "StandinServer":
        self.files_root.mkdir(parents=True, exist_ok=True)
        ports = (*self._ports, 0)
        for port, handler in zip(ports, (ApiHandler, WebHandler, FilesHandler, RefusingProxyHandler)):
            server = _HTTPServer((self.host, port), handler, self)
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                      name=f"standin-{handler.__name__}", daemon=True)
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()
        if self._own_root:
            shutil.rmtree(self.files_root, ignore_errors=True)

    def __enter__(self) -> "StandinServer":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


@contextmanager
def standin_endpoint(sandbox: Path) -> Iterator[ClearMLEndpoint]:
    """A fresh stand-in server (its files under ``sandbox/files``) and the prepared endpoint for it, with
    ``sandbox`` as the clients' HOME and cache; the server stops when the block ends."""
    server = StandinServer(files_root=sandbox / "files").start()
    try:
        endpoint = ClearMLEndpoint(server.api_host, server.web_host, server.files_host, server.access_key,
                                   server.secret_key, sandbox, is_standin=True, no_proxy_sink=server.proxy_sink,
                                   standin=server)
        endpoint.prepare()
        yield endpoint
    finally:
        server.stop()
