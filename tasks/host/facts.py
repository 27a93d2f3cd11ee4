"""State read from a host: the facts, put together from the sections of shell.probe.facts() (each
read there, beside its printing), and the rules that decide which colour is live. Tested on
captured output, no SSH needed."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ..config.schema import COLORS, Color, HostSettings
from ..errors import Refused
from ..shell import probe
from ..shell.compose import Container, container, project
from ..shell.record import Record, history_problem, loads, record_problem
from ..shell.state import history_path, record_path


@dataclass
class Facts:
    record: Record | None = None
    upstream: str | None = None  # the upstream file's text, None when it does not exist
    upstream_unreadable: bool = False  # it exists, but not even sudo -n could read it
    nginx_workers: str | None = None  # the PIDs of nginx's workers, e.g. "812 813"; None: not read
    git: str = ""
    compose_file: bool = False
    containers: list[Container] = field(default_factory=list)
    # read by `fab status` only
    lock: str = ""  # `held NOW SINCE` + the holder's info, empty when unlocked
    stale: str = ""  # why the lock is stale (guard.staleness: "reboot", "guard gone"), "" when it is not
    undo: list[str] = field(default_factory=list)  # the words of the holding run's undo journal, newest first
    last: dict | None = None  # the last history line
    last_guard: dict | None = None  # the last line the guard wrote
    health: dict[str, str] = field(default_factory=dict)  # colour -> HTTP code (000: no answer)
    capped: list[str] = field(default_factory=list)  # colours whose warm-up cap is not lifted yet
    stuck_caps: list[str] = field(default_factory=list)  # ... and whose lift process is gone
    queued: str | None = None  # shell.broker.count_queued()'s output, when it rode along
    restart_kept: dict[str, str] = field(default_factory=dict)  # container ID -> the policy the tool turned off
    restart_now: dict[str, str] = field(default_factory=dict)  # ... and that container's policy now
    # state files not as fab-bluegreen writes them: section -> what is wrong (their data is left out,
    # so record, last and last_guard always have the shape record.py writes); find_live() refuses
    bad: dict[str, str] = field(default_factory=dict)

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
    """One round trip: run shell.probe.facts() on the host and parse it."""
    return from_result(remote.read(probe.facts(s), timeout))


def from_result(res) -> Facts:
    if not probe.has(res.stdout, probe.CONTAINERS):
        raise Refused(f"cannot list containers with docker: {res.why()}: is Docker running, "
                      "and is the SSH user in the docker group?")
    return parse(res.stdout)


def parse(text: str) -> Facts:
    """The facts from their sections (shell/probe.py prints and reads each); the state files among
    them (the record, history lines) are checked here."""
    found = probe.sections(text)
    facts = Facts()
    record = "\n".join(found.get(probe.RECORD, [])).strip()
    if record:
        try:
            data = loads(record)
        except ValueError:
            facts.bad["record"] = "is not valid JSON"
        else:
            if why := record_problem(data):
                facts.bad["record"] = why
            else:
                facts.record = Record.from_json(data)
    facts.upstream = probe.upstream(found)
    facts.upstream_unreadable = probe.UNREADABLE in found
    facts.nginx_workers = probe.workers(found)
    facts.git = probe.git(found)
    facts.compose_file = probe.compose_file(found)
    facts.containers = [c for c in map(container, found.get(probe.CONTAINERS, [])) if c]
    facts.lock = probe.lock(found)
    facts.stale = probe.stale(found)
    facts.undo = probe.undo(found)
    facts.last = _history_line(facts, "history", found.get(probe.HISTORY, []))
    facts.last_guard = _history_line(facts, "guard", found.get(probe.GUARD, []))
    facts.capped, facts.stuck_caps = probe.lifts(found)
    facts.queued = probe.queued(found)
    facts.health = probe.health(found)
    facts.restart_kept = probe.policies(found, probe.RESTART_KEPT)
    facts.restart_now = probe.policies(found, probe.RESTART_NOW)
    return facts


def _history_line(facts: Facts, section: str, lines: list[str]) -> dict | None:
    """The last line, or None: when there is none, when it is not valid JSON (ignored, as a
    half-written line may be), or when it is not the shape history_line() writes (noted in facts.bad)."""
    if not lines or not lines[-1].strip():
        return None
    try:
        data = loads(lines[-1])
    except json.JSONDecodeError:
        return None
    except ValueError:  # valid JSON in form, but nested too deeply or with a number too long
        facts.bad[section] = "is not JSON fab-bluegreen can read"
        return None
    if why := history_problem(data):
        facts.bad[section] = why
        return None
    return data


def bad_file(s: HostSettings, facts: Facts, section: str) -> str | None:
    """One line naming the state file of a facts section that is not as fab-bluegreen writes it."""
    why = facts.bad.get(section)
    if why is None:
        return None
    if section == "record":
        return (f"the record {s.dir}/{record_path(s)} {why}: fix or remove it (fab-bluegreen then finds the "
                "live colour from nginx and containers)")
    which = "last guard line" if section == "guard" else "last line"
    return f"the {which} of {s.dir}/{history_path(s)} {why}: fix or remove that line"


def restart_off(s: HostSettings, facts: Facts, color: str) -> str:
    """A short note on the colour's services whose restart policy is not the compose file's (the tool
    turned it off when it stopped them, see shell/restart.py), e.g. "worker beat restart: no (compose: always)"."""
    by_policy: dict[tuple[str, str], list[str]] = {}
    for name, c in sorted(facts.services(s, color).items()):
        kept = facts.restart_kept.get(c.id)
        now = facts.restart_now.get(c.id, "?").strip() or "no"
        if kept and now != kept:
            by_policy.setdefault((now, kept), []).append(name)
    return "; ".join(f"{' '.join(names)} restart: {now} (compose: {kept})" for (now, kept), names in by_policy.items())


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


def port_color(s: HostSettings, port: int | None) -> Color | None:
    return next((c for c in COLORS if s.port(c) == port), None)


def other(color: str) -> Color:
    return Color(color).other


def find_live(s: HostSettings, facts: Facts) -> Color | None:
    """The colour serving now, or None. Refuses when the record and nginx disagree.

    A colour counts as live only while its web container runs. Else (no record, or its colour's
    web is down): the colour whose port the upstream file names, if its web runs; else the only
    colour whose web runs. A staged colour (deploy --no-switch) is never live: it is waiting.
    """
    for section in ("record", "history"):  # the files a deploy reads (the guard line only fab status)
        if why := bad_file(s, facts, section):
            raise Refused(why)
    staged = facts.record.staged if facts.record else None
    webs = [c for c in COLORS if facts.running(s, c, s.web) and c != staged]
    nginx = port_color(s, upstream_port(facts.upstream)) if s.switch.mode == "nginx" else None
    recorded = facts.record.live if facts.record else None
    if recorded in COLORS:
        recorded = Color(recorded)
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
    """What a colour runs, as people read it: the version recorded with its images (the source's git
    describe when they were built off the host, else the git commit of dir), while its web still runs
    those images; else the web image's ID, web@<12 hex digits> (the record keeps the IDs either way)."""
    web = facts.services(s, color).get(s.web)
    if not web:
        return "-"
    entry = facts.record.deployed(color) if facts.record else None
    if entry and entry.images.get(s.web) == web.image and (entry.version or entry.commit):
        return entry.version or entry.commit
    return f"{s.web}@{web.image.removeprefix('sha256:')[:12]}"
