"""The app's secrets ([defaults.secrets]), read on the workstation when a task needs them: a dotenv
file (env_file, relative to the hosts file) or the output of a local command (command, run once per
run). Checked before any host is contacted; an error names the file (or the command's key) and
the line, never a value. The text goes to each host as it is (compose reads it: env_file), on a
channel's standard input, never on a command line (tasks/host/deploy.py, write_secrets).

The values are handed to tasks/mask.py at once: whatever fab shows or keeps masks them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import mask
from ..errors import Cancelled, ConfigError
from .files import NotAFile, read_regular
from .schema import CONTROL_BUT_TAB, HostSettings, Secrets

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")  # a shell variable's name
COMMAND_TIMEOUT = 120.0  # seconds the secrets command may take (a password manager may ask for a passphrase)


@dataclass(frozen=True)
class SecretEnv:
    """One source's dotenv text, as bytes to write to the host. Its repr never shows a value."""

    source: str  # what to call it: "secrets/prod.env", or the command
    text: bytes = field(repr=False)
    keys: tuple[str, ...] = ()
    values: tuple[str, ...] = field(default=(), repr=False)
    short: tuple[str, ...] = ()  # the keys whose value is too short to mask (mask.SHORTEST_HIDDEN)

    def describe(self) -> str:
        """What --dry-run and the progress say: "3 keys from secrets/prod.env"."""
        return f"{len(self.keys)} key{'' if len(self.keys) == 1 else 's'} from {self.source}"


def parse(text: str, name: str, short: list[str] | None = None) -> tuple[list[str], list[str]]:
    """(keys, values) of dotenv text: KEY=value lines, blank lines and # comments, an optional
    `export `, values bare (a ` #` starts a comment), in '...' or in "..." (with \\ escapes), each
    on one line. ConfigError `NAME:LINE: what is wrong`, never the line itself. The keys whose value
    is too short to be masked (1 to 3 characters) are added to short, if given."""
    keys, values = [], []
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.removesuffix("\r").strip()
        if not line or line.startswith("#"):
            continue
        where = f"{name}:{number}"
        if CONTROL_BUT_TAB.search(line):
            raise ConfigError(f"{where}: holds a control character")
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[len("export"):].lstrip()
        key, equals, rest = line.partition("=")
        if not equals:
            raise ConfigError(f"{where}: not KEY=value")
        if not NAME.match(key.strip()):
            raise ConfigError(f"{where}: the name before '=' is not a shell name: letters, digits and _, "
                              "not starting with a digit")
        keys.append(key.strip())
        found = _values(rest.strip(), where)
        if short is not None and 0 < len(found[-1]) < mask.SHORTEST_HIDDEN:
            short.append(key.strip())
        values += found
    return keys, values


def _values(rest: str, where: str) -> list[str]:
    """The value as written and as compose reads it (both are masked)."""
    quote = rest[:1]
    if quote not in ("'", '"'):
        bare = re.split(r"\s#", rest, maxsplit=1)[0].strip()
        return [bare]
    value, i = [], 1
    while i < len(rest) and rest[i] != quote:
        if quote == '"' and rest[i] == "\\" and i + 1 < len(rest):
            i += 1
            value.append({"n": "\n", "t": "\t", "r": "\r"}.get(rest[i], rest[i]))
        else:
            value.append(rest[i])
        i += 1
    if i >= len(rest):
        raise ConfigError(f"{where}: a quoted value is not closed on its line")
    after = rest[i + 1:].strip()
    if after and not after.startswith("#"):
        raise ConfigError(f"{where}: something other than a # comment follows the closing quote")
    return [rest[1:i], "".join(value)]


def values_in(text: str) -> list[str]:
    """The values of dotenv text as a file on a host holds it (a colour's secrets, written by an
    earlier run): a line that does not parse is passed over, never shown."""
    found = []
    for line in text.splitlines():
        try:
            found += parse(line, "")[1]
        except ConfigError:
            continue
    return found


def load(secrets: Secrets) -> SecretEnv:
    """Read and check one source of secrets."""
    if secrets.env_file:
        path = Path(secrets.base) / Path(secrets.env_file).expanduser()
        try:
            data = read_regular(path)
        except NotAFile as e:
            raise ConfigError(f"{secrets.origin}: {secrets.env_file}: {e}") from None
        except FileNotFoundError:
            raise ConfigError(f"{secrets.origin}: {secrets.env_file}: no such file") from None
        except OSError as e:
            raise ConfigError(f"{secrets.origin}: {secrets.env_file}: cannot be read: {e.strerror or e}") from None
        source = secrets.env_file
    else:
        data = _run(secrets)
        source = f"`{secrets.command}`"
    short: list[str] = []
    try:
        keys, values = parse(data.decode("utf-8"), source, short)
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ConfigError(f"{source}:{line}: not UTF-8 text ({secrets.origin})") from None
    except ConfigError as e:
        raise ConfigError(f"{e} ({secrets.origin})") from None
    return SecretEnv(source, data, tuple(keys), tuple(values), tuple(dict.fromkeys(short)))


def _run(secrets: Secrets) -> bytes:
    """The command's standard output. Its standard error is not shown (it might echo what it read).

    Its own session (it may still read the terminal on its standard input, as a passphrase prompt
    does), so that a timeout or Ctrl-C ends everything it started: Ctrl-C is exit 130."""
    try:
        proc = subprocess.Popen(secrets.command, shell=True, cwd=secrets.base or None, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
    except OSError as e:
        raise ConfigError(f"{secrets.origin}: cannot be run: {e.strerror or e}") from None
    try:
        output, _ = proc.communicate(timeout=COMMAND_TIMEOUT)
    except (subprocess.TimeoutExpired, KeyboardInterrupt) as e:
        _end(proc)
        if isinstance(e, KeyboardInterrupt):
            raise Cancelled(f"interrupted (Ctrl-C) while {secrets.origin} ran: nothing ran on any host") from None
        raise ConfigError(f"{secrets.origin}: did not finish within {COMMAND_TIMEOUT:g} s") from None
    if proc.returncode != 0:
        raise ConfigError(f"{secrets.origin}: exit {proc.returncode} (its output is not shown: run it yourself "
                          "to see why)")
    return output


def _end(proc: subprocess.Popen) -> None:
    """End the command and everything it started (its process group), and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


def for_hosts(hosts: list[HostSettings], warn: Callable[[str], None] = lambda line: None
              ) -> dict[str, SecretEnv | None]:
    """Each host's secrets (None: none configured), each source read once however many hosts share
    it; their values masked from now on (tasks/mask.py). A value too short to mask is one warning
    naming its key (never the value)."""
    read: dict[Secrets, SecretEnv] = {}
    envs: dict[str, SecretEnv | None] = {}
    for s in hosts:
        if not s.secrets.configured:
            envs[s.name] = None
            continue
        source = Secrets(s.secrets.env_file, s.secrets.command, s.secrets.base)  # the same one, wherever set
        if source not in read:
            read[source] = load(s.secrets)
            mask.hide(read[source].values)
            for key in read[source].short:
                warn(f"{read[source].source}: the value of {key} is shorter than {mask.SHORTEST_HIDDEN} characters: "
                     f"it is not masked in what fab shows or keeps ({s.secrets.origin})")
        envs[s.name] = read[source]
    return envs
