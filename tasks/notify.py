"""Tell someone how a run ended: [defaults.notify] of the hosts file, once per run, from the workstation.

The body is the run's --json document (tasks/document.py: credentials already masked), sent when the
run has its result, whatever it is (failed and interrupted runs too). POSTed to `webhook` and/or given
on stdin to the local shell command `command`, each within `timeout` seconds. A notification that
fails (or that Ctrl-C cuts short) is one warning line on stderr, naming which one and why: it never
changes the exit code. The webhook is named by its scheme and host only (its path and query often
hold a token), the command by its key only (never its command line); what either said back is
masked before it is shown."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from .config.schema import Notify
from .mask import shown


def send(settings: Notify, body: str, warn: Callable[[str], None], cwd: Path | None = None) -> None:
    """Send body to the webhook and to the command, if set; a failure is warn(one line)."""
    if settings.webhook:
        try:
            why = post(settings.webhook, body.encode(), settings.timeout)
        except KeyboardInterrupt:
            why = "interrupted (Ctrl-C)"
        if why:
            warn(f"notify.webhook: the POST to {origin(settings.webhook)} failed: {why} (the exit code is unchanged)")
    if settings.command:
        if why := run(settings.command, body.encode(), settings.timeout, cwd):
            warn(f"notify.command failed: {why} (the exit code is unchanged)")


def origin(url: str) -> str:
    """scheme://host[:port] of a URL: what may be shown of it."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{parts.hostname or '?'}{port}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the POST into a GET without the body: report it instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def post(url: str, body: bytes, timeout: float) -> str:
    """POST body as JSON; "" when the server answered 2xx, else why not, in a few words."""
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "fab-bluegreen"})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(65536)
            return "" if 200 <= response.status < 300 else f"HTTP {response.status}"
    except urllib.error.HTTPError as e:
        moved = " (a redirect: write the URL it points to)" if 300 <= e.code < 400 else ""
        return f"HTTP {e.code} {shown(str(e.reason))}{moved}"
    except urllib.error.URLError as e:
        return shown(str(e.reason))
    except (OSError, ValueError) as e:  # a timeout while reading, a URL urllib cannot use
        return shown(str(e) or type(e).__name__)


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
