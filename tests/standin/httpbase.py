"""Shared HTTP plumbing: keep-alive request handler base with body reading and byte responses."""

from __future__ import annotations

import logging
from http.server import BaseHTTPRequestHandler

log = logging.getLogger("tests.standin")


class BaseHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 handler that always sends Content-Length (so clients can keep connections alive)."""

    protocol_version = "HTTP/1.1"
    server_version = "clearml-standin"
    # Headers and body go out in two writes; with Nagle's algorithm the body waits for the client's
    # delayed ACK (~40 ms a call). TCP_NODELAY sends it at once.
    disable_nagle_algorithm = True

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionResetError, BrokenPipeError):
            log.debug("%s closed the connection", self.address_string())  # e.g. an SDK process ended by os._exit

    def read_body(self) -> bytes:
        """The request body, from Content-Length or chunked transfer encoding."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_bytes(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
        log.debug("%s %s", self.address_string(), format % args)
