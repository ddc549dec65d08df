"""A loopback HTTP server that returns scripted responses, for testing the client's retries without the API.

Each request takes the next scripted response; the server records every
request's method, path, body and arrival time.
"""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Scripted:
    """One response: status, headers, JSON body, and seconds to wait before responding."""

    status: int
    body: object = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    at: float  # time.monotonic() on arrival


class ScriptedServer:
    """Serve ``responses`` in order on 127.0.0.1; a request past the end gets 500 and fails the test's checks."""

    def __init__(self, responses: list[Scripted]):
        self.responses = list(responses)
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "ScriptedServer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next(self, request: Received) -> Scripted:
        with self._lock:
            self.requests.append(request)
            if self.responses:
                return self.responses.pop(0)
        return Scripted(500, {"title": "Unscripted request", "status": 500,
                              "detail": f"no scripted response left for {request.method} {request.path}"})

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received = Received(self.command, self.path, self.rfile.read(length), dict(self.headers),
                                    time.monotonic())
                scripted = server._next(received)
                if scripted.delay:
                    time.sleep(scripted.delay)
                payload = b"" if scripted.body is None else json.dumps(scripted.body).encode()
                content_type = "application/problem+json" if scripted.status >= 400 else "application/json"
                try:
                    self.send_response(scripted.status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in scripted.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, format, *args) -> None:  # keep the test output clean
                pass

        return Handler
