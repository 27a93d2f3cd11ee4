"""The one seam for running commands on a host.

- SshRemote: a Fabric Connection with strict host-key checking, a connect timeout, bounded
  channel opening and keepalives; stream() feeds bytes to a command's stdin over a paramiko
  channel of it (an image into `docker load`). The only module that imports Fabric or paramiko.
- RecordingRemote: records every command and answers from a script: unit tests of the
  sequence, its rollback order and its error paths, with no SSH.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol

from ..config.schema import HostSettings
from ..errors import Unreachable
from ..shell.base import WHY

KEEPALIVE_SECONDS = 3
DEAD_LINK_SECONDS = 12  # unacknowledged data for this long: the link is dead
TIMED_OUT = 124  # Result.exited of a command stopped at its time limit (as timeout(1) exits)
TRACE = os.environ.get("FBG_TRACE") == "1"  # each command's seconds on stderr (bench/run.py counts them)


@dataclass(frozen=True)
class Result:
    command: str
    exited: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.exited == 0

    def why(self) -> str:
        """The command's own reason (the last `@@fbg:why` line a command of the tool printed), else
        the last meaningful line of output, for a one-line reason."""
        reasons = [ln[len(WHY):].strip() for ln in self.stdout.splitlines() if ln.startswith(WHY)]
        if reasons:
            return reasons[-1][:300]
        for text in (self.stderr, self.stdout):
            lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
            if lines:
                return lines[-1][:300]
        return f"exit code {self.exited}"


class Remote(Protocol):
    name: str
    dry_run: bool
    feeds: bool  # runs commands for real over SSH: ping() and give_up() keep an armed guard fed (feeder.py)

    def run(self, command: str, timeout: float, on_line: Callable[[str], None] | None = None) -> Result:
        """Run a command that may change the host; on_line, if given, receives each line of its
        output (stdout and stderr) as it comes: progress of a command that waits, a long step's life."""

    def read(self, command: str, timeout: float) -> Result:
        """Run a command that only reads (a dry run runs these for real)."""

    def put(self, command: str, data: bytes, what: str, timeout: float) -> Result:
        """Run a command that may change the host with `data` on its standard input: how a file's
        text reaches the host, never on a command line. `what` names the data without showing
        it (a dry run's plan says it)."""

    def stream(self, command: str, source: Iterable[bytes], timeout: float,
               sent: Callable[[int], None] = ...) -> Result:
        """Run a command that may change the host with `source`'s bytes on its stdin (binary, in
        chunks); `sent(n)` after each chunk. A dry run sends nothing: its plan says what would go."""

    def close(self) -> None: ...


