"""Run the stand-in by hand: ``python -m tests.standin --port 8008`` (web on +1, files on +2)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from tests.standin.server import StandinServer


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.standin", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8008, help="API port (0: any free port)")
    parser.add_argument("--web-port", type=int, default=None, help="default: port+1 (or free if port is 0)")
    parser.add_argument("--files-port", type=int, default=None, help="default: port+2 (or free if port is 0)")
    parser.add_argument("--files-root", type=Path, default=None, help="where uploads are kept (default: a temp dir)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s")

    def offset(value: int | None, delta: int) -> int:
        return value if value is not None else (args.port + delta if args.port else 0)

    server = StandinServer(args.host, args.port, offset(args.web_port, 1), offset(args.files_port, 2), args.files_root)
    server.start()
    print(f"export CLEARML_API_HOST={server.api_host}", flush=True)
    print(f"export CLEARML_WEB_HOST={server.web_host}", flush=True)
    print(f"export CLEARML_FILES_HOST={server.files_host}", flush=True)
    print(f"export CLEARML_API_ACCESS_KEY={server.access_key}", flush=True)
    print(f"export CLEARML_API_SECRET_KEY={server.secret_key}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
