"""hosts.toml -> validated, frozen per-host settings (tasks/config/schema.py).

Parsed once at the edge: everything else receives these typed values, never raw dicts.
Every error is one line naming the file, the host and the key, e.g.
``hosts.toml: hosts.pi5.health.retries: expected a whole number, got 'ten'``.
"""

from __future__ import annotations

import math
import os
import shlex
import string
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError, UsageError
from .files import NotAFile, read_regular
from .schema import (ABSPATH, BUILD_WHERE, COLORS, CONTROL, CONTROL_BUT_TAB, DOCKER_HOST, HOSTNAME, NAME, PROJECT,
                     SWITCH_MODES, URL, URLPATH, Broker, Build, Color, Health, Hooks, HostSettings, Notify, Secrets, Switch,
                     Timeouts, Warmup, parse_ssh)


@dataclass(frozen=True)
class Inventory:
    path: Path
    hosts: dict[str, HostSettings]
    groups: dict[str, tuple[str, ...]]
    notify: Notify = Notify()  # [defaults.notify]: once per run, not per host

    def select(self, hosts: list[str], groups: list[str], everything: bool) -> list[HostSettings]:
        """The hosts named on the command line: --host and --group in order, no repeats."""
        names: list[str] = list(self.hosts) if everything else []
        for name in hosts:
            if name not in self.hosts:
                raise UsageError(f"{self.path}: unknown host {name!r} (known hosts: {_known(self.hosts)})")
            names.append(name)
        for group in groups:
            if group not in self.groups:
                raise UsageError(f"{self.path}: unknown group {group!r} (known groups: {_known(self.groups)})")
            names.extend(self.groups[group])
        if not names:
            raise UsageError("name the hosts to work on: --host NAME, --group NAME or --all "
                             f"(hosts in {self.path}: {_known(self.hosts)})")
        return [self.hosts[n] for n in dict.fromkeys(names)]


def webhook_problem(url: str) -> str:
    """Why a webhook's URL cannot be used as it is, or "": credentials before the host (they would
    be sent in the clear by any proxy and shown by every error that quotes the URL) or a port that
    is not a number."""
    if not url:
        return ""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        return ("credentials in the URL (user:password@) are not taken: put the token in the URL's path or "
                "query, as webhook services do")
    try:
        parts.port
    except ValueError:
        return "its port is not a number from 1 to 65535"
    return "" if parts.hostname else "names no host"


def _known(names) -> str:
    return ", ".join(names) or "none"


def _unreadable(path: Path) -> str:
    """Why a file to upload cannot be (no such file, a folder, not a regular file, unreadable); "" if it can."""
    try:
        if not path.exists():
            return "no such file"
        if path.is_dir():
            return "is a folder, not a file"
        if not path.is_file():
            return "is not a regular file"
        with path.open("rb"):
            return ""
    except OSError as e:
        return f"cannot be read: {e.strerror or e}"


# --- the schema: key -> (kind, default). Kinds are checked by _check(). -------------------

_HOST_KEYS: dict[str, str] = {
    "app": "project", "dir": "path", "compose_file": "path", "compose": "command",
    "front": "names+", "background": "names", "shared": "names", "stop_timeout": "seconds", "settle": "seconds",
    "prepare": "strings", "connect_timeout": "seconds+", "ssh_config": "str", "guard_deadline": "seconds+",
    "drain_connections": "seconds",
    "ports": "table", "health": "table", "switch": "table", "timeouts": "table", "hooks": "table",
    "warmup": "table", "broker": "table", "secrets": "table", "build": "table", "upload": "files",
}
_TABLES: dict[str, tuple[type, dict[str, str]]] = {
    "ports": (dict, {c: "port" for c in COLORS}),
    "health": (Health, {"path": "urlpath", "retries": "count", "interval": "seconds",
                        "timeout": "seconds+", "start_delay": "seconds", "host": "hostname"}),
    "switch": (Switch, {"mode": "switch_mode", "upstream_file": "abspath", "upstream_name": "name",
                        "reload": "str", "verify_url": "url", "command": "str",
                        "pid_file": "abspath", "reload_timeout": "seconds+"}),
    "timeouts": (Timeouts, {"command": "seconds+", "prepare": "seconds+", "hook": "seconds+"}),
    "hooks": (Hooks, {"after_front": "strings", "after_switch": "strings", "on_failure": "strings"}),
    "warmup": (Warmup, {"cpus": "cpus", "seconds": "seconds", "services": "names"}),
    "broker": (Broker, {"service": "service", "queues": "names", "db": "db", "workers": "names",
                        "drain_timeout": "seconds+"}),
    "notify": (Notify, {"webhook": "webhook", "command": "str", "timeout": "seconds+"}),  # [defaults] only
    "secrets": (Secrets, {"env_file": "str", "command": "str"}),
    "build": (Build, {"where": "build_where", "builder": "builder", "source": "path", "services": "names"}),
}
_RUN_KEYS = {"notify"}  # keys of [defaults] that are the run's, not a host's


