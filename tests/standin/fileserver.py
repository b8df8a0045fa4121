"""The fileserver half: multipart uploads to ``<files host>/<path>``, plain GET downloads, DELETE."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tests.standin.httpbase import BaseHandler

_NAME = re.compile(rb'(?:^|[;\s])name="([^"]*)"', re.IGNORECASE)
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)


def parse_multipart(body: bytes, content_type: str) -> list[tuple[str, bytes]]:
    """(field name, content) for each part of a multipart/form-data body."""
    match = _BOUNDARY.search(content_type or "")
    if not match:
        raise ValueError("multipart body without boundary")
    delimiter = b"--" + match.group(1).encode()
    fields = []
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, sep, data = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("multipart part without header separator")
        name = _NAME.search(head)
        if not name:
            raise ValueError("multipart part without a name")
        fields.append((name.group(1).decode(), data.removesuffix(b"\r\n")))
    return fields


class FilesHandler(BaseHandler):
    """Stores objects under the server's files root, addressed by URL path."""

    @property
    def root(self) -> Path:
        return self.server.standin.files_root  # type: ignore[attr-defined]

    def _target(self, *parts: str) -> Path | None:
        path = (self.root / "/".join(p.strip("/") for p in parts if p.strip("/"))).resolve()
        return path if path == self.root or self.root in path.parents else None

    def _url_path(self) -> str:
        return unquote(urlsplit(self.path).path)

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        body = self.read_body()
        try:
            fields = parse_multipart(body, self.headers.get("Content-Type", ""))
        except ValueError as exc:
            self.send_bytes(400, json.dumps({"error": str(exc)}).encode(), "application/json")
            return
        stored = {}
        for name, data in fields:
            target = self._target(self._url_path(), unquote(name))
            if target is None:
                self.send_bytes(403, b'{"error": "path outside the files root"}', "application/json")
                return
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            stored[name] = {"size": len(data)}
        self.send_bytes(200, json.dumps(stored).encode(), "application/json")

    def _file(self) -> Path | None:
        target = self._target(self._url_path())
        return target if target is not None and target.is_file() else None

    def do_GET(self) -> None:  # noqa: N802
        target = self._file()
        if target is None:
            self.send_bytes(404, b"Not Found", "text/plain")
            return
        self.send_bytes(200, target.read_bytes(), "application/octet-stream")

    def do_HEAD(self) -> None:  # noqa: N802
        target = self._file()
        self.send_response(200 if target else 404)
        self.send_header("Content-Length", str(target.stat().st_size if target else 0))
        self.end_headers()

    def do_DELETE(self) -> None:  # noqa: N802
        target = self._file()
        if target is None:
            self.send_bytes(404, b"Not Found", "text/plain")
            return
        target.unlink()
        self.send_bytes(200, b"{}", "application/json")


class WebHandler(BaseHandler):
    """A stub for the web UI links the SDK prints: every GET is a tiny page."""

    def do_GET(self) -> None:  # noqa: N802
        page = f"<html><body>ClearML stand-in web host: {self.path}</body></html>".encode()
        self.send_bytes(200, page, "text/html")


class RefusingProxyHandler(BaseHandler):
    """An HTTP(S) proxy that forwards nothing: records the requested host and answers 403."""

    def _refuse(self) -> None:
        self.server.standin.state.external_attempts.append(f"{self.command} {self.path}")  # type: ignore[attr-defined]
        self.read_body()
        self.send_bytes(403, b"stand-in: no traffic outside loopback", "text/plain")
        self.close_connection = True

    do_CONNECT = _refuse
    do_GET = _refuse
    do_POST = _refuse
    do_PUT = _refuse
    do_HEAD = _refuse
    do_DELETE = _refuse
