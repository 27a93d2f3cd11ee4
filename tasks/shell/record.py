"""The per-app record and history kept on each host under dir/.fab-bluegreen/ (pure JSON builders).

record: {"app", "live", "since", "previous",
         "colors": {color: {"images", "commit", "containers", "deployed", "version"}}}
         (version: git describe of the source the images were built from off the host, build.where = "local")
history: one JSON object per line: {"time", "action", "user", "host", "from", "to", "result", ...,
         "versions": {color: what people read}, "shipped": {image name: bytes sent}}
"""

from __future__ import annotations

import getpass
import json
import socket
from datetime import datetime, timezone

from ..config.schema import COLORS
from ..mask import secrets


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def who() -> str:
    """Who is deploying, from where: the local user and workstation."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in a bare container
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def with_live(record: dict | None, app: str, live: str | None, previous: str | None) -> dict:
    """The record once `live` serves; what each colour runs is kept as it was."""
    rec = dict(record or {})
    if rec.get("live") != live:
        rec["since"] = now()
    rec.update(app=app, live=live, previous=previous)
    rec.setdefault("colors", {})
    return rec


def with_color(record: dict, color: str, images: dict[str, str], commit: str,
               containers: dict[str, str] | None = None, version: str = "") -> dict:
    """The record once `color` runs a new version (containers: service -> container ID; version:
    the source's git describe when the images were built off the host)."""
    rec = dict(record)
    entry = {"images": images, "commit": commit or None, "containers": containers or {}, "deployed": now(),
             **({"version": version} if version else {})}
    rec["colors"] = {**rec.get("colors", {}), color: entry}
    return rec


def without_color(record: dict | None, color: str) -> dict:
    """The record once `color` was removed by a cleanup: it can no longer be switched back to."""
    rec = dict(record or {})
    rec["colors"] = {c: v for c, v in rec.get("colors", {}).items() if c != color}
    if rec.get("previous") == color:
        rec["previous"] = None
    return rec


# --- reading them back: a file that is valid JSON but not the shape written here is refused ---

def record_problem(data: object) -> str | None:
    """What is wrong with a parsed record, or None when it has the shape with_live/with_color write
    (keys may be missing: records of older versions lack some)."""
    if not isinstance(data, dict):
        return f"is {_kind(data)}, not a JSON object"
    for key in ("live", "previous"):
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
    return _texts(data.get("versions", {}), "versions")


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