class SshRemote:
    """Runs commands over one SSH connection, opened once for the whole run."""

    dry_run = False
    feeds = True
    lost = ""  # why the connection was lost or given up: from then on nothing is sent, nor reconnected

    def __init__(self, s: HostSettings, base_config=None):
        self.name = s.name
        self.settings = s
        self.conn = _connection(s, base_config)

    def open(self) -> None:
        """Connect: first each ProxyJump hop (innermost first), each with its host key checked and
        named when refused, then the host through them."""
        for hop in reversed(_hops(self.conn)):
            _open(hop, self.settings, f"the jump host {hop.host} (ProxyJump of {self.settings.name})")
        _open(self.conn, self.settings, self.conn.host)
        self.conn.transport.set_keepalive(KEEPALIVE_SECONDS)
        _notice_dead_links(self.conn.transport.sock)

    def run(self, command: str, timeout: float, on_line: Callable[[str], None] | None = None) -> Result:
        from invoke.exceptions import CommandTimedOut

        self._check_lost()
        started = time.monotonic()
        # the runner writes output to out_stream/err_stream as it comes only when it is not hidden
        shown = {"hide": True} if on_line is None else \
            {"hide": False, "out_stream": _Lines(on_line), "err_stream": _Lines(on_line)}
        try:
            with _lost_is_unreachable():
                r = self.conn.run(command, warn=True, timeout=timeout, in_stream=False, pty=False, **shown)
        except CommandTimedOut:
            return Result(command, TIMED_OUT, "", f"timed out after {timeout:g} s")
        except Unreachable as e:
            raise self._lose(str(e)) from None
        if r.exited == -1 and not self.conn.is_connected:  # the channel closed with the transport
            raise self._lose("the connection was lost (no answer from the host)")
        self._trace(started, r.exited, command)
        if r.exited == -1 and time.monotonic() - started >= timeout - 0.5:
            # the runner's timer stopped it, but the timeout was not reported as such: say so
            return Result(command, TIMED_OUT, r.stdout, f"timed out after {timeout:g} s")
        return Result(command, r.exited, r.stdout, r.stderr)

    read = run

    def put(self, command: str, data: bytes, what: str, timeout: float) -> Result:
        """stream() of one chunk: a file's text, never on a command line (`what` names it for a plan)."""
        return self.stream(command, [data], timeout)

    def stream(self, command: str, source: Iterable[bytes], timeout: float,
               sent: Callable[[int], None] = lambda n: None) -> Result:
        """Each chunk of `source` sent as it comes over a channel of this connection, into the
        command's stdin (Invoke's in_stream would decode the bytes as text, and corrupt them); its
        output read at the end. The command's exit code ends it early (the chunks left are not made)."""
        import paramiko

        self._check_lost()
        started = time.monotonic()
        chunks = iter(source)
        chan = None
        try:
            chan = self.conn.transport.open_session(timeout=self.settings.connect_timeout)
            chan.settimeout(timeout)
            chan.exec_command(command)
            for chunk in chunks:
                if chan.exit_status_ready() or time.monotonic() - started > timeout:
                    break
                chan.sendall(chunk)
                sent(len(chunk))
            chan.shutdown_write()
            exited, out, err = _finish(chan, started + timeout)
        except socket.timeout:
            exited, out, err = TIMED_OUT, "", ""
        except (OSError, EOFError, paramiko.SSHException) as e:
            if not self.conn.is_connected or not self.conn.transport.is_active():
                raise self._lose(f"the connection was lost: {e or type(e).__name__}") from None
            exited, out, err = _finish(chan, started + timeout) if chan else (-1, "", str(e))
        finally:
            if hasattr(chunks, "close"):
                chunks.close()  # stops what makes the chunks (a compressor) when the command ended early
            if chan is not None:
                chan.close()
        self._trace(started, exited, f"(stream) {command}")
        if exited == TIMED_OUT:
            return Result(command, TIMED_OUT, out, f"timed out after {timeout:g} s")
        return Result(command, exited, out, err)

    def ping(self, command: str, timeout: float) -> int:
        """A short command over a channel of its own, beside whatever else runs on this connection
        (the guard's feed): its exit code. Raises when it is gone or no answer came within `timeout`
        (or blocks until the connection closes: the feeder watches the time); never reopens it."""
        transport = self.conn.transport
        if self.lost or transport is None or not transport.is_active():
            raise Unreachable(self.lost or "the connection is closed")
        chan = transport.open_session(timeout=timeout)
        try:
            chan.exec_command(command)
            exited = _finish(chan, time.monotonic() + timeout)[0]
        finally:
            chan.close()
        if exited == TIMED_OUT:
            raise Unreachable(f"no answer within {timeout:g} s")
        return exited

    def give_up(self, reason: str) -> None:
        """The link is gone (feeder.py): close the connection, so the command waiting on it ends now
        (Unreachable, `reason`) instead of at its time limit."""
        self._lose(reason)
        if self.conn.transport is not None:
            self.conn.transport.close()

    def _lose(self, reason: str) -> Unreachable:
        """The connection is gone, for the rest of the run: nothing more is sent and it is never
        reopened (a sequence cut off mid-step is its guard's: a reconnect must not disarm it)."""
        self.lost = self.lost or reason
        return Unreachable(self.lost)

    def _check_lost(self) -> None:
        if self.lost:
            raise Unreachable(self.lost)

    def _trace(self, started: float, exited: int | None, command: str) -> None:
        if TRACE:
            print(f"[trace] {self.name}: {time.monotonic() - started:.3f} s exit {exited}: {' '.join(command.split())}",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        self.conn.close()


class _Lines:
    """A stream for the runner's output that hands on each complete line as it comes."""

    def __init__(self, on_line: Callable[[str], None]):
        self.on_line, self.partial = on_line, ""

    def write(self, text: str) -> None:
        *lines, self.partial = (self.partial + text).split("\n")
        for line in lines:
            self.on_line(line)

    def flush(self) -> None:
        pass


@contextmanager
def _lost_is_unreachable():
    """A connection lost under a command (an OS error, or one of paramiko's: the session is gone) is
    Unreachable, in one line."""
    try:
        yield
    except (OSError, EOFError, socket.timeout) as e:
        raise Unreachable(f"the connection was lost: {e or type(e).__name__}") from None
    except Exception as e:  # paramiko.SSHException and friends: the session is gone
        if type(e).__module__.startswith("paramiko"):
            raise Unreachable(f"the connection was lost: {e}") from None
        raise


def _finish(chan, deadline: float) -> tuple[int, str, str]:
    """A channel's exit code and output, waiting until `deadline` at most (then TIMED_OUT)."""
    out, err = bytearray(), bytearray()
    while True:
        if chan.recv_ready():
            out += chan.recv(65536)
        elif chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
        elif chan.exit_status_ready() or chan.closed:
            break
        elif time.monotonic() > deadline:
            return TIMED_OUT, out.decode(errors="replace"), err.decode(errors="replace")
        else:
            time.sleep(0.02)
    exited = chan.recv_exit_status() if chan.exit_status_ready() else -1
    return exited, out.decode(errors="replace"), err.decode(errors="replace")


def _open(conn, s: HostSettings, what: str) -> None:
    """Open one Connection, turning paramiko's errors into one line that names `what`."""
    import paramiko

    target = f"{conn.user}@{conn.host}:{conn.port}"
    entry = shlex.quote(known_hosts_name(conn.host, conn.port))
    ssh = f"ssh{'' if int(conn.port) == 22 else f' -p {conn.port}'} {shlex.quote(conn.host)}"
    try:
        conn.open()
    except paramiko.BadHostKeyException as e:
        raise Unreachable(
            f"the host key of {what} has CHANGED (offered {fingerprint(e.key)}, known {fingerprint(e.expected_key)}): "
            f"if you know why, remove the old key with `ssh-keygen -R {entry}` and trust the new one with `{ssh}`"
        ) from None
    except paramiko.AuthenticationException as e:
        raise Unreachable(f"authentication failed for {target} ({e}): check the SSH key or agent") from None
    except paramiko.SSHException as e:
        if "not found in known_hosts" in str(e):
            files = ", ".join(_known_hosts_files(conn.ssh_config)) or "known_hosts"
            raise Unreachable(
                f"the host key of {what} is not in {files}: check it, then trust it with `{ssh}` "
                f"once (or ssh-keyscan -p {conn.port} {shlex.quote(conn.host)} >> ~/.ssh/known_hosts)"
            ) from None
        raise Unreachable(f"cannot connect to {target}: {e}") from None
    except (OSError, EOFError) as e:
        raise Unreachable(f"cannot connect to {target}: {e or type(e).__name__}: is the host up?") from None


def fingerprint(key) -> str:
    """A host key as OpenSSH shows it: SHA256: and the unpadded base64 of the SHA-256 of its blob."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def known_hosts_name(host: str, port: int | str) -> str:
    """How known_hosts (and ssh-keygen -R) names a host: `host`, or `[host]:port` off port 22."""
    return host if int(port) == 22 else f"[{host}]:{port}"


def _hops(conn) -> list:
    """The ProxyJump hops Fabric made for a Connection, nearest the host first."""
    from fabric import Connection

    hops, gateway = [], conn.gateway
    while isinstance(gateway, Connection):
        hops.append(gateway)
        gateway = gateway.gateway
    return hops


def _check_host_keys(conn) -> None:
    """Fabric accepts unknown host keys by default: check them against known_hosts instead
    (the SSH config's UserKnownHostsFile for that host, as OpenSSH does)."""
    from paramiko import RejectPolicy

    conn.client.set_missing_host_key_policy(RejectPolicy())
    for path in _known_hosts_files(conn.ssh_config):
        conn.client.get_host_keys().load(path)


def _notice_dead_links(sock) -> None:
    """A link that dies silently (no packets, no RST) is noticed within DEAD_LINK_SECONDS: the
    SSH keepalives leave unacknowledged data, and TCP_USER_TIMEOUT fails the socket then."""
    if not isinstance(sock, socket.socket):
        return  # a ProxyCommand or gateway channel: its own transport's timeouts apply
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", KEEPALIVE_SECONDS), ("TCP_KEEPINTVL", KEEPALIVE_SECONDS),
                        ("TCP_KEEPCNT", 3), ("TCP_USER_TIMEOUT", DEAD_LINK_SECONDS * 1000)):
        if hasattr(socket, name):  # Linux; other systems keep their defaults
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def _connection(s: HostSettings, base_config):
    from fabric import Config, Connection
    from paramiko import SSHConfig

    config = base_config.clone() if base_config is not None else Config()
    if s.ssh_config:
        if not Path(s.ssh_config).is_file():
            raise Unreachable(f"ssh_config {s.ssh_config} does not exist")
        # Like `ssh -F FILE`: this file replaces ~/.ssh/config. (A cloned Fabric config keeps its
        # parsed SSH config object and would ignore load_ssh_config(), so set it directly.)
        config._set(base_ssh_config=SSHConfig.from_path(s.ssh_config))
    t = s.connect_timeout
    target = s.target  # validated: [user@]host[:port] (IPv6 in brackets), or an alias
    conn = Connection(target.host, user=target.user, port=target.port, config=config, connect_timeout=max(1, round(t)),
                      connect_kwargs={"banner_timeout": t, "auth_timeout": t, "channel_timeout": t})
    # Fabric builds each ProxyJump hop as a Connection of its own, accepting any host key: not here
    for c in (conn, *_hops(conn)):
        _check_host_keys(c)
        c.connect_timeout = conn.connect_timeout
    return conn


def _known_hosts_files(ssh_config) -> list[str]:
    """UserKnownHostsFile from the SSH config for this host, else ~/.ssh/known_hosts, as OpenSSH does."""
    configured = ssh_config.get("userknownhostsfile")
    names = configured.split() if configured else ["~/.ssh/known_hosts", "~/.ssh/known_hosts2"]
    paths = [os.path.expanduser(n) for n in names]
    return [p for p in paths if os.path.isfile(p)]


@dataclass
class RecordingRemote:
    """Records commands; `answer(command)` returns (exit code, stdout) or None for (0, "")."""

    name: str = "test"
    answer: Callable[[str], tuple[int, str] | None] = lambda command: None
    commands: list[str] = field(default_factory=list)
    dry_run = False
    feeds = False  # no guard to feed: the unit tests' fake host

    puts: list[tuple[str, bytes]] = field(default_factory=list)  # (command, its standard input)
    streamed: list[bytes] = field(default_factory=list)  # what stream() took, in order

    def run(self, command: str, timeout: float, on_line: Callable[[str], None] | None = None) -> Result:
        self.commands.append(command)
        exited, out = self.answer(command) or (0, "")
        for line in out.splitlines() if on_line else ():
            on_line(line)
        return Result(command, exited, out, "")

    read = run

    def put(self, command: str, data: bytes, what: str, timeout: float) -> Result:
        self.puts.append((command, data))
        return self.run(command, timeout)

    def stream(self, command: str, source: Iterable[bytes], timeout: float,
               sent: Callable[[int], None] = lambda n: None) -> Result:
        """Records the command, and takes every chunk as a host would (kept in `streamed`)."""
        data = bytearray()
        for chunk in source:
            data += chunk
            sent(len(chunk))
        self.streamed.append(bytes(data))
        return self.run(command, timeout)

    def close(self) -> None:
        pass


class DryRunRemote:
    """--dry-run: reads run for real; everything that would change the host is only recorded.

    The plan is every command in order, exactly as the real run would send it."""

    dry_run = True
    feeds = False  # the guard is never armed

    def __init__(self, inner: Remote):
        self.inner, self.name = inner, inner.name
        self.plan: list[tuple[str, str]] = []  # ("read" | "run", command)

    def open(self) -> None:
        if hasattr(self.inner, "open"):
            self.inner.open()

    def run(self, command: str, timeout: float, on_line: Callable[[str], None] | None = None) -> Result:
        self.plan.append(("run", command))
        return Result(command, 0, "", "")

    def read(self, command: str, timeout: float) -> Result:
        self.plan.append(("read", command))
        return self.inner.run(command, timeout)

    def put(self, command: str, data: bytes, what: str, timeout: float) -> Result:
        self.plan.append(("run", f"{command}  # on its standard input: {shlex.quote(what)}"))
        return Result(command, 0, "", "")

    def stream(self, command: str, source: Iterable[bytes], timeout: float,
               sent: Callable[[int], None] = lambda n: None) -> Result:
        """Only planned: `source` says what it would send (nothing is made or sent)."""
        self.plan.append(("run", f"{command}  # stdin: {source}"))
        return Result(command, 0, "", "")

    def close(self) -> None:
        self.inner.close()
