"""The per-app record and history kept on each host under dir/.fab-bluegreen/ (pure JSON builders).

record: {"app", "live", "since", "previous", "staged", "colors": {color: {"images", "commit", "containers",
        "deployed", "version", "uploaded"}}} (Record and Deployed below; "staged" only while a colour is staged;
        version: git describe of the source the images were built from off the host, build.where = "local";
        uploaded: the short sha256 of each file of the colour's own copy, upload)
history: one JSON object per line: {"time", "action", "user", "host", "from", "to", "result", ...,
         "versions": {color: what people read}, "shipped": {image name: bytes sent},
         "uploaded": {file name: the first 12 hex digits of its sha256} (upload)}
"""

from __future__ import annotations

import getpass
import json
import socket
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from ..config.schema import COLORS, Color
from ..mask import secrets
from ..result import HostResult


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def who() -> str:
    """Who is deploying, from where: the local user and workstation."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in a bare container
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class Deployed:
    """What one colour runs, as its deploy found it."""

    images: dict[str, str] = field(default_factory=dict)  # service -> image ID
    commit: str | None = None  # the git commit of dir, when it is a repository
    containers: dict[str, str] = field(default_factory=dict)  # service -> container ID
    deployed: str | None = None  # when (UTC, ISO 8601)
    version: str | None = None  # the source's git describe, when the images were built off the host
    extra: dict = field(default_factory=dict)  # keys a later version wrote: kept as they were

    @classmethod
    def from_json(cls, data: dict) -> "Deployed":
        known = {"images", "commit", "containers", "deployed", "version"}
        return cls(data.get("images") or {}, data.get("commit"), data.get("containers") or {}, data.get("deployed"),
                   data.get("version"), {k: v for k, v in data.items() if k not in known})

    def to_json(self) -> dict:
        return {**self.extra, "images": self.images, "commit": self.commit, "containers": self.containers,
                "deployed": self.deployed, **({"version": self.version} if self.version else {})}


@dataclass(frozen=True)
class Record:
    """The per-app record on a host: which colour serves, since when, which served before it, which
    is staged (deploy --no-switch: its front runs beside the live colour, for fab promote), and
    what each colour runs. Read with from_json() once record_problem() passed; changed only through
    the with_*() methods, which return a new record."""

    app: str | None = None
    live: Color | None = None
    since: str | None = None
    previous: Color | None = None
    staged: Color | None = None
    colors: dict[Color, Deployed] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # keys a later version wrote: kept as they were
    read_as: dict | None = field(default=None, compare=False)  # as read: written back unchanged (a rollback)

    @classmethod
    def from_json(cls, data: dict) -> "Record":
        known = {"app", "live", "since", "previous", "staged", "colors"}
        color = lambda c: Color(c) if c is not None else None  # noqa: E731 (record_problem checked them)
        return cls(data.get("app"), color(data.get("live")), data.get("since"), color(data.get("previous")),
                   color(data.get("staged")), {Color(c): Deployed.from_json(v) for c, v in (data.get("colors") or {}).items() if c in COLORS},
                   {k: v for k, v in data.items() if k not in known}, data)

    def to_json(self) -> dict:
        if self.read_as is not None:
            return self.read_as
        staged = {"staged": self.staged} if self.staged else {}
        return {**self.extra, "app": self.app, "live": self.live, "since": self.since, "previous": self.previous,
                **staged, "colors": {c: d.to_json() for c, d in self.colors.items()}}

    def dump(self) -> str:
        return dump(self.to_json())

    def deployed(self, color: str | None) -> Deployed:
        return self.colors.get(color) or Deployed() if color else Deployed()

    def with_live(self, app: str, live: str | None, previous: str | None) -> "Record":
        """The record once `live` serves (no longer staged, if it was); what each colour runs is kept."""
        since = self.since if self.live == live else now()
        staged = None if self.staged == live else self.staged
        return replace(self, app=app, live=live, previous=previous, since=since, staged=staged, read_as=None)

    def with_color(self, color: Color, images: dict[str, str], commit: str,
                   containers: dict[str, str] | None = None, version: str = "",
                   uploaded: dict[str, str] | None = None) -> "Record":
        """The record once `color` runs a new version (containers: service -> container ID; version:
        the source's git describe when the images were built off the host; uploaded: the short
        sha256 of each file of its own copy, upload)."""
        entry = Deployed(images, commit or None, containers or {}, now(), version or None,
                         {"uploaded": dict(uploaded)} if uploaded else {})
        return replace(self, colors={**self.colors, color: entry}, read_as=None)

    def uploaded(self, color: str) -> dict[str, str]:
        """The short sha256 of each file of `color`'s own copy, as its deploy recorded them (host text:
        only strings are taken)."""
        found = self.deployed(color).extra.get("uploaded")
        return {k: v for k, v in found.items() if isinstance(k, str) and isinstance(v, str)} \
            if isinstance(found, dict) else {}

    def with_staged(self, color: Color) -> "Record":
        """The record once `color`'s front was staged (recreated): no longer a colour to go back to."""
        return replace(self, staged=color, previous=None if self.previous == color else self.previous, read_as=None)

    def without_color(self, color: str) -> "Record":
        """The record once `color` was removed (a cleanup, a rollback of a staged colour): it can no
        longer be switched back to, nor promoted."""
        return replace(self, colors={c: d for c, d in self.colors.items() if c != color},
                       previous=None if self.previous == color else self.previous,
                       staged=None if self.staged == color else self.staged, read_as=None)