def load(path: str | Path) -> Inventory:
    """Read and validate a hosts file; raise ConfigError naming file, host and key."""
    path = Path(path)
    try:
        raw = tomllib.loads(read_regular(path).decode("utf-8"))  # TOML is UTF-8, whatever the locale
    except NotAFile as e:
        raise ConfigError(f"{path}: {e} (name the hosts file with --hosts-file PATH)") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: nested too deeply") from None
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (name another with --hosts-file PATH)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a hosts file (name the file with --hosts-file PATH)") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}): "
                          "TOML files are UTF-8") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return _Parser(path).inventory(raw)


class _Parser:
    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, message: str) -> None:
        # keys come from the file too: a control character in one must not break the line
        key = CONTROL.sub(lambda m: repr(m.group())[1:-1], key)
        raise ConfigError(f"{self.path}: {key}: {message}")

    def inventory(self, raw: dict[str, Any]) -> Inventory:
        self.unknown(raw, {"defaults", "hosts", "groups"}, "")
        defaults = self.table(raw.get("defaults", {}), "defaults")
        self.unknown(defaults, set(_HOST_KEYS) | _RUN_KEYS, "defaults.")
        notify = self.merged_table("notify", defaults.get("notify"), None, "")
        hosts_raw = self.table(raw.get("hosts", {}), "hosts")
        hosts = {}
        for name, table in hosts_raw.items():
            self.check_name(name, f"hosts.{name}", "host name")
            hosts[name] = self.host(name, defaults, self.table(table, f"hosts.{name}"))
        groups = {}
        for name, members in self.table(raw.get("groups", {}), "groups").items():
            self.check_name(name, f"groups.{name}", "group name")
            members = self.value(f"groups.{name}", "names", members)
            for member in members:
                if member not in hosts:
                    self.fail(f"groups.{name}", f"unknown host {member!r} (known hosts: {_known(hosts)})")
            groups[name] = members
        return Inventory(self.path, hosts, groups, notify)

    def host(self, name: str, defaults: dict, own: dict) -> HostSettings:
        where = f"hosts.{name}"
        for key in _RUN_KEYS & set(own):
            self.fail(f"{where}.{key}", f"{key} is sent once per run, from the workstation, not per host: "
                      f"set it in [defaults.{key}]")
        self.unknown(own, set(_HOST_KEYS) | {"ssh"}, where + ".")
        if "ssh" not in own:
            self.fail(f"{where}.ssh", 'missing: every host needs ssh = "alias" or "[user@]host[:port]"')
        ssh = self.value(f"{where}.ssh", "str", own["ssh"])
        try:
            parse_ssh(ssh)
        except ValueError as e:
            self.fail(f"{where}.ssh", f"{ssh!r} is not an ssh alias or [user@]host[:port]: {e}")
        values: dict[str, Any] = {"name": name, "ssh": ssh}
        for key, kind in _HOST_KEYS.items():
            if kind == "table":
                values[key] = self.merged_table(key, defaults.get(key), own.get(key), where)
            elif key in own or key in defaults:
                at = f"{where}.{key}" if key in own else f"defaults.{key}"
                values[key] = self.value(at, kind, own.get(key, defaults.get(key)))
        if values.get("ssh_config"):
            try:
                values["ssh_config"] = str(self.path.resolve().parent / Path(values["ssh_config"]).expanduser())
            except RuntimeError as e:  # ~nosuchuser/config
                at = f"{where}.ssh_config" if "ssh_config" in own else "defaults.ssh_config"
                self.fail(at, f"{values['ssh_config']!r}: {e}")
        values["secrets"] = self.secrets(values["secrets"], own, where)
        values["build"] = self.build_source(values["build"], where, own)
        if values.get("upload"):
            at = f"{where}.upload" if "upload" in own else "defaults.upload"
            values["upload"] = self.uploads(values["upload"], values.get("compose_file", HostSettings.compose_file), at)
        settings = HostSettings(**values)
        self.cross_checks(settings, where)
        return settings

    def secrets(self, secrets: Secrets, own: dict, where: str) -> Secrets:
        """One source of secrets at most; where it was set and what it is relative to, for
        tasks/config/secrets.py, which reads it when a task needs it."""
        mine = own.get("secrets") or {}
        if secrets.env_file and secrets.command:
            at = f"{where}.secrets" if {"env_file", "command"} & set(mine) else "defaults.secrets"
            self.fail(at, "set env_file or command, not both (a host's own table may empty the other: "
                          'env_file = "")')
        if not secrets.configured:
            return secrets
        key = "env_file" if secrets.env_file else "command"
        at = f"{where}.secrets.{key}" if key in mine else f"defaults.secrets.{key}"
        return replace(secrets, base=str(self.path.resolve().parent), origin=f"{self.path}: {at}")

    def build_source(self, build: Build, where: str, own: dict) -> Build:
        """build.source, relative to the hosts file; with where = "local" it must hold the compose file."""
        at = f"{where}.build.source" if "source" in (own.get("build") or {}) else "defaults.build.source"
        try:
            source = self.path.resolve().parent / Path(build.source).expanduser()
        except RuntimeError as e:  # ~nosuchuser/src
            self.fail(at, f"{build.source!r}: {e}")
        if build.local and not source.is_dir():
            self.fail(at, f"{source} is not a folder: name the folder with the compose file and the build contexts "
                      "(relative to the hosts file)")
        return Build(build.where, build.builder, str(source), build.services)

    def uploads(self, files: tuple[str, ...], compose_file: str, at: str) -> tuple[str, ...]:
        """upload: local files, relative to the hosts file, each a readable regular file; they land in
        a colour's folder on the host by their names (distinct), and the compose file is one of them."""
        paths, names = [], {}
        for i, name in enumerate(files):
            try:
                path = Path(os.path.normpath(self.path.resolve().parent / Path(name).expanduser()))
            except RuntimeError as e:  # ~nosuchuser/compose.yml
                self.fail(f"{at}[{i}]", f"{name!r}: {e}")
            if problem := _unreadable(path):
                self.fail(f"{at}[{i}]", f"{name}: {problem} (upload names local files, relative to the hosts file)")
            if not NAME.match(path.name):
                self.fail(f"{at}[{i}]", f"{name}: the file's name {path.name!r} may hold only letters, digits, '_', "
                          "'.' and '-' (it is its name on the host), and starts with a letter or digit")
            if path.name in names:
                self.fail(f"{at}[{i}]", f"{name}: a file named {path.name!r} is uploaded already ({at}[{names[path.name]}]): "
                          "the files land side by side in a colour's folder, by their names")
            names[path.name] = i
            paths.append(str(path))
        if files and Path(compose_file).name not in names:
            self.fail(at, f"compose_file {compose_file!r} is not among the uploaded files ({', '.join(names)}): each "
                      "colour runs its own copy of the compose file, so upload it (or empty upload: the compose file "
                      "already in dir)")
        return tuple(paths)

    def merged_table(self, key: str, default: Any, own: Any, where: str):
        cls, schema = _TABLES[key]
        merged: dict[str, Any] = {}
        for at, table in ((f"defaults.{key}", default), (f"{where}.{key}", own)):
            if table is None:
                continue
            table = self.table(table, at)
            self.unknown(table, set(schema), at + ".")
            for k, v in table.items():
                merged[k] = self.value(f"{at}.{k}", schema[k], v)
        if cls is dict:
            return tuple((c, merged.get(c, port)) for c, port in HostSettings.ports)  # keys: Color
        return cls(**merged)

    def cross_checks(self, s: HostSettings, where: str) -> None:
        if s.port(Color.BLUE) == s.port(Color.GREEN):
            self.fail(f"{where}.ports", f"blue and green both use port {s.port(Color.BLUE)}: give each colour its own")
        unknown = set(s.capped) - set(s.front) - set(s.background)
        if unknown:
            self.fail(f"{where}.warmup.services", f"{sorted(unknown)} are neither front nor background services")
        both = set(s.front) & set(s.background)
        if both:
            self.fail(f"{where}.background", f"{sorted(both)} also listed in front: a service is one or the other")
        if s.broker.service and s.broker.service not in s.front:
            self.fail(f"{where}.broker.service", f"{s.broker.service!r} is not a front service: the broker of a "
                      f"colour is one of its front services {list(s.front)} (a shared broker needs no counting)")
        if set(s.drain_workers) - set(s.background):
            self.fail(f"{where}.broker.workers", f"{sorted(set(s.drain_workers) - set(s.background))} are not "
                      "background services")
        if s.build.local and not (Path(s.build.source) / s.compose_file).is_file():
            self.fail(f"{where}.build.source", f"{s.compose_file} not found in {s.build.source}: the build reads the "
                      "compose file there (compose_file, relative to build.source)")
        if s.switch.mode == "command" and not s.switch.command:
            self.fail(f"{where}.switch.command", 'mode "command" needs a command, e.g. "my-switch {color} {port}"')
        try:  # exactly {color} and {port}: no {color.attr}, {port:>99999999} or {color!r}
            fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(s.switch.command)
                      if name is not None]
            bad = next((f for f in fields if f[0] not in ("color", "port") or f[1] or f[2]), None)
            if bad:
                raise ValueError(f"not {{{bad[0]}{'!' + bad[2] if bad[2] else ''}{':' + bad[1] if bad[1] else ''}}}")
        except ValueError as e:
            self.fail(f"{where}.switch.command", f"only {{color}} and {{port}} may be filled in ({e})")

    def unknown(self, table: dict, allowed: set[str], prefix: str) -> None:
        for key in table:
            if key not in allowed:
                self.fail(f"{prefix}{key}", f"unknown key (allowed here: {', '.join(sorted(allowed))})")

    def table(self, value: Any, at: str) -> dict:
        if not isinstance(value, dict):
            self.fail(at, f"expected a table, got {value!r}")
        return value

    def check_name(self, name: str, at: str, what: str) -> None:
        if not NAME.match(name):
            self.fail(at, f"{what} {name!r} may hold only letters, digits, '_', '.' and '-', and starts with a "
                      "letter or digit")

    def value(self, at: str, kind: str, v: Any) -> Any:  # noqa: C901 - one branch per kind
        if kind == "webhook":  # its path often holds a token: the value is never repeated
            if not isinstance(v, str) or (v and not URL.match(v)):
                self.fail(at, "expected an http:// or https:// URL of URL characters (no spaces, '\"', '{' or '\\'), "
                          "or empty (the value is not shown: a webhook's URL may hold a token)")
            if why := webhook_problem(v):
                self.fail(at, f"{why} (the value is not shown: a webhook's URL may hold a token)")
            return v
        if kind in ("str", "path", "abspath", "command", "url", "urlpath", "switch_mode", "name", "project",
                    "service", "build_where", "builder", "hostname"):
            if not isinstance(v, str):
                self.fail(at, f"expected a string, got {v!r}")
            # shell text (reload, command) may hold a tab; nothing may hold a newline, NUL or escape
            if (CONTROL_BUT_TAB if kind == "str" else CONTROL).search(v):
                self.fail(at, f"{v!r}: must be one line, without control characters")
        if kind == "project" and not PROJECT.match(v):
            self.fail(at, f"{v!r}: use lowercase letters, digits, '_' and '-' (docker compose project names)")
        if kind == "name" or (kind == "service" and v):
            self.check_name(v, at, "name")
        if kind in ("path", "command") and not v.strip():
            self.fail(at, "must not be empty")
        if kind == "path" and v.startswith("-"):
            self.fail(at, f"{v!r}: must not start with '-' (write ./{v} for a file named so)")
        if kind == "command":
            try:
                words = shlex.split(v)
            except ValueError as e:
                self.fail(at, f"{v!r}: not a command line ({e})")
            if words[0].startswith("-"):
                self.fail(at, f"{v!r}: expected a command, e.g. \"docker compose\"")
        if kind == "abspath" and not ABSPATH.match(v):
            self.fail(at, f"{v!r}: expected an absolute path of letters, digits and '_', '.', '/', '@', '+', '-'")
        if kind == "urlpath" and not URLPATH.match(v):
            self.fail(at, f"{v!r}: expected a path starting with '/', of URL characters (no spaces, '\"', '#', "
                      "'[', '{' or '\\')")
        if kind == "url" and v and not URL.match(v):
            self.fail(at, f"{v!r}: expected an http:// or https:// URL of URL characters (no spaces, "
                      "'\"', '{' or '\\'), or empty")
        if kind == "switch_mode" and v not in SWITCH_MODES:
            self.fail(at, f"{v!r}: expected one of {', '.join(SWITCH_MODES)}")
        if kind == "build_where" and v not in BUILD_WHERE:
            self.fail(at, f"{v!r}: expected \"host\" (prepare builds on each host) or \"local\" (built once by "
                      "the builder, shipped over SSH)")
        if kind == "builder" and v and not DOCKER_HOST.match(v):
            self.fail(at, f"{v!r}: expected \"\" (this machine's Docker) or a DOCKER_HOST such as ssh://buildbox, "
                      "ssh://user@host:22, tcp://host:2376 or unix:///var/run/docker.sock")
        if kind == "hostname" and v and not HOSTNAME.match(v):
            self.fail(at, f"{v!r}: expected a host name (letters, digits, '.' and '-'), optionally with a port "
                      "(app.example.com, app.example.com:8080), or empty")
        if kind == "files":
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                self.fail(at, f"expected a list of file names, got {v!r}")
            for i, x in enumerate(v):
                if CONTROL.search(x) or not x.strip():
                    self.fail(f"{at}[{i}]", f"{x!r}: a file name is one line, not empty, without control characters")
            return tuple(v)
        if kind in ("strings", "names", "names+"):
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                self.fail(at, f"expected a list of strings, got {v!r}")
            if kind == "strings":  # shell commands, one each: a second line would escape the `&&` chain
                for x in v:
                    if CONTROL_BUT_TAB.search(x) or not x.strip():
                        self.fail(at, f"{x!r}: each command is one line, not empty, without control characters")
            else:
                for x in v:
                    self.check_name(x, at, "name")
                if len(set(v)) != len(v):
                    self.fail(at, f"{v!r} names a service twice")
            if kind == "names+" and not v:
                self.fail(at, "needs at least one service (the first is the web service)")
            return tuple(v)
        if kind in ("seconds", "seconds+", "count", "port", "cpus", "db"):
            return self.number(at, kind, v)
        return v

    def number(self, at: str, kind: str, v: Any) -> float | int:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.fail(at, f"expected a number, got {v!r}")
        if not math.isfinite(v):  # TOML's nan, inf, -inf
            self.fail(at, f"expected a finite number, got {v!r}")
        if kind in ("count", "port", "db"):
            if v != int(v):
                self.fail(at, f"expected a whole number, got {v!r}")
            v = int(v)
            low, high = {"count": (1, 1000), "port": (1, 65535), "db": (0, 1000)}[kind]
            if not low <= v <= high:
                self.fail(at, f"{v} is out of range {low}..{high}")
            return v
        if kind == "cpus":
            if not 0 <= v <= 1024:
                self.fail(at, f"{v!r}: expected a number of CPUs, 0 (no cap) or more")
            return float(v)
        if v < 0 or (kind == "seconds+" and v == 0) or v > 86400:
            self.fail(at, f"{v!r}: expected seconds {'above' if kind == 'seconds+' else 'from'} 0 up to 86400")
        return float(v)
