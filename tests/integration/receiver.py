"""A real HTTP receiver on 127.0.0.1 (a free port) for delivery tests and the delivery benchmark: records every
request, answers with queued statuses first (then 200); `hold` keeps answers back (a receiver that hangs)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    arrived: float  # time.time() at arrival

    @property
    def number(self) -> int:
        return int(self.headers["x-carepath-event-number"])

    @property
    def kind(self) -> str:
        return self.headers["x-carepath-notification-type"]


class Receiver:
    """Records every request; answers with the queued statuses first (then 200). `hold` blocks answers."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.statuses: list[int] = []
        self.hold = threading.Event()
        self.hold.set()
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real endpoint would allow

            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.requests.append(Received(self.command, self.path, headers, body, time.time()))
                receiver.arrived.set()
                receiver.hold.wait(timeout=30)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = _any

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[Received]:
        return [r for r in self.requests if r.kind == "event-notification"]
