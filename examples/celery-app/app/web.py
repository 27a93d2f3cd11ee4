"""The example's web service: stdlib only (http.server), one Celery task per request.

  GET /  and  GET /health/      200 "<colour> <version>"
  GET /enqueue?id=X&seconds=S   enqueues tasks.record(X, S); 200 "queued X", 503 if the broker is
                                down, 400 without an id

Listens on 0.0.0.0:$PORT (8000). On SIGTERM it stops accepting, finishes the requests in flight,
logs "web stop" and exits 0.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import tasks

# The web process alone gives up on a dead broker after one immediate retry (about 0.1 s to a
# 503, instead of 2 s: kombu's first retry waits interval_start = 2 s); worker and beat keep
# kombu's default retrying.
tasks.app.conf.broker_transport_options = {**tasks.app.conf.broker_transport_options,
                                           "max_retries": 1, "interval_start": 0}


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so no idle keep-alive connection delays a stop
    timeout = 10  # seconds a client may take to send its request

    def _answer(self, code: int, body: str) -> None:
        data = (body + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urlsplit(self.path)
        if url.path in ("/", "/health", "/health/"):
            return self._answer(200, f"{tasks.COLOR} {tasks.VERSION}")
        if url.path in ("/enqueue", "/enqueue/"):
            q = parse_qs(url.query)
            task_id = (q.get("id") or [""])[0]
            if not task_id or any(c.isspace() for c in task_id):
                return self._answer(400, "id required (no spaces)")
            try:
                seconds = float((q.get("seconds") or ["0"])[0])
            except ValueError:
                return self._answer(400, "seconds must be a number")
            try:
                # retry=False: one attempt, so a dead broker answers 503 within the timeouts
                tasks.record.apply_async((task_id, seconds), retry=False)
            except Exception as e:  # kombu.exceptions.OperationalError, redis errors
                return self._answer(503, f"broker unavailable: {type(e).__name__}")
            return self._answer(200, f"queued {task_id}")
        return self._answer(404, "not found")

    def log_message(self, fmt: str, *args) -> None:
        if os.environ.get("ACCESS_LOG"):
            super().log_message(fmt, *args)


class Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for the requests in flight
    block_on_close = True
    allow_reuse_address = True


def main() -> int:
    port = int(os.environ.get("PORT", "8000"))
    server = Server(("0.0.0.0", port), Handler)

    def stop(_sig, _frame) -> None:
        # shutdown() blocks until serve_forever returns: call it from another thread
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    tasks.event(f"web start :{port}")
    server.serve_forever()
    server.server_close()
    tasks.event("web stop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
