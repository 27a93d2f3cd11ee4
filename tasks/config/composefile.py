"""A compose file read as far as `fab init` needs it: its services, and for each the text of its
keys (build, image, ports, env_file, init, command ...), with `<<: *anchor` merges resolved.

Not a YAML parser (the tool adds no dependency): block-style mappings only, by indentation. What it
cannot read (flow style `{...}` where a mapping is expected, tabs, an unknown anchor, include:) is
said in `unread`, one line each, and left out."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")  # docker compose's order
KEY = re.compile(r"""^(?P<key>"[^"]*"|'[^']*'|[^\s'"#:\-?&*!|>{[][^:]*?)\s*:(?:\s+(?P<rest>.*)|)$""")
ANCHOR = re.compile(r"^&([^\s]+)\s*(.*)$")


@dataclass
class Node:
    value: str = ""  # what follows "key:" on its own line (an anchor taken off)
    text: str = ""  # that, and every line under it, as one text
    keys: dict[str, Node] = field(default_factory=dict)  # its mapping, when the lines under it are one


@dataclass
class ComposeFile:
    services: dict[str, dict[str, str]] = field(default_factory=dict)  # service -> key -> its text
    unread: list[str] = field(default_factory=list)  # what the reader could not read, one line each


@dataclass
class _Row:
    number: int
    indent: int
    text: str


def read(text: str) -> ComposeFile:
    """The services of a compose file's text, and what could not be read."""
    found = ComposeFile()
    rows = _rows(text, found.unread)
    anchors: dict[str, Node] = {}
    top = _mapping(rows, 0, len(rows), anchors, found.unread)
    for key in ("include", "extends"):
        if key in top:
            found.unread.append(f"{key}: the files it names were not read")
    services = top.get("services")
    if services is None:
        found.unread.append("no services: key at the top level")
        return found
    if services.value and not services.keys:
        found.unread.append(f"services: written in flow style ({services.value[:40]}...): not read")
    for name, node in services.keys.items():
        if node.value and not node.keys:
            found.unread.append(f"service {name}: written in flow style: its keys were not read")
        found.services[name] = _resolved(name, node, anchors, found.unread)
    return found


def _rows(text: str, unread: list[str]) -> list[_Row]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        line = _without_comment(line).rstrip()
        if not line.strip() or line.strip() in ("---", "..."):
            continue
        stripped = line.lstrip(" ")
        if stripped.startswith("\t"):
            unread.append(f"line {number}: indented with a tab: not read")
            continue
        rows.append(_Row(number, len(line) - len(stripped), stripped))
    return rows


def _without_comment(line: str) -> str:
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def _mapping(rows: list[_Row], start: int, end: int, anchors: dict[str, Node], unread: list[str]) -> dict[str, Node]:
    """The mapping of rows[start:end] (all at its first row's indent or deeper)."""
    out: dict[str, Node] = {}
    if start >= end:
        return out
    indent, i = rows[start].indent, start
    while i < end:
        row, j = rows[i], i + 1
        while j < end and (rows[j].indent > indent or (rows[j].indent == indent and rows[j].text.startswith("- "))):
            j += 1  # the lines under it (a list may sit at its key's own indent)
        m = KEY.match(row.text) if row.indent == indent else None
        if m is None:
            return {}  # not a mapping (a list, a scalar): the caller keeps the text
        key, value = m.group("key").strip("'\""), (m.group("rest") or "").strip()
        anchor = ANCHOR.match(value)
        if anchor:
            value = anchor.group(2)
        under = rows[i + 1:j]
        node = Node(value, "\n".join([value, *(r.text for r in under)]).strip(),
                    _mapping(rows, i + 1, j, anchors, unread) if under and not under[0].text.startswith("- ") else {})
        if anchor:
            anchors[anchor.group(1)] = node
        out[key] = node
        i = j
    return out


def _resolved(service: str, node: Node, anchors: dict[str, Node], unread: list[str]) -> dict[str, str]:
    """A service's keys with `<<: *anchor` (or `<<: [*a, *b]`) merged in: its own keys win."""
    keys: dict[str, str] = {}
    merge = node.keys.get("<<")
    if merge is not None:
        for name in re.findall(r"\*([^\s,\]]+)", merge.text):
            if name in anchors:
                keys.update({k: v.text for k, v in anchors[name].keys.items() if k != "<<"})
            else:
                unread.append(f"service {service}: <<: *{name} names no anchor the reader found")
    keys.update({k: v.text for k, v in node.keys.items() if k != "<<"})
    return keys
