"""A local HTTP server in a thread that records the POSTs it gets: a webhook for the notification tests."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """with Receiver(status=200) as hook: ... hook.url, hook.posts (path, headers, body), hook.gets."""

    def __init__(self, status: int = 200, delay: float = 0.0, host: str = "127.0.0.1",
                 location: str = "http://127.0.0.1:9/elsewhere"):
        self.status, self.delay, self.location = status, delay, location
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        self.clients: list[str] = []  # the address each POST came from
        self.gets: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.posts.append((self.path, dict(self.headers), body))
                receiver.clients.append(self.client_address[0])
                time.sleep(receiver.delay)
                self.answer()

            def do_GET(self):
                receiver.gets.append(self.path)
                self.answer()

            def answer(self):
                self.send_response(receiver.status)
                if 300 <= receiver.status < 400:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}/hooks/T0KEN-s3cret?key=abc"

    def __enter__(self) -> "Receiver":
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    @property
    def bodies(self) -> list[bytes]:
        return [body for _, _, body in self.posts]
