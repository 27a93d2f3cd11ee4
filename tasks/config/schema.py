"""The settings of one host, as the rest of the tool receives them: frozen, typed, validated
(tasks/config/loader.py builds them from hosts.toml); the rules a value must follow (names, paths,
URLs, one line without control characters); and the ssh target, split as a Connection takes it."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple


class Color(StrEnum):
    """A colour of the app. A StrEnum: printed, compared and written to JSON as "blue" or "green"."""

    BLUE = "blue"
    GREEN = "green"

    @property
    def other(self) -> Color:
        return Color.GREEN if self is Color.BLUE else Color.BLUE


COLORS = (Color.BLUE, Color.GREEN)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\Z")  # never "-x": it would read as an option
PROJECT = re.compile(r"^[a-z0-9][a-z0-9_-]*\Z")  # docker compose's own rule for project names
SSH_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
SSH_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\Z")  # a host name, an IPv4 address or an ssh-config alias
ABSPATH = re.compile(r"^/[A-Za-z0-9_./@+-]*\Z")  # files on the host the switch reads and writes
URL = re.compile(r"^https?://[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]+\Z")  # RFC 3986's characters, no spaces
URLPATH = re.compile(r"^/[A-Za-z0-9._~:/?@!$&'()*+,;=%-]*\Z")
HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?\Z")  # a Host header: name[:port]
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # newlines, NUL, escapes...
CONTROL_BUT_TAB = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")  # shell text: a tab is harmless
SWITCH_MODES = ("nginx", "command", "none")
BUILD_WHERE = ("host", "local")
# a builder: what DOCKER_HOST takes; no part starting with '-' (docker's ssh would take it for an option)
DOCKER_HOST = re.compile(r"^(ssh|tcp|unix)://([A-Za-z0-9_.~%][A-Za-z0-9_.~%-]*@)?[A-Za-z0-9_.~:/\[\]%][A-Za-z0-9_.~:/\[\]%-]*\Z")


@dataclass(frozen=True)
class Health:
    path: str = "/health/"
    retries: int = 10
    interval: float = 1.0
    timeout: float = 2.0
    start_delay: float = 0.0
    host: str = ""  # the Host header of the health check and of the check through nginx; "": none (curl's own)


@dataclass(frozen=True)
class Switch:
    mode: str = "nginx"
    upstream_file: str = "/etc/nginx/conf.d/app_upstream.conf"
    upstream_name: str = "app_backend"
    reload: str = "sudo nginx -s reload"
    verify_url: str = ""
    command: str = ""
    pid_file: str = "/run/nginx.pid"  # nginx's master: its workers show when a reload took effect
    reload_timeout: float = 10.0  # how long nginx may take to serve the new upstream after the reload


@dataclass(frozen=True)
class Timeouts:
    command: float = 120.0  # each compose, curl or nginx command, on top of its own waiting
    prepare: float = 900.0  # each prepare command (a pull or a build is slow on a Pi)
    hook: float = 300.0  # each hook command


@dataclass(frozen=True)
class Hooks:
    after_front: tuple[str, ...] = ()  # the new front is healthy, not yet switched: migrations
    after_switch: tuple[str, ...] = ()
    on_failure: tuple[str, ...] = ()


@dataclass(frozen=True)
class Warmup:
    cpus: float | None = None  # CPUs the capped services share while warming; None: half the host's
    seconds: float = 30.0  # how long the cap holds before it is lifted
    services: tuple[str, ...] | None = None  # None: the background services


@dataclass(frozen=True)
class Broker:
    """A broker per colour (redis in front): where the old colour's waiting tasks are counted."""
    service: str | None = None  # None: the first front service named like redis; "": none
    queues: tuple[str, ...] = ("celery",)
    db: int = 0  # the redis database number of the broker URL (redis://redis:6379/<db>)
    workers: tuple[str, ...] | None = None  # what `fab drain` starts; None: background but beat
    drain_timeout: float = 600.0  # how long `fab drain` waits for the queues to empty


@dataclass(frozen=True)
class Notify:
    """[defaults.notify]: told once per run of a task that changes hosts, from the workstation, with the
    --json document (tasks/notify.py). Not per host: a host's own table may not have it."""
    webhook: str = ""  # an http(s) URL the document is POSTed to; "": none
    command: str = ""  # a local shell command given the document on stdin; "": none
    timeout: float = 10.0  # seconds each of them may take

    @property
    def configured(self) -> bool:
        return bool(self.webhook or self.command)


@dataclass(frozen=True)
class Secrets:
    """Where the app's secrets come from: read on the workstation, written to the host as a file of
    each colour's own (tasks/config/secrets.py), never on a command line."""
    env_file: str = ""  # a dotenv file, relative to the hosts file
    command: str = ""  # or a local command (run in the hosts file's folder) that prints dotenv text
    base: str = ""  # the hosts file's folder (set by the loader)
    origin: str = ""  # where it was set, for errors: "hosts.toml: defaults.secrets.env_file" (set by the loader)

    @property
    def configured(self) -> bool:
        return bool(self.env_file or self.command)


