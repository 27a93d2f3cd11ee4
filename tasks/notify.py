"""Tell someone how a run ended: [defaults.notify] of the hosts file, once per run, from the workstation.

The body is the run's --json document (tasks/document.py: credentials already masked), sent when the
run has its result, whatever it is (failed and interrupted runs too). POSTed to `webhook` and/or given
on stdin to the local shell command `command`, each within `timeout` seconds in all (a deadline for
the whole exchange, however slowly the other end answers). A notification that fails, whatever the
failure (or that Ctrl-C cuts short), is one warning line on stderr, naming which one and why: it
never changes the exit code. The webhook is named by its scheme and host only (its path and query often
hold a token), the command by its key only (never its command line); what either said back is
masked before it is shown."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import threading
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

from .config.schema import Notify
from .mask import shown


def send(settings: Notify, body: str, warn: Callable[[str], None], cwd: Path | None = None) -> None:
    """Send body to the webhook and to the command, if set; a failure is warn(one line)."""
    if settings.webhook:
        try:
            why = post(settings.webhook, body.encode(), settings.timeout)
        except KeyboardInterrupt:
            why = "interrupted (Ctrl-C)"
        except Exception as e:  # noqa: BLE001 - whatever it is, a notification never ends the run
            why = shown(f"{type(e).__name__}: {e}")
        if why:
            warn(f"notify.webhook: the POST to {origin(settings.webhook)} failed: {_one_line(why)} "
                 "(the exit code is unchanged)")
    if settings.command:
        try:
            why = run(settings.command, body.encode(), settings.timeout, cwd)
        except Exception as e:  # noqa: BLE001 - as above
            why = shown(f"{type(e).__name__}: {e}")
        if why:
            warn(f"notify.command failed: {_one_line(why)} (the exit code is unchanged)")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def origin(url: str) -> str:
    """scheme://host[:port] of a URL: what may be shown of it."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{parts.hostname or '?'}{port}"


def post(url: str, body: bytes, timeout: float) -> str:
    """POST body as JSON; "" when the server answered 2xx, else why not, in a few words.

    timeout bounds the whole exchange (a server sending one byte a second cannot stretch it): the
    request runs in a thread, and at the deadline its socket is shut. Whatever goes wrong (a
    refused connection, a reply that is not HTTP, a URL it cannot use) is said, never raised.
    A redirect is not followed (it would turn the POST into a GET without the body)."""
    exchange = _Exchange(url, body, timeout)
    worker = threading.Thread(target=exchange.run, name="notify.webhook", daemon=True)
    worker.start()
    try:
        worker.join(timeout)
    finally:
        late = worker.is_alive()
        if late:
            exchange.cut()
    return f"timed out after {timeout:g} s (notify.timeout)" if late else str(exchange.why)


class _Exchange:
    """One POST and its answer; why is None until it ended ("" when it was a 2xx)."""

    def __init__(self, url: str, body: bytes, timeout: float):
        self.url, self.body, self.timeout = url, body, timeout
        self.why: str | None = None
        self.conn: http.client.HTTPConnection | None = None

    def run(self) -> None:
        try:
            why = self._exchange()
        except http.client.HTTPException as e:  # BadStatusLine, a broken header...: not an HTTP server
            why = f"its answer is not HTTP ({type(e).__name__})"
        except OSError as e:  # refused, unreachable, a bad certificate, the deadline's shutdown
            why = shown(e.strerror or str(e) or type(e).__name__)
        except BaseException as e:  # noqa: BLE001 - whatever else: a notification never ends the run
            why = shown(f"{type(e).__name__}: {e}".removesuffix(": "))
        self.why = why

    def _exchange(self) -> str:
        parts = urlsplit(self.url)
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self.conn = kind(parts.hostname or "", parts.port, timeout=self.timeout)
        try:
            self.conn.request("POST", urlunsplit(("", "", parts.path or "/", parts.query, "")), body=self.body,
                              headers={"Content-Type": "application/json", "User-Agent": "fab-bluegreen"})
            response = self.conn.getresponse()
            response.read(65536)
        finally:
            self.conn.close()
        if 200 <= response.status < 300:
            return ""
        moved = " (a redirect: write the URL it points to)" if 300 <= response.status < 400 else ""
        return f"HTTP {response.status} {shown(str(response.reason))}".rstrip() + moved

    def cut(self) -> None:
        """End the exchange at the deadline: shut its socket, so that its thread ends too."""
        sock = self.conn.sock if self.conn is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def run(command: str, body: bytes, timeout: float, cwd: Path | None = None) -> str:
    """Run the local shell command with body on stdin; "" when it exited 0, else why not.

    Its own session, so that a timeout ends everything it started; its output is kept from fab's
    stdout (which may carry the --json document) and shown, last line only, when it fails."""
    try:
        proc = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True)
    except OSError as e:
        return f"could not start it: {shown(e.strerror or str(e))}"
    try:
        output, _ = proc.communicate(body, timeout=timeout)
    except (subprocess.TimeoutExpired, KeyboardInterrupt) as e:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return "interrupted (Ctrl-C)" if isinstance(e, KeyboardInterrupt) else \
            f"timed out after {timeout:g} s (notify.timeout)"
    if proc.returncode == 0:
        return ""
    last = (output.decode(errors="replace").strip().splitlines() or [""])[-1]
    ended = f"exit {proc.returncode}" if proc.returncode > 0 else f"killed by signal {-proc.returncode}"
    return ended + (f": {shown(last)[:200]}" if last else "")
