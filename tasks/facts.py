"""State read from a host: pure parsers of the output of commands.facts(), and the rules
that decide which colour is live. Tested on captured output, no SSH needed."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from .commands import MARK, project, record_path
from .commands import facts as facts_command
from .errors import Refused
from .settings import COLORS, HostSettings


@dataclass(frozen=True)
class Container:
    project: str
    service: str
    state: str  # running, exited, restarting, created, paused, dead
    restarts: int
    image: str  # image ID (sha256:...)
    id: str
    exit_code: int


@dataclass
class Facts:
    record: dict | None = None
    upstream: str | None = None  # the upstream file's text, None when it does not exist
    git: str = ""
    compose_file: bool = False
    containers: list[Container] = field(default_factory=list)
    # read by `fab status` only
    lock: str = ""  # `held NOW SINCE` + the holder's info, empty when unlocked
    last: dict | None = None  # the last history line
    last_guard: dict | None = None  # the last line the guard wrote
    health: dict[str, str] = field(default_factory=dict)  # colour -> HTTP code (000: no answer)
    capped: list[str] = field(default_factory=list)  # colours whose warm-up cap is not lifted yet
    queued: str | None = None  # commands.count_queued()'s output, when it rode along

    def services(self, s: HostSettings, color: str) -> dict[str, Container]:
        proj = project(s, color)
        return {c.service: c for c in self.containers if c.project == proj}

    def running(self, s: HostSettings, color: str, service: str) -> bool:
        c = self.services(s, color).get(service)
        return c is not None and c.state == "running"

    def container_ids(self, s: HostSettings, color: str) -> dict[str, str]:
        return {name: c.id for name, c in sorted(self.services(s, color).items())}

    def images(self, s: HostSettings, color: str) -> dict[str, str]:
        return {name: c.image for name, c in sorted(self.services(s, color).items())}


def read(remote, s: HostSettings, timeout: float = 120.0) -> Facts:
    """One round trip: run commands.facts() on the host and parse it."""
    return from_result(remote.read(facts_command(s), timeout))


def from_result(res) -> Facts:
    if f"{MARK}containers" not in res.stdout:
        raise Refused(f"cannot list containers with docker: {res.why()}: is Docker running, "
                      "and is the SSH user in the docker group?")
    return parse(res.stdout)


def parse(text: str) -> Facts:
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith(MARK):
            current = line[len(MARK):].strip()
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    facts = Facts()
    record = "\n".join(sections.get("record", [])).strip()
    if record:
        try:
            facts.record = json.loads(record)
        except json.JSONDecodeError:
            facts.record = {"unreadable": record[:200]}
    if "upstream" in sections and any(sections["upstream"]):
        facts.upstream = "\n".join(sections["upstream"]).strip() + "\n"
    facts.git = "".join(sections.get("git", [])).strip()
    facts.compose_file = "yes" in sections.get("compose", [])
    facts.containers = [c for c in map(_container, sections.get("containers", [])) if c]
    facts.lock = "\n".join(sections.get("lock", [])).strip()
    facts.last = _json_line(sections.get("history", []))
    facts.last_guard = _json_line(sections.get("guard", []))
    facts.capped = [line.strip() for line in sections.get("lift", []) if line.strip()]
    facts.queued = "\n".join(sections["queued"]) if "queued" in sections else None
    facts.health = dict(line.split() for line in sections.get("health", []) if len(line.split()) == 2)
    return facts


def _json_line(lines: list[str]) -> dict | None:
    try:
        return json.loads(lines[-1]) if lines and lines[-1].strip() else None
    except json.JSONDecodeError:
        return None


def _container(line: str) -> Container | None:
    parts = line.split()
    if len(parts) != 7:
        return None
    proj, service, state, restarts, image, cid, code = parts
    return Container(proj, service, state, int(restarts), image, cid, int(code))


def killed(s: HostSettings, color: str, services: tuple[str, ...], stdout: str) -> list[str]:
    """Warnings for the services that stop_reporting() shows killed (exit code 137) after their grace."""
    stopped = parse(stdout).services(s, color)
    return [f"{color}'s {name} was killed after stop_timeout ({s.stop_timeout:g} s) instead of stopping by itself: "
            "tasks it was running may be lost (raise stop_timeout above the longest task)"
            for name in services if name in stopped and stopped[name].exit_code == 137]


def upstream_port(text: str | None) -> int | None:
    if not text:
        return None
    m = re.search(r"server\s+[^\s;]*:(\d+)[\s;]", text)
    return int(m.group(1)) if m else None


def port_color(s: HostSettings, port: int | None) -> str | None:
    return next((c for c in COLORS if s.port(c) == port), None)


def other(color: str) -> str:
    return "green" if color == "blue" else "blue"


def find_live(s: HostSettings, facts: Facts) -> str | None:
    """The colour serving now, or None. Refuses when the record and nginx disagree.

    A colour counts as live only while its web container runs. With no record: the colour
    whose port the upstream file names, if its web runs; else the only colour whose web runs.
    """
    if facts.record is not None and "unreadable" in facts.record:
        raise Refused(f"the record {s.dir}/{record_path(s)} is not valid JSON: "
                      "fix or remove it (fab-bluegreen then finds the live colour from nginx and containers)")
    webs = [c for c in COLORS if facts.running(s, c, s.web)]
    nginx = port_color(s, upstream_port(facts.upstream)) if s.switch.mode == "nginx" else None
    recorded = (facts.record or {}).get("live")
    if recorded in COLORS:
        if nginx and nginx != recorded and facts.running(s, recorded, s.web):
            port = upstream_port(facts.upstream)
            raise Refused(
                f"the record says {recorded} is live, but {s.switch.upstream_file} points at port {port} "
                f"({nginx}): point nginx back at {recorded} (port {s.port(recorded)}) or remove "
                f"{s.dir}/{record_path(s)} if {nginx} is right, then deploy again")
        if facts.running(s, recorded, s.web):
            return recorded
    if nginx in webs:
        return nginx
    return webs[0] if len(webs) == 1 else None


def version(s: HostSettings, facts: Facts, color: str) -> str:
    """A short human label of what a colour runs: the web image ID, plus the git commit if known."""
    web = facts.services(s, color).get(s.web)
    label = f"{s.web}@{web.image.removeprefix('sha256:')[:12]}" if web else "-"
    commit = ((facts.record or {}).get("colors", {}).get(color) or {}).get("commit")
    return f"{label} ({commit})" if commit else label
