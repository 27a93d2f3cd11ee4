"""The per-app record and history kept on each host under dir/.fab-bluegreen/ (pure JSON builders).

record: {"app", "live", "since", "previous", "colors": {color: {"images", "commit", "deployed"}}}
history: one JSON object per line: {"time", "action", "user", "host", "from", "to", "result", ...}
"""

from __future__ import annotations

import getpass
import json
import socket
from datetime import datetime, timezone


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
    rec.pop("unreadable", None)
    if rec.get("live") != live:
        rec["since"] = now()
    rec.update(app=app, live=live, previous=previous)
    rec.setdefault("colors", {})
    return rec


def with_color(record: dict, color: str, images: dict[str, str], commit: str,
               containers: dict[str, str] | None = None) -> dict:
    """The record once `color` runs a new version (containers: service -> container ID)."""
    rec = dict(record)
    rec["colors"] = {**rec.get("colors", {}), color: {"images": images, "commit": commit or None,
                                                      "containers": containers or {}, "deployed": now()}}
    return rec


def without_color(record: dict | None, color: str) -> dict:
    """The record once `color` was removed by a cleanup: it can no longer be switched back to."""
    rec = dict(record or {})
    rec["colors"] = {c: v for c, v in rec.get("colors", {}).items() if c != color}
    if rec.get("previous") == color:
        rec["previous"] = None
    return rec


def dump(data: dict) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def history_line(action: str, host: str, result: str, **fields) -> str:
    return dump({"time": now(), "action": action, "user": who(), "host": host, "result": result, **fields})