@dataclass(frozen=True)
class Build:
    """Where the images come from: "host" (prepare builds them on each host) or "local" (built once
    by `builder`, off the hosts, and only the layers a host lacks shipped to it over its SSH connection)."""
    where: str = "host"
    builder: str = ""  # the Docker that builds: "" this machine's, else a DOCKER_HOST (ssh://buildbox)
    source: str = "."  # local folder with the compose file and the build contexts (absolute once loaded)
    services: tuple[str, ...] = ()  # the services to build and ship; (): every service with `build:`

    @property
    def local(self) -> bool:
        return self.where == "local"


@dataclass(frozen=True)
class HostSettings:
    name: str
    ssh: str
    app: str = "app"
    dir: str = "~/app"
    compose_file: str = "compose.yml"
    compose: str = "docker compose"
    front: tuple[str, ...] = ("web", "redis")
    background: tuple[str, ...] = ("worker", "beat")
    shared: tuple[str, ...] = ()  # services of neither colour: project <app>-shared, never stopped
    stop_timeout: float = 30.0
    settle: float = 5.0
    prepare: tuple[str, ...] = ()
    connect_timeout: float = 10.0
    ssh_config: str = ""  # empty: ~/.ssh/config; relative paths are relative to the hosts file
    guard_deadline: float | None = None  # seconds without a word from fab before the guard acts; None: 20
    drain_connections: float = 60.0  # cleanup waits this long for open connections to the old colour to close
    ports: tuple[tuple[Color, int], ...] = ((Color.BLUE, 18001), (Color.GREEN, 18002))
    health: Health = Health()
    switch: Switch = Switch()
    timeouts: Timeouts = Timeouts()
    hooks: Hooks = Hooks()
    warmup: Warmup = Warmup()
    broker: Broker = Broker()
    secrets: Secrets = Secrets()
    build: Build = Build()
    # local files (absolute once loaded) copied into each new colour's own folder on the host, whose
    # compose commands then run from its copy of compose_file (tasks/shell/compose.py); (): the compose
    # file already in dir
    upload: tuple[str, ...] = ()

    @property
    def broker_service(self) -> str | None:
        """The colour's own redis, whose queues are counted before its colour goes; None: none."""
        if self.broker.service is not None:
            return self.broker.service or None
        return next((x for x in self.front if "redis" in x.lower() and x not in self.shared), None)

    @property
    def drain_workers(self) -> tuple[str, ...]:
        """The background services `fab drain` starts: never beat (it would send tasks again)."""
        if self.broker.workers is not None:
            return self.broker.workers
        return tuple(x for x in self.background if "beat" not in x.lower())

    @property
    def capped(self) -> tuple[str, ...]:
        """The services the warm-up cap applies to (none when it is off)."""
        if self.warmup.cpus == 0:
            return ()
        return self.background if self.warmup.services is None else self.warmup.services

    @property
    def web(self) -> str:
        return self.front[0]

    def port(self, color: str) -> int:
        return dict(self.ports)[color]

    @property
    def target(self) -> "SshTarget":
        """ssh split as a Connection takes it: Connection(host, user=user, port=port)."""
        return parse_ssh(self.ssh)


class SshTarget(NamedTuple):
    user: str | None  # None: from the SSH config, else the local user
    host: str  # an alias, a name or an address; an IPv6 address without its brackets
    port: int | None  # None: from the SSH config, else 22


def parse_ssh(value: str) -> SshTarget:
    """`alias`, `[user@]host[:port]` or `[user@][ipv6]:port`; ValueError says what is wrong.

    No part may start with '-' (ssh would take it for an option), and the port is 1..65535.
    (Fabric's own shorthand agrees on every form but IPv6, which it cannot split.)"""
    user, at, hostport = value.rpartition("@")
    if hostport.startswith("-") or (at and user.startswith("-")):
        raise ValueError("a host or user may not start with '-' (ssh would take it for an option)")
    if hostport.startswith("["):
        host, closed, rest = hostport[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ValueError("an IPv6 address goes in brackets, then the port: [2001:db8::7]:22")
        port = rest[1:] if rest else None
        try:
            if ipaddress.ip_address(host).version != 6:
                raise ValueError
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
    else:
        if hostport.count(":") > 1:
            raise ValueError("write an IPv6 address in brackets: [2001:db8::7] or [2001:db8::7]:22")
        host, colon, port = hostport.partition(":")
        port = port if colon else None
        if not SSH_HOST.match(host):
            raise ValueError("expected an ssh alias or [user@]host[:port] (a host holds letters, digits, "
                             "'_', '.' and '-', starting with a letter or digit)")
    if at and not SSH_USER.match(user):
        raise ValueError(f"user {user!r}: expected letters, digits, '_', '.' and '-', not starting with '-'")
    if port is not None:
        if not port.isascii() or not port.isdigit():
            raise ValueError(f"the port {port!r} is not a number")
        if not 1 <= int(port) <= 65535:
            raise ValueError(f"port {int(port)} is out of range 1..65535")
    return SshTarget(user if at else None, host, int(port) if port is not None else None)