# --- reading them back: a file that is valid JSON but not the shape written here is refused ---

def loads(text: str) -> object:
    """json.loads for a state file's text, which anyone with the SSH user's rights could have made:
    what it raises on hostile JSON (RecursionError on 50,000 '[', ValueError on a number of 5000
    digits) is a ValueError, as for any JSON that is not valid (json.JSONDecodeError)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def record_problem(data: object) -> str | None:
    """What is wrong with a parsed record, or None when it has the shape with_live/with_color write
    (keys may be missing: records of older versions lack some)."""
    if not isinstance(data, dict):
        return f"is {_kind(data)}, not a JSON object"
    for key in ("live", "previous", "staged"):
        if data.get(key) is not None and data[key] not in COLORS:
            return f"has {key} {_shown(data[key])}, not blue, green or null"
    if why := _text_fields(data, ("app", "since")):
        return why
    colors = data.get("colors", {})
    if not isinstance(colors, dict):
        return f"has colors as {_kind(colors)}, not an object"
    for color, entry in colors.items():
        if not isinstance(entry, dict):
            return f"has colors.{color} as {_kind(entry)}, not an object"
        for key in ("images", "containers"):
            if why := _texts(entry.get(key, {}), f"colors.{color}.{key}"):
                return why
        if why := _text_fields(entry, ("commit", "deployed", "version"), f"colors.{color}."):
            return why
    return None


def history_problem(data: object) -> str | None:
    """What is wrong with a parsed history line, or None when history_line() could have written it."""
    if not isinstance(data, dict):
        return f"is {_kind(data)}, not a JSON object"
    for key in ("time", "action", "user", "host", "result"):  # always written, as strings
        if key in data and not isinstance(data[key], str):
            return f"has {key} as {_kind(data[key])}, not a string"
    for key in ("from", "to"):
        if data.get(key) is not None and data[key] not in COLORS:
            return f"has {key} {_shown(data[key])}, not blue, green or null"
    if why := _text_fields(data, ("step", "reason", "service", "message")):
        return why
    shipped = data.get("shipped", {})
    if not isinstance(shipped, dict):
        return f"has shipped as {_kind(shipped)}, not an object"
    for name, sent in shipped.items():
        if isinstance(sent, bool) or not isinstance(sent, int) or sent < 0:
            return f"has shipped.{name} {_shown(sent)}, not a number of bytes"
    return _texts(data.get("versions", {}), "versions") or _texts(data.get("uploaded", {}), "uploaded")


def lock_problem(data: object) -> str | None:
    """What is wrong with a parsed lock info, or None when lock.take() could have written it."""
    if not isinstance(data, dict):
        return f"is {_kind(data)}, not a JSON object"
    if why := _text_fields(data, ("who", "when", "task", "message", "token")):
        return why
    if data.get("since") is not None and (isinstance(data["since"], bool) or not isinstance(data["since"], int)):
        return f"has since {_shown(data['since'])}, not a number of seconds"
    return None


def _text_fields(data: dict, keys: tuple[str, ...], prefix: str = "") -> str | None:
    for key in keys:
        if data.get(key) is not None and not isinstance(data[key], str):
            return f"has {prefix}{key} as {_kind(data[key])}, not a string"
    return None


def _texts(value: object, name: str) -> str | None:
    """An object whose values are strings (service: image ID, colour: version)."""
    if not isinstance(value, dict):
        return f"has {name} as {_kind(value)}, not an object"
    return _text_fields(value, tuple(value), f"{name}.")


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    names = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number",
             type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _shown(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def dump(data: dict) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def history_line(action: str, host: str, result: str, **fields) -> str:
    """One history line; its texts (a reason, a --message) with any credential masked: the file is
    kept on the host, and `fab history` shows it to whoever runs it."""
    fields = {k: secrets(v) if isinstance(v, str) else v for k, v in fields.items()}
    return dump({"time": now(), "action": action, "user": who(), "host": host, "result": result, **fields})


def history_of(result: HostResult, /, **fields) -> str:
    """The history line of one host's action, as its result ended: the action, host, outcome, from,
    to and reason are the result's; `fields` adds what only that action says (or overrides them: the
    line fab writes when its guard acted). Built by history_line(), as the guard's own line is."""
    said = {"from": result.from_color, "to": result.to_color, "reason": result.reason, **fields}
    return history_line(result.action, result.host, said.pop("result", result.outcome), **said)
